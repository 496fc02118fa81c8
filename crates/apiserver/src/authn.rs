//! Authentication: who is making a request. x509 client certificates signed by the cluster CA
//! (CN = user, each O = a group) and bearer tokens from a static token file, as upstream's
//! `--token-auth-file`. A request with neither is anonymous, which only the public paths
//! accept.

use std::collections::HashMap;
use std::path::Path;

/// An authenticated user, as upstream's `user.Info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// A unique id (from the token file; empty for certificates).
    pub uid: String,
    /// Groups, including `system:authenticated`.
    pub groups: Vec<String>,
}

/// Reading the token file failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `token,user,uid[,"group1,group2"]`.
    #[error("token file {path}, line {line}: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Decides who a request comes from.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
}

const AUTHENTICATED: &str = "system:authenticated";

impl Authenticator {
    /// Reads a static token file: CSV lines `token,user,uid[,"group1,group2"]`; blank lines
    /// and lines starting with `#` are skipped.
    pub fn from_token_file(path: &Path) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: shown.clone(),
            source,
        })?;
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason| Error::Malformed {
                path: shown.clone(),
                line: i + 1,
                reason,
            };
            let mut fields = line.splitn(4, ',');
            let token = fields.next().unwrap_or_default().trim();
            let name = fields
                .next()
                .ok_or_else(|| bad("missing user name"))?
                .trim();
            let uid = fields.next().ok_or_else(|| bad("missing uid"))?.trim();
            if token.is_empty() || name.is_empty() {
                return Err(bad("empty token or user name"));
            }
            let mut groups: Vec<String> = fields
                .next()
                .map(|g| g.trim().trim_matches('"'))
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect();
            groups.push(AUTHENTICATED.to_owned());
            tokens.insert(
                token.to_owned(),
                UserInfo {
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                    groups,
                },
            );
        }
        Ok(Authenticator { tokens })
    }

    /// Also accepts `token` as `user` (the node token agents join with).
    pub fn with_token(mut self, token: &str, user: UserInfo) -> Self {
        self.tokens.insert(token.to_owned(), user);
        self
    }

    /// The user of an `Authorization: Bearer` header, if the token is known.
    pub fn token_user(&self, authorization: Option<&str>) -> Option<UserInfo> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.tokens.get(token).cloned()
    }
}

/// The user of a client certificate (DER) the TLS layer has already verified against the
/// cluster CA: CN is the name, each O a group. Parsed once per connection; a request on a
/// connection with no certificate user falls back to [`Authenticator::token_user`].
pub fn cert_user(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    groups.push(AUTHENTICATED.to_owned());
    Some(UserInfo {
        name,
        uid: String::new(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# comment\nsecret,alice,1,\"dev,ops\"\nother,bob,2\n",
        )
        .unwrap();
        let a = Authenticator::from_token_file(&path).unwrap();
        let alice = a.token_user(Some("Bearer secret")).unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops", AUTHENTICATED]);
        assert_eq!(a.token_user(Some("Bearer other")).unwrap().name, "bob");
        assert!(a.token_user(Some("Bearer wrong")).is_none());
        assert!(a.token_user(Some("Basic secret")).is_none());
        assert!(a.token_user(None).is_none());

        std::fs::write(&path, "lonely-token\n").unwrap();
        let err = Authenticator::from_token_file(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn client_certificate_names_user_and_groups() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = crate::pki::client_params("jane", Some("system:masters")).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let user = cert_user(cert.der()).unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, ["system:masters", AUTHENTICATED]);
    }
}

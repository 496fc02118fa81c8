//! Authentication: who is making a request. x509 client certificates signed by the cluster CA
//! (CN = user, each O = a group), bearer tokens from a static token file, as upstream's
//! `--token-auth-file`, and service account tokens ([`crate::tokens`]), valid while the
//! service account and the object they are bound to exist with the uids they name. A request
//! with none is anonymous, which only the public paths accept.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::tokens::{Keys, Ref, ISSUER};

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

/// An object a service account token names, as the API has it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    /// Its uid.
    pub uid: String,
    /// Its `deletionTimestamp`, Unix seconds.
    pub deleted_at: Option<i64>,
}

/// Finds an object by resource plural, namespace and name.
pub type Lookup = Arc<dyn Fn(&str, Option<&str>, &str) -> Option<Live> + Send + Sync>;

#[derive(Clone)]
struct ServiceAccounts {
    keys: Arc<Keys>,
    lookup: Lookup,
}

/// Decides who a request comes from.
#[derive(Clone, Default)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
    service_accounts: Option<ServiceAccounts>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("service_accounts", &self.service_accounts.is_some())
            .finish()
    }
}

/// How long after its deletion time an object still vouches for its tokens, as upstream.
const DELETION_GRACE_SECONDS: i64 = 60;

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
        Ok(Authenticator {
            tokens,
            service_accounts: None,
        })
    }

    /// Also accepts `token` as `user` (the node token agents join with).
    pub fn with_token(mut self, token: &str, user: UserInfo) -> Self {
        self.tokens.insert(token.to_owned(), user);
        self
    }

    /// Also accepts service account tokens signed with `keys`; `lookup` finds the objects
    /// they name.
    pub fn with_service_accounts(mut self, keys: Arc<Keys>, lookup: Lookup) -> Self {
        self.service_accounts = Some(ServiceAccounts { keys, lookup });
        self
    }

    /// The user of an `Authorization: Bearer` header, if the token is known.
    pub fn token_user(&self, authorization: Option<&str>) -> Option<UserInfo> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        if let Some(user) = self.tokens.get(token) {
            return Some(user.clone());
        }
        if crate::tokens::looks_like_jwt(token) {
            return self
                .service_account_user(token, &[ISSUER], now_unix())
                .map(|(user, _)| user);
        }
        None
    }

    /// TokenReview: the user of `token` and which of `audiences` (the API server's when
    /// empty) it is good for, as upstream's token review answers.
    pub fn review(&self, token: &str, audiences: &[String]) -> Option<(UserInfo, Vec<String>)> {
        let wanted: Vec<&str> = if audiences.is_empty() {
            vec![ISSUER]
        } else {
            audiences.iter().map(String::as_str).collect()
        };
        if let Some(user) = self.tokens.get(token) {
            // Static tokens are good for any audience.
            return Some((
                user.clone(),
                wanted.iter().map(|a| (*a).to_owned()).collect(),
            ));
        }
        let (user, claims) = self.service_account_user(token, &wanted, now_unix())?;
        let good = wanted
            .iter()
            .filter(|a| claims.aud.iter().any(|c| c == *a))
            .map(|a| (*a).to_owned())
            .collect();
        Some((user, good))
    }

    /// The user of a service account token good for one of `audiences`, and its claims.
    fn service_account_user(
        &self,
        token: &str,
        audiences: &[&str],
        now: i64,
    ) -> Option<(UserInfo, crate::tokens::Claims)> {
        let sa = self.service_accounts.as_ref()?;
        let claims = sa.keys.verify(token, audiences, now)?;
        let k = &claims.kubernetes;
        let ns = k.namespace.as_str();
        let alive = |plural: &str, namespace: Option<&str>, r: &Ref| {
            (sa.lookup)(plural, namespace, &r.name).is_some_and(|live| {
                live.uid == r.uid
                    && live
                        .deleted_at
                        .is_none_or(|t| t + DELETION_GRACE_SECONDS >= now)
            })
        };
        let bound = match (&k.pod, &k.secret, &k.node) {
            (Some(pod), _, _) => alive("pods", Some(ns), pod),
            (None, Some(secret), _) => alive("secrets", Some(ns), secret),
            (None, None, Some(node)) => alive("nodes", None, node),
            (None, None, None) => true,
        };
        if !(bound && alive("serviceaccounts", Some(ns), &k.serviceaccount)) {
            return None;
        }
        let user = UserInfo {
            name: format!("system:serviceaccount:{ns}:{}", k.serviceaccount.name),
            uid: k.serviceaccount.uid.clone(),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{ns}"),
                AUTHENTICATED.to_owned(),
            ],
        };
        Some((user, claims))
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The user a request acts as: `user`, or the one its `Impersonate-User` (with
/// `Impersonate-Group`, `Impersonate-Uid`) headers name, as upstream's impersonation filter
/// (which asks the authorizer; with no RBAC yet every user may impersonate). An impersonated
/// service account gets its groups; every impersonated user `system:authenticated`. Groups
/// or a uid without a user are refused.
pub fn impersonate(user: UserInfo, headers: &http::HeaderMap) -> Result<UserInfo, String> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    };
    let names = values("impersonate-user");
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid");
    let Some(name) = names.first() else {
        if !groups.is_empty() || !uid.is_empty() {
            return Err(
                "requested impersonation of groups or a uid without impersonating a user"
                    .to_owned(),
            );
        }
        return Ok(user);
    };
    if !crate::authz::authorize(Some(&user), &serde_json::json!({"resourceAttributes": {"verb": "impersonate", "resource": "users", "name": name}})).allowed {
        return Err(format!("users {name:?} is forbidden: User {:?} cannot impersonate resource \"users\" in API group \"\" at the cluster scope", user.name));
    }
    let mut all = groups;
    if all.is_empty() {
        if let Some(ns) = name
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':').map(|(ns, _)| ns))
        {
            all.push("system:serviceaccounts".to_owned());
            all.push(format!("system:serviceaccounts:{ns}"));
        }
    }
    if name != "system:anonymous" && !all.iter().any(|g| g == AUTHENTICATED) {
        all.push(AUTHENTICATED.to_owned());
    }
    Ok(UserInfo {
        name: name.clone(),
        uid: uid.first().cloned().unwrap_or_default(),
        groups: all,
    })
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
    fn service_account_tokens_hold_while_their_objects_live() {
        use crate::tokens::{Claims, KubernetesClaim};
        let keys = Arc::new(Keys::generate().unwrap());
        let objects: Arc<std::sync::Mutex<HashMap<String, Live>>> = Arc::default();
        let live = |uid: &str, deleted_at| Live {
            uid: uid.to_owned(),
            deleted_at,
        };
        let seen = objects.clone();
        let lookup: Lookup = Arc::new(move |plural, ns, name| {
            let key = format!("{plural}/{}/{name}", ns.unwrap_or(""));
            seen.lock().unwrap().get(&key).cloned()
        });
        let a = Authenticator::default().with_service_accounts(keys.clone(), lookup);
        let now = 1_800_000_000;
        let claims = Claims {
            aud: vec![ISSUER.to_owned()],
            exp: now + 3600,
            iat: now,
            iss: ISSUER.to_owned(),
            jti: "j".to_owned(),
            nbf: now,
            sub: "system:serviceaccount:ns:robot".to_owned(),
            kubernetes: KubernetesClaim {
                namespace: "ns".to_owned(),
                serviceaccount: Ref {
                    name: "robot".to_owned(),
                    uid: "sa-1".to_owned(),
                },
                pod: Some(Ref {
                    name: "p".to_owned(),
                    uid: "pod-1".to_owned(),
                }),
                ..KubernetesClaim::default()
            },
        };
        let token = keys.sign(&claims).unwrap();
        let set = |k: &str, v: Option<Live>| {
            let mut m = objects.lock().unwrap();
            match v {
                Some(v) => m.insert(k.to_owned(), v),
                None => m.remove(k),
            };
        };
        assert!(
            a.service_account_user(&token, &[ISSUER], now)
                .map(|(u, _)| u)
                .is_none(),
            "no account"
        );
        set("serviceaccounts/ns/robot", Some(live("sa-1", None)));
        assert!(
            a.service_account_user(&token, &[ISSUER], now)
                .map(|(u, _)| u)
                .is_none(),
            "no pod"
        );
        set("pods/ns/p", Some(live("pod-1", None)));
        let user = a
            .service_account_user(&token, &[ISSUER], now)
            .map(|(u, _)| u)
            .unwrap();
        assert_eq!(user.name, "system:serviceaccount:ns:robot");
        assert_eq!(user.uid, "sa-1");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                AUTHENTICATED
            ]
        );
        // Deleting: valid for a minute past the deletion time.
        set("pods/ns/p", Some(live("pod-1", Some(now - 30))));
        assert!(a
            .service_account_user(&token, &[ISSUER], now)
            .map(|(u, _)| u)
            .is_some());
        set("pods/ns/p", Some(live("pod-1", Some(now - 61))));
        assert!(
            a.service_account_user(&token, &[ISSUER], now)
                .map(|(u, _)| u)
                .is_none(),
            "pod gone"
        );
        // A pod of the same name made again is another pod.
        set("pods/ns/p", Some(live("pod-2", None)));
        assert!(
            a.service_account_user(&token, &[ISSUER], now)
                .map(|(u, _)| u)
                .is_none(),
            "recreated pod"
        );
        set("pods/ns/p", Some(live("pod-1", None)));
        set("serviceaccounts/ns/robot", Some(live("sa-2", None)));
        assert!(
            a.service_account_user(&token, &[ISSUER], now)
                .map(|(u, _)| u)
                .is_none(),
            "recreated account"
        );
    }

    #[test]
    fn impersonation_headers_name_the_user() {
        let admin = UserInfo {
            name: "admin".to_owned(),
            uid: String::new(),
            groups: vec!["system:masters".to_owned(), AUTHENTICATED.to_owned()],
        };
        let mut h = http::HeaderMap::new();
        assert_eq!(impersonate(admin.clone(), &h).unwrap(), admin);
        h.append("Impersonate-Group", "devs".parse().unwrap());
        assert!(
            impersonate(admin.clone(), &h).is_err(),
            "groups without a user"
        );
        h.append("Impersonate-User", "bob".parse().unwrap());
        h.append("Impersonate-Group", "ops".parse().unwrap());
        let bob = impersonate(admin.clone(), &h).unwrap();
        assert_eq!(bob.name, "bob");
        assert_eq!(bob.groups, ["devs", "ops", AUTHENTICATED]);
        let mut h = http::HeaderMap::new();
        h.append(
            "Impersonate-User",
            "system:serviceaccount:ns:robot".parse().unwrap(),
        );
        let sa = impersonate(admin, &h).unwrap();
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                AUTHENTICATED
            ]
        );
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

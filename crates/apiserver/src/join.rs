//! Joining a cluster as k3s does: the server keeps a token `K10<sha256 of the CA
//! certificate>::server:<secret>`; an agent given the server's URL and the token fetches the
//! CA from the public `/cacerts` endpoint, checks it against the hash in the token, and then
//! talks TLS-verified to the server, authenticating with the token.

use std::path::Path;

/// The user agents joining with the node token act as.
pub const AGENT_USER: &str = "system:node-agent";

/// The agents' user (in the `system:nodes` group), for the join token and for the
/// in-process hollow nodes alike.
pub fn agent_user() -> crate::authn::UserInfo {
    crate::authn::UserInfo {
        name: AGENT_USER.to_owned(),
        uid: String::new(),
        groups: vec!["system:nodes".to_owned(), "system:authenticated".to_owned()],
    }
}

/// The public `/cacerts` endpoint agents check their token against.
pub fn routes(ca_pem: String) -> axum::Router {
    axum::Router::new().route(
        "/cacerts",
        axum::routing::get(move || {
            let ca = ca_pem.clone();
            async move { ca }
        }),
    )
}

/// Making or reading the token failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// Reading or writing.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A token given to an agent is not in the `K10<hash>::<user>:<secret>` form.
    #[error("the token is not a cluster join token (K10<ca-hash>::<user>:<secret>)")]
    Malformed,
    /// The server's CA does not match the token.
    #[error("the server's CA certificate does not match the hash in the token")]
    CaMismatch,
}

/// The hex SHA-256 of the CA certificate PEM, as k3s hashes `/cacerts`.
pub fn ca_hash(ca_pem: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, ca_pem.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the server's token at `path`, making it (mode 0600) on first start.
pub fn load_or_create_token(path: &Path, ca_pem: &str) -> Result<String, Error> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // Anything else (permissions, I/O) must not replace the token agents joined with.
        Err(source) => {
            return Err(Error::Io {
                what: "reading the token",
                path: shown,
                source,
            })
        }
    }
    let mut secret = [0u8; 16];
    getrandom::getrandom(&mut secret).map_err(|e| Error::Io {
        what: "drawing random bytes for the token",
        path: shown.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("K10{}::server:{secret}", ca_hash(ca_pem));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        writeln!(f, "{token}")
    };
    write().map_err(|source| Error::Io {
        what: "writing the token",
        path: shown,
        source,
    })?;
    Ok(token)
}

/// The CA hash a join token carries.
pub fn token_ca_hash(token: &str) -> Result<&str, Error> {
    let rest = token.strip_prefix("K10").ok_or(Error::Malformed)?;
    let (hash, creds) = rest.split_once("::").ok_or(Error::Malformed)?;
    if hash.len() != 64 || !creds.contains(':') {
        return Err(Error::Malformed);
    }
    Ok(hash)
}

/// Checks the CA an agent fetched against its token.
pub fn verify_ca(token: &str, ca_pem: &str) -> Result<(), Error> {
    if token_ca_hash(token)? == ca_hash(ca_pem) {
        Ok(())
    } else {
        Err(Error::CaMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_ca() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("token");
        let token = load_or_create_token(&path, "CA").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(load_or_create_token(&path, "CA").ok(), Some(token.clone()));
        assert!(verify_ca(&token, "CA").is_ok());
        assert!(matches!(verify_ca(&token, "other"), Err(Error::CaMismatch)));
        assert!(matches!(verify_ca("secret", "CA"), Err(Error::Malformed)));
    }
}

//! Keys, prefixes and continue tokens: the checks every backend applies to its input before
//! touching storage, so bad input fails the same way everywhere.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Revision};

/// The largest value the store accepts: etcd's default request limit (1.5 MiB).
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// The longest key accepted.
const MAX_KEY_BYTES: usize = 4096;

fn invalid(key: &str, reason: &'static str) -> Error {
    Error::InvalidKey {
        key: key.to_owned(),
        reason,
    }
}

fn check_common(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid(key, "key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid(key, "key is longer than 4096 bytes"));
    }
    if !key.starts_with('/') {
        return Err(invalid(key, "key must start with '/'"));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid(key, "key contains a control character"));
    }
    if key.contains("//") {
        return Err(invalid(key, "key contains an empty segment"));
    }
    if key.split('/').any(|s| s == "." || s == "..") {
        return Err(invalid(key, "key contains a '.' or '..' segment"));
    }
    Ok(())
}

/// Checks that `key` names one object: `/a/b/c`, no empty, `.` or `..` segments, no control
/// characters, no trailing `/`.
pub fn validate_key(key: &str) -> Result<()> {
    check_common(key)?;
    if key.ends_with('/') || key == "/" {
        return Err(invalid(key, "key must not end with '/'"));
    }
    Ok(())
}

/// Checks that `prefix` can be listed or watched: like a key, but a trailing `/` is allowed.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    check_common(prefix)
}

/// Checks a value against [`MAX_VALUE_BYTES`].
pub(crate) fn validate_value(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge {
            key: key.to_owned(),
            size: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// Checks a revision argument: never negative.
pub(crate) fn validate_revision(revision: Revision) -> Result<()> {
    if revision < 0 {
        return Err(Error::InvalidArgument(format!(
            "revision {revision} is negative"
        )));
    }
    Ok(())
}

/// Resolves a read or watch revision against the store's current and compacted revisions:
/// 0 means `current`; a revision after `current` or before `compacted` is an error.
pub(crate) fn resolve_revision(
    requested: Revision,
    current: Revision,
    compacted: Revision,
) -> Result<Revision> {
    let revision = if requested == 0 { current } else { requested };
    if revision > current {
        return Err(Error::FutureRevision {
            requested: revision,
            current,
        });
    }
    if revision < compacted {
        return Err(Error::Compacted {
            requested: revision,
            oldest: compacted,
        });
    }
    Ok(revision)
}

/// The first key after every key that starts with `prefix` (etcd's range end for a prefix).
pub(crate) fn prefix_end(prefix: &str) -> String {
    // Prefixes are validated ASCII-safe at the end ('/' or a name character), so bumping the
    // last byte stays valid UTF-8 whenever that byte is ASCII; otherwise append a max char.
    let mut bytes = prefix.as_bytes().to_vec();
    match bytes.last_mut() {
        Some(b) if *b < 0x7f => {
            *b += 1;
            String::from_utf8(bytes).unwrap_or_else(|_| format!("{prefix}\u{10ffff}"))
        }
        _ => format!("{prefix}\u{10ffff}"),
    }
}

/// The state a paginated list resumes from, as upstream's apiserver encodes it: base64 of
/// `{"v":"meta.k8s.io/v1","rv":R,"start":"<key relative to the prefix>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueToken {
    v: String,
    /// The revision the whole list is read at.
    pub rv: Revision,
    /// The first key of the next page, relative to the listed prefix.
    pub start: String,
}

const TOKEN_VERSION: &str = "meta.k8s.io/v1";

impl ContinueToken {
    /// A token to resume a list of `prefix` at `rv`, starting at the full key `next_key`.
    pub fn new(prefix: &str, rv: Revision, next_key: &str) -> Self {
        let start = next_key.strip_prefix(prefix).unwrap_or(next_key).to_owned();
        ContinueToken {
            v: TOKEN_VERSION.to_owned(),
            rv,
            start,
        }
    }

    /// The opaque string handed to clients.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    /// Parses and checks a token from a client.
    pub fn decode(token: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidContinue(why.to_owned());
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| bad("not base64"))?;
        let parsed: ContinueToken =
            serde_json::from_slice(&raw).map_err(|_| bad("not a continue token"))?;
        if parsed.v != TOKEN_VERSION {
            return Err(bad("unknown token version"));
        }
        if parsed.rv <= 0 {
            return Err(bad("revision must be positive"));
        }
        if parsed.start.is_empty() {
            return Err(bad("start key is empty"));
        }
        if parsed.start.starts_with('/')
            || parsed.start.split('/').any(|s| s == ".." || s == ".")
            || parsed
                .start
                .trim_end_matches('\0')
                .chars()
                .any(char::is_control)
        {
            return Err(bad("start key escapes the listed prefix"));
        }
        Ok(parsed)
    }

    /// The full key the next page starts at.
    pub fn start_key(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.start)
    }
}

/// Where a list starts and at which revision, from the options and the current revision.
pub(crate) struct ListStart {
    /// First key to include.
    pub from: String,
    /// Revision to read at (0 = latest).
    pub revision: Revision,
}

/// Validates list input and resolves the continue token.
pub(crate) fn list_start(prefix: &str, options: &crate::ListOptions) -> Result<ListStart> {
    validate_prefix(prefix)?;
    validate_revision(options.revision)?;
    match &options.continue_token {
        Some(token) => {
            let token = ContinueToken::decode(token)?;
            Ok(ListStart {
                from: token.start_key(prefix),
                revision: token.rv,
            })
        }
        None => Ok(ListStart {
            from: prefix.to_owned(),
            revision: options.revision,
        }),
    }
}

/// Cuts a key-ordered result into a page: keeps `limit` items and, if more were given, builds
/// the token for the rest. Backends read `limit + 1` items (or all) and let this decide.
pub(crate) fn paginate(
    prefix: &str,
    mut items: Vec<crate::KeyValue>,
    limit: usize,
    revision: Revision,
) -> crate::ListResult {
    if limit == 0 || items.len() <= limit {
        return crate::ListResult {
            items,
            revision,
            continue_token: None,
        };
    }
    items.truncate(limit);
    let next = format!(
        "{}\u{0}",
        items.last().map(|kv| kv.key.as_str()).unwrap_or(prefix)
    );
    let token = ContinueToken::new(prefix, revision, &next);
    crate::ListResult {
        items,
        revision,
        continue_token: Some(token.encode()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("/registry/pods/default/web").is_ok());
        for bad in [
            "",
            "registry/pods",
            "/a//b",
            "/a/",
            "/",
            "/a/../b",
            "/a\n",
            "/a/./b",
        ] {
            assert!(
                matches!(validate_key(bad), Err(Error::InvalidKey { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_prefix("/registry/pods/").is_ok());
    }

    #[test]
    fn prefix_end_is_past_every_child() {
        let end = prefix_end("/registry/pods/");
        assert!("/registry/pods/zzz" < end.as_str());
        assert!("/registry/pods0" >= end.as_str());
    }

    #[test]
    fn token_round_trip_and_tampering() {
        let t = ContinueToken::new("/registry/pods/", 42, "/registry/pods/a/b\u{0}");
        let back = ContinueToken::decode(&t.encode()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.start_key("/registry/pods/"), "/registry/pods/a/b\u{0}");

        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for bad in [
            "!!!".to_owned(),
            b64("{}"),
            b64(r#"{"v":"other","rv":1,"start":"a"}"#),
            b64(r#"{"v":"meta.k8s.io/v1","rv":-1,"start":"a"}"#),
            b64(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"../secrets/x"}"#),
            b64(r#"{"v":"meta.k8s.io/v1","rv":3,"start":"/registry/secrets"}"#),
        ] {
            assert!(
                matches!(ContinueToken::decode(&bad), Err(Error::InvalidContinue(_))),
                "{bad}"
            );
        }
    }
}

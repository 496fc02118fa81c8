//! Service account tokens: JWTs the API server signs for TokenRequest
//! (`serviceaccounts/<name>/token`) and accepts as bearer tokens, as upstream's bound
//! service account tokens. ES256 with a P-256 key kept in `<data-dir>/server/tls/service.key`
//! (made on first start); the key id is the base64url SHA-256 of the public key's DER, as
//! upstream computes it. Claims follow upstream's: `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`,
//! `jti` and the private `kubernetes.io` claim naming the namespace, the service account and
//! the object the token is bound to.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

/// The issuer and the API audience, as k3s and kubeadm set `--service-account-issuer`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Reading, making or using the signing key failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key is not a P-256 PKCS#8 key, or signing failed.
    #[error("service account key: {0}")]
    Key(String),
}

/// Who a token names and what it is bound to: the `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: Ref,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// The node the token is bound to (or the bound pod's node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
    /// For tokens whose lifetime was extended: when they would have expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// An object named in a token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The claims of a service account token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// The issuer.
    pub iss: String,
    /// A unique id.
    pub jti: String,
    /// Not before.
    pub nbf: i64,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Namespace, service account and bound object.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// The signing key.
pub struct Keys {
    key: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("kid", &self.kid).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

impl Keys {
    /// Loads the PKCS#8 PEM key at `path`, or makes one and writes it (mode 0600).
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rcgen::KeyPair::generate().map_err(|e| Error::Key(e.to_string()))?;
                let pem = key.serialize_pem();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(path, &pem).map_err(io)?;
                pem
            }
            Err(e) => return Err(io(e)),
        };
        let key = rcgen::KeyPair::from_pem(&pem).map_err(|e| Error::Key(e.to_string()))?;
        Self::from_pkcs8(
            &key.serialize_der(),
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        )
    }

    /// A fresh key, for tests.
    pub fn generate() -> Result<Self, Error> {
        let key = rcgen::KeyPair::generate().map_err(|e| Error::Key(e.to_string()))?;
        Self::from_pkcs8(
            &key.serialize_der(),
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        )
    }

    fn from_pkcs8(der: &[u8], public_der: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| Error::Key(format!("not a P-256 key: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, public_der);
        Ok(Keys {
            key,
            kid: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            rng,
        })
    }

    /// The signed token for `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let header = Header {
            alg: "ES256".to_owned(),
            kid: self.kid.clone(),
        };
        let mut token = format!("{}.{}", b64_json(&header)?, b64_json(claims)?);
        let sig = self
            .key
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| Error::Key("signing failed".to_owned()))?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(token)
    }

    /// The claims of `token` if this key signed it, it names our issuer and one of
    /// `audiences`, and `now` (seconds since the epoch) is within its lifetime.
    pub fn verify(&self, token: &str, audiences: &[&str], now: i64) -> Option<Claims> {
        let (signed, sig) = token.rsplit_once('.')?;
        let (header, body) = signed.split_once('.')?;
        let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.alg != "ES256" || header.kid != self.kid {
            return None;
        }
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public
            .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).ok()?)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let heard = claims.aud.iter().any(|a| audiences.contains(&a.as_str()));
        // Upstream allows a minute of clock skew either side.
        let live = claims.nbf - 60 <= now && now < claims.exp + 60;
        (claims.iss == ISSUER && heard && live).then_some(claims)
    }
}

/// Whether `token` has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

fn b64_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_vec(value)
        .map(|b| URL_SAFE_NO_PAD.encode(b))
        .map_err(|e| Error::Key(e.to_string()))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            aud: vec![ISSUER.to_owned()],
            exp: now + 600,
            iat: now,
            iss: ISSUER.to_owned(),
            jti: "j".to_owned(),
            nbf: now,
            sub: "system:serviceaccount:default:default".to_owned(),
            kubernetes: KubernetesClaim {
                namespace: "default".to_owned(),
                serviceaccount: Ref {
                    name: "default".to_owned(),
                    uid: "u".to_owned(),
                },
                ..KubernetesClaim::default()
            },
        }
    }

    #[test]
    fn a_signed_token_verifies_only_with_its_key_audience_and_lifetime() {
        let keys = Keys::generate().unwrap_or_else(|e| panic!("{e}"));
        let now = 1_800_000_000;
        let token = keys.sign(&claims(now)).unwrap_or_else(|e| panic!("{e}"));
        assert!(looks_like_jwt(&token));
        assert_eq!(keys.verify(&token, &[ISSUER], now + 10), Some(claims(now)));
        assert_eq!(keys.verify(&token, &["other"], now), None, "audience");
        assert_eq!(keys.verify(&token, &[ISSUER], now + 661), None, "expired");
        assert_eq!(keys.verify(&token, &[ISSUER], now - 61), None, "not yet");
        let other = Keys::generate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other.verify(&token, &[ISSUER], now), None, "another key");
        // A changed claim breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims(now);
        forged.sub = "system:serviceaccount:kube-system:admin".to_owned();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap_or_default());
        assert_eq!(keys.verify(&parts.join("."), &[ISSUER], now), None);
    }

    #[test]
    fn the_key_is_kept_across_starts() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("tls/service.key");
        let first = Keys::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let token = first.sign(&claims(100)).unwrap_or_else(|e| panic!("{e}"));
        let again = Keys::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.kid, again.kid);
        assert!(again.verify(&token, &[ISSUER], 100).is_some());
        std::fs::write(&path, "junk").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(Keys::load_or_create(&path), Err(Error::Key(_))));
    }
}

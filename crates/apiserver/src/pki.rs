//! The cluster's identity material, made on first start and reused after: a cluster CA, the
//! apiserver's serving certificate, and an admin client certificate with the kubeconfig that
//! uses it. Files live under `<data-dir>/server/tls/`; the kubeconfig is written to
//! `<data-dir>/admin.kubeconfig` (and wherever `--write-kubeconfig` says).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Making or reading the identity material failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key could not be made or parsed.
    #[error("{what}: {source}")]
    Cert {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
}

/// The PKI's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// PEM files of the cluster's identity.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The cluster CA certificate (PEM).
    pub ca_cert: String,
    /// The serving certificate (PEM), signed by the CA.
    pub serving_cert: String,
    /// The serving key (PEM).
    pub serving_key: String,
    /// The admin client certificate (PEM): CN=admin, O=system:masters.
    pub admin_cert: String,
    /// The admin client key (PEM).
    pub admin_key: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn cert(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |source| Error::Cert {
        what: what.to_owned(),
        source,
    }
}

/// Writes `contents` to `path` with mode 0600 (keys) or 0644.
fn write(path: &Path, contents: &str, private: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io(path))?;
    f.write_all(contents.as_bytes()).map_err(io(path))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Subject alternative names of the serving certificate: localhost, loopback, the host's
/// name and addresses given, and the in-cluster names of the `kubernetes` service.
pub fn serving_names(hostname: &str, ips: &[IpAddr]) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec![
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
    ];
    if !hostname.is_empty() && !dns.iter().any(|d| d == hostname) {
        dns.push(hostname.to_owned());
    }
    let mut all_ips = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
    ];
    for ip in ips {
        if !all_ips.contains(ip) {
            all_ips.push(*ip);
        }
    }
    (dns, all_ips)
}

impl Pki {
    /// Loads the material under `dir`, making whatever is missing. `dns` and `ips` name the
    /// serving certificate (see [`serving_names`]).
    pub fn load_or_create(dir: &Path, dns: &[String], ips: &[IpAddr]) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let ca_cert_path = dir.join("ca.crt");
        let ca_key_path = dir.join("ca.key");
        let (ca_pem, ca_key) = if ca_cert_path.exists() && ca_key_path.exists() {
            let key =
                KeyPair::from_pem(&read(&ca_key_path)?).map_err(cert("reading the CA key"))?;
            (read(&ca_cert_path)?, key)
        } else {
            let key = KeyPair::generate().map_err(cert("generating the CA key"))?;
            let mut params =
                CertificateParams::new(Vec::<String>::new()).map_err(cert("CA parameters"))?;
            params.distinguished_name.push(DnType::CommonName, "tug-ca");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let ca = params.self_signed(&key).map_err(cert("signing the CA"))?;
            write(&ca_key_path, &key.serialize_pem(), true)?;
            write(&ca_cert_path, &ca.pem(), false)?;
            (ca.pem(), key)
        };
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(cert("reading the CA"))?;

        let (serving_cert, serving_key) = leaf(dir, "serving", &issuer, || {
            let mut p = CertificateParams::new(dns.to_vec()).map_err(cert("serving names"))?;
            p.subject_alt_names
                .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
            p.distinguished_name
                .push(DnType::CommonName, "kube-apiserver");
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            Ok(p)
        })?;
        let (admin_cert, admin_key) = leaf(dir, "admin", &issuer, || {
            client_params("admin", Some("system:masters"))
        })?;
        Ok(Pki {
            ca_cert: ca_pem,
            serving_cert,
            serving_key,
            admin_cert,
            admin_key,
        })
    }

    /// A kubeconfig for the admin user against `server` (e.g. `https://127.0.0.1:6443`).
    pub fn admin_kubeconfig(&self, server: &str) -> String {
        kubeconfig(
            server,
            &self.ca_cert,
            "admin",
            &self.admin_cert,
            &self.admin_key,
        )
    }
}

/// Parameters of a client certificate: CN is the user, O the group. (rcgen keeps one value
/// per name attribute, so certificates made here carry at most one group; certificates with
/// several O values made elsewhere are read in full by authentication.)
pub fn client_params(user: &str, group: Option<&str>) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(cert("client parameters"))?;
    p.distinguished_name.push(DnType::CommonName, user);
    if let Some(g) = group {
        p.distinguished_name.push(DnType::OrganizationName, g);
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(p)
}

/// Loads `<name>.crt`/`<name>.key` under `dir`, or makes and signs them with `params`.
fn leaf(
    dir: &Path,
    name: &str,
    issuer: &Issuer<'_, &KeyPair>,
    params: impl FnOnce() -> Result<CertificateParams>,
) -> Result<(String, String)> {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    if crt.exists() && key.exists() {
        return Ok((read(&crt)?, read(&key)?));
    }
    let pair = KeyPair::generate().map_err(cert("generating a key"))?;
    let signed = params()?
        .signed_by(&pair, issuer)
        .map_err(cert("signing a certificate"))?;
    write(&key, &pair.serialize_pem(), true)?;
    write(&crt, &signed.pem(), false)?;
    Ok((signed.pem(), pair.serialize_pem()))
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A kubeconfig with one cluster, user and context, credentials embedded.
pub fn kubeconfig(server: &str, ca: &str, user: &str, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tug\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: tug\n  context:\n    cluster: tug\n    user: {user}\ncurrent-context: tug\npreferences: {{}}\n",
        b64(ca),
        b64(cert),
        b64(key)
    )
}

/// A kubeconfig that authenticates with a bearer token.
pub fn token_kubeconfig(server: &str, ca: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tug\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: agent\n  user:\n    token: {token:?}\ncontexts:\n- name: tug\n  context:\n    cluster: tug\n    user: agent\ncurrent-context: tug\npreferences: {{}}\n",
        b64(ca),
    )
}

/// Writes a kubeconfig file (mode 0600: it holds a private key).
pub fn write_kubeconfig(path: &Path, contents: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write(path, contents, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (dns, ips) = serving_names("node-a", &[]);
        let first = Pki::load_or_create(dir.path(), &dns, &ips).unwrap();
        let again = Pki::load_or_create(dir.path(), &dns, &ips).unwrap();
        assert_eq!(first.ca_cert, again.ca_cert);
        assert_eq!(first.serving_cert, again.serving_cert);
        assert!(first
            .admin_kubeconfig("https://127.0.0.1:6443")
            .contains("client-key-data"));
    }
}

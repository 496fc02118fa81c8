//! The API server's serving and identity, driven by real kubectl (1.33 and 1.28): the admin
//! kubeconfig written on first start works, `/version` and the health endpoints answer,
//! requests without credentials get 401, bearer tokens from `--token-auth-file` work, and the
//! cluster CA survives a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{kubectl, run, Server};

#[test]
fn admin_kubeconfig_reaches_version_and_health() {
    let server = Server::start(&[]);
    for minor in [33, 28] {
        let (ok, out, err) = run(kubectl(minor)
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .args(["version", "-o", "json"]));
        assert!(ok, "kubectl 1.{minor} version: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let git = v["serverVersion"]["gitVersion"].as_str().unwrap();
        assert!(git.starts_with("v1.37.0"), "{git}");
        assert_eq!(v["serverVersion"]["minor"], "37");

        for path in ["/healthz", "/livez", "/readyz"] {
            let (ok, out, err) = run(kubectl(minor)
                .arg("--kubeconfig")
                .arg(server.kubeconfig())
                .args(["get", "--raw", path]));
            assert!(ok, "{path}: {err}");
            assert_eq!(out.trim(), "ok");
        }
    }
}

#[test]
fn no_credentials_is_401_and_tokens_work() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cret,alice,1001,\"dev\"\n").unwrap();
    let server = Server::start(&["--token-auth-file", tokens.to_str().unwrap()]);
    let url = format!("https://127.0.0.1:{}", server.port);
    let anonymous = |extra: &[&str]| {
        let mut cmd = kubectl(33);
        cmd.args(["--server", &url, "--insecure-skip-tls-verify"])
            .args(extra)
            .args(["get", "--raw", "/api"]);
        run(&mut cmd)
    };
    // No credentials: kubectl would prompt for a user name, so ask with curl and read the
    // Status itself.
    let (ok, out, err) = run(std::process::Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}"])
        .arg(format!("{url}/api")));
    assert!(ok, "curl: {err}");
    let (body, code) = out.rsplit_once('\n').unwrap();
    assert_eq!(code, "401");
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Unauthorized");
    assert_eq!(status["code"], 401);
    let (ok, _, err) = anonymous(&["--token", "wrong"]);
    assert!(!ok);
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
    // A known token gets past authentication.
    let (ok, out, err) = anonymous(&["--token", "s3cret"]);
    assert!(ok, "{err}");
    assert!(out.contains("APIVersions"), "{out}");
    // Public endpoints need no credentials, as upstream's public-info-viewer role allows.
    for path in ["/healthz", "/version"] {
        let (ok, out, err) = run(std::process::Command::new("curl")
            .args(["-sk", "-w", "\n%{http_code}"])
            .arg(format!("{url}{path}")));
        assert!(ok, "curl: {err}");
        assert!(out.ends_with("\n200"), "{path}: {out}");
    }
}

#[test]
fn identity_survives_a_restart() {
    let mut server = Server::start(&[]);
    let ca = std::fs::read_to_string(server.data_dir().join("server/tls/ca.crt")).unwrap();
    // Keep the first kubeconfig: the restart writes the file again.
    let saved = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(server.kubeconfig(), saved.path()).unwrap();
    server.restart();
    let (ok, _, err) = run(kubectl(33)
        .arg("--kubeconfig")
        .arg(saved.path())
        .args(["get", "--raw", "/healthz"]));
    assert!(ok, "old kubeconfig works after restart: {err}");
    assert_eq!(
        std::fs::read_to_string(server.data_dir().join("server/tls/ca.crt")).unwrap(),
        ca
    );
}

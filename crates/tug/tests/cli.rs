//! The `tug` command line, run as a user runs it: help, version, bad input (one line on
//! stderr, non-zero exit), and `tug server` opening its store under `--data-dir`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::tug;

#[test]
fn help_and_version() {
    let out = tug().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["server", "bench", "version"] {
        assert!(help.contains(sub), "help lists {sub}: {help}");
    }
    let out = tug().arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("tug version v"), "{text}");
}

/// Runs `tug` with `args`, expects failure with a one-line error naming `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let out = tug().args(args).env("RUST_LOG", "off").output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("error"), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn bad_input_is_a_clear_error() {
    fails_with(&["no-such-command"], "no-such-command");
    fails_with(&["bench", "store", "--seconds=-1"], "--seconds");
    fails_with(&["bench", "store", "--seconds", "abc"], "abc");
    fails_with(&["bench", "store", "--writers", "0"], "--writers");
    fails_with(
        &["server", "--datastore-endpoint", "not-a-url"],
        "must be an http:// or https:// URL",
    );
    fails_with(
        &["server", "--token-auth-file", "/nonexistent/tokens.csv"],
        "reading token file",
    );
    fails_with(
        &[
            "server",
            "--disable-admission-plugins",
            "ServiceAccount,Nope",
        ],
        "unknown plugin \"Nope\"",
    );
    fails_with(
        &["server", "--controllers", "*,-nope"],
        "unknown controller \"nope\"",
    );
    fails_with(
        &["server", "--node-monitor-grace-period", "forty"],
        "invalid duration",
    );
    fails_with(
        &["server", "--hollow-register-with-taints", "a=b"],
        "key[=value]:Effect",
    );
    fails_with(
        &["server", "--hollow-node-labels", "novalue"],
        "is not key=value",
    );
    fails_with(
        &["agent", "--hollow-nodes", "1"],
        "needs --server and --token",
    );
    fails_with(
        &[
            "agent",
            "--server",
            "https://127.0.0.1:1",
            "--token",
            "plain",
            "--hollow-nodes",
            "1",
        ],
        "not a cluster join token",
    );
    fails_with(
        &["scheduler", "--kubeconfig", "/nonexistent/kubeconfig"],
        "reading the kubeconfig",
    );
    fails_with(
        &["controller-manager", "--kubeconfig", "/nonexistent/kc"],
        "reading the kubeconfig",
    );
    fails_with(
        &["server", "--container-log-max-size", "lots"],
        "--container-log-max-size: \"lots\" is not a positive quantity",
    );
    fails_with(
        &["agent", "--container-log-max-files", "1"],
        "--container-log-max-files",
    );
    fails_with(&["bench", "density", "--nodes", "0"], "--nodes");
    fails_with(&["bench", "scheduler", "--pods", "0"], "--pods");
    // A data dir that cannot be created (a file is in the way).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    fails_with(
        &["server", "--data-dir", file.to_str().unwrap()],
        "opening the embedded store",
    );
}

#[test]
fn image_import_of_a_missing_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.tar");
    let out = tug()
        .args(["image", "import", "--data-dir"])
        .arg(dir.path())
        .arg(&missing)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!("error: image archive {} does not exist", missing.display())
    );
    fails_with(
        &[
            "image",
            "import",
            "--address",
            "/a.sock",
            "--data-dir",
            "/d",
            "x.tar",
        ],
        "cannot be used with",
    );
    fails_with(&["image", "import"], "FILE");
}

#[test]
fn image_build_pause_writes_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pause.tar");
    let out = tug()
        .args(["image", "build-pause", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("localhost/tugboat/pause:1"));
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
}

#[test]
fn server_opens_its_store_and_stops_on_sigint() {
    let mut server = common::Server::start(&[]);
    let db = server.data_dir().join("server/db");
    assert!(
        std::fs::read_dir(&db)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "{db:?} holds the store"
    );
    let status = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "clean exit on SIGINT: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

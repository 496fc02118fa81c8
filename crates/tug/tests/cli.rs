//! The `tug` command line, run as a user runs it: help, version, bad input (one line on
//! stderr, non-zero exit), and `tug server` opening its store under `--data-dir`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tug() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tug"))
}

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
    // A data dir that cannot be created (a file is in the way).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    fails_with(
        &["server", "--data-dir", file.to_str().unwrap()],
        "opening the embedded store",
    );
}

/// Kills the child if the test fails before it exits, so no server outlives the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn server_opens_its_store_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        tug()
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("server logs 'store ready' in time");
        if line.contains("store ready") {
            break;
        }
    }
    let db = dir.path().join("server/db");
    assert!(
        std::fs::read_dir(&db)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "{db:?} holds the store"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit on SIGINT: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

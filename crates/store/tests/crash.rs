//! Crash test: a child process writes to the embedded store as fast as it can and reports
//! every acknowledged write; it is killed with SIGKILL mid-stream; the store is reopened and
//! every acknowledged write must be there, intact.
//!
//! The child is this same test binary, re-run with `TUG_CRASH_CHILD_DIR` set, so no extra
//! program needs building.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tug_store::embedded::{EmbeddedOptions, EmbeddedStore};
use tug_store::Store;

const CHILD_ENV: &str = "TUG_CRASH_CHILD_DIR";

fn value_for(key: &str) -> Bytes {
    // ~1 KiB, derived from the key, so corruption or a mix-up is detected.
    Bytes::from(key.repeat(1024 / key.len() + 1).into_bytes())
}

/// The writer side. Does nothing unless started by `acknowledged_writes_survive_sigkill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let options = EmbeddedOptions::manual_compaction();
    let store = EmbeddedStore::open(std::path::Path::new(&dir).join("store"), options)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for w in 0..16 {
        let (store, tx) = (store.clone(), tx.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/registry/crash/ns/w{w}-{i}");
                let kv = store.create(&key, value_for(&key)).await.unwrap();
                if tx.send(format!("ack {key} {}\n", kv.mod_revision)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut out = std::io::stdout().lock();
    while let Some(line) = rx.recv().await {
        out.write_all(line.as_bytes()).unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acked: HashMap<String, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 3000 {
        assert!(Instant::now() < deadline, "child wrote too slowly");
        let line = lines.next().expect("child output").unwrap();
        if let Some(rest) = line.strip_prefix("ack ") {
            let (key, rev) = rest.split_once(' ').unwrap();
            acked.insert(key.to_owned(), rev.parse().unwrap());
        }
    }
    // SIGKILL mid-stream; then collect the acknowledgements already in the pipe.
    child.kill().unwrap();
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix("ack ") {
            if let Some((key, rev)) = rest.split_once(' ') {
                if let Ok(rev) = rev.parse() {
                    acked.insert(key.to_owned(), rev);
                }
            }
        }
    }
    child.wait().unwrap();

    let options = EmbeddedOptions::manual_compaction();
    let store = EmbeddedStore::open(dir.path().join("store"), options)
        .await
        .unwrap();
    let max = acked.values().copied().max().unwrap();
    assert!(store.current_revision().await.unwrap() >= max);
    for (key, rev) in &acked {
        let kv = store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged write {key} lost"));
        assert_eq!(kv.mod_revision, *rev, "{key}");
        assert_eq!(kv.value, value_for(key), "{key} corrupted");
    }
    // The reopened store keeps working.
    let next = store
        .create("/registry/crash/ns/after", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert!(next.mod_revision > max);
}

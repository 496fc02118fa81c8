//! Behaviour particular to the embedded store: durability across reopen, zero-copy watch
//! fan-out, slow watchers catching up from the log, and compaction bounding history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tug_store::embedded::{EmbeddedOptions, EmbeddedStore};
use tug_store::{KeyValue, ListOptions, Store};

/// Creates `key` and rewrites it `times` times (values "0", "1", …); returns the first and
/// the last version.
async fn rewrite(s: &EmbeddedStore, key: &str, times: u32) -> (KeyValue, KeyValue) {
    let first = s.create(key, Bytes::from_static(b"0")).await.unwrap();
    let mut kv = first.clone();
    for i in 0..times {
        kv = s
            .update(key, Bytes::from(i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    (first, kv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_continues_from_the_last_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/store");
    let last = {
        let s = EmbeddedStore::open(&path, EmbeddedOptions::manual_compaction())
            .await
            .unwrap();
        let kv = s
            .create("/registry/cm/ns/a", Bytes::from_static(b"1"))
            .await
            .unwrap();
        s.update(
            "/registry/cm/ns/a",
            Bytes::from_static(b"2"),
            kv.mod_revision,
        )
        .await
        .unwrap()
    };
    let s = EmbeddedStore::open(&path, EmbeddedOptions::manual_compaction())
        .await
        .unwrap();
    assert_eq!(s.current_revision().await.unwrap(), last.mod_revision);
    assert_eq!(s.get("/registry/cm/ns/a").await.unwrap().unwrap(), last);
    let next = s
        .create("/registry/cm/ns/b", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(next.mod_revision, last.mod_revision + 1);
    // History survives too: a watch from before the reopen replays it.
    let mut w = s
        .watch("/registry/cm/", last.mod_revision - 1)
        .await
        .unwrap();
    let e = w.next().await.unwrap().unwrap();
    assert_eq!(e.revision(), last.mod_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_watchers_share_each_events_bytes() {
    let s = EmbeddedStore::in_memory().unwrap();
    let mut watchers = Vec::new();
    for _ in 0..1000 {
        watchers.push(s.watch("/registry/pods/", 0).await.unwrap());
    }
    let value = Bytes::from(vec![7u8; 4096]);
    s.create("/registry/pods/ns/p", value.clone())
        .await
        .unwrap();
    let mut events = Vec::new();
    for w in &mut watchers {
        let e = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        events.push(e);
    }
    // Every watcher holds the same event, and the event holds the writer's own buffer.
    for e in &events {
        assert!(Arc::ptr_eq(e, &events[0]));
    }
    assert_eq!(events[0].kv.value.as_ptr(), value.as_ptr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_catches_up_from_the_log() {
    let s = EmbeddedStore::in_memory().unwrap();
    let mut slow = s.watch("/registry/pods/", 0).await.unwrap();
    let base = s.current_revision().await.unwrap();
    // More writes than the live fan-out buffers, while the watcher reads nothing.
    let writes: i64 = 6000;
    let tasks: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..writes / 4 {
                    let key = format!("/registry/pods/ns/w{w}-{i}");
                    s.create(&key, Bytes::from_static(b"v")).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for expected in base + 1..=base + writes {
        let e = tokio::time::timeout(Duration::from_secs(10), slow.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(e.revision(), expected, "in order, no gaps, no duplicates");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_removes_old_versions_from_disk() {
    let s = EmbeddedStore::in_memory().unwrap();
    let (first, kv) = rewrite(&s, "/registry/cm/ns/c", 5000).await;
    let first = first.mod_revision;
    let before = s.history_len().await.unwrap();
    assert!(before > 5000, "{before}");
    s.compact(kv.mod_revision).await.unwrap();
    let after = s.history_len().await.unwrap();
    assert!(after <= 2, "history after compaction: {after}");
    let err = s
        .list(
            "/registry/cm/",
            ListOptions {
                revision: first,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, tug_store::Error::Compacted { .. }));
    assert_eq!(
        s.get("/registry/cm/ns/c").await.unwrap().unwrap().value,
        "4999"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_compaction_runs_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EmbeddedOptions {
        compaction_interval: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let s = EmbeddedStore::open(dir.path().join("store"), opts)
        .await
        .unwrap();
    let (_, kv) = rewrite(&s, "/registry/cm/ns/c", 100).await;
    // Wait (with a deadline) for the compactor to pass the writes and reclaim their space.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if s.compacted_revision() >= kv.mod_revision && s.history_len().await.unwrap() <= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no periodic compaction"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        s.get("/registry/cm/ns/c").await.unwrap().unwrap().value,
        "99"
    );
}

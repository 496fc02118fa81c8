//! One backend-independent test suite: the same assertions against the embedded store (on
//! disk), the in-memory store and a real etcd started for each test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tug_store::embedded::{EmbeddedOptions, EmbeddedStore};
use tug_store::etcd_process::EtcdProcess;
use tug_store::{Error, EventKind, ListOptions, Revision, Store, WatchStream};

/// A store and whatever must live as long as it.
struct Fixture {
    store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn embedded() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions::manual_compaction();
    let store = EmbeddedStore::open(dir.path().join("store"), options)
        .await
        .unwrap();
    Fixture {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

async fn memory() -> Fixture {
    Fixture {
        store: Arc::new(EmbeddedStore::in_memory().unwrap()),
        _guard: Box::new(()),
    }
}

async fn etcd() -> Fixture {
    let etcd = EtcdProcess::start().await.unwrap();
    Fixture {
        store: Arc::new(etcd.store().await.unwrap()),
        _guard: Box::new(etcd),
    }
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod on_embedded { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { let f = super::embedded().await; super::$test(&*f.store).await } )* }
        mod on_memory { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { let f = super::memory().await; super::$test(&*f.store).await } )* }
        mod on_etcd { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { let f = super::etcd().await; super::$test(&*f.store).await } )* }
    };
}

suite!(
    create_get_and_already_exists,
    update_is_compare_and_swap,
    delete_returns_last_value,
    racing_updates_have_one_winner,
    list_pages_at_one_revision,
    list_at_past_revision,
    watch_replays_then_follows,
    compaction_fails_old_reads_keeps_latest,
    watch_from_the_future_fails,
    bad_input_is_a_typed_error,
);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn create_get_and_already_exists(s: &dyn Store) {
    let before = s.current_revision().await.unwrap();
    let kv = s
        .create("/registry/pods/default/a", b("one"))
        .await
        .unwrap();
    assert!(kv.mod_revision > before);
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(s.current_revision().await.unwrap(), kv.mod_revision);

    let got = s.get("/registry/pods/default/a").await.unwrap().unwrap();
    assert_eq!(got, kv);
    assert!(s.get("/registry/pods/default/b").await.unwrap().is_none());

    let err = s
        .create("/registry/pods/default/a", b("two"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    // A failed write takes no revision and changes nothing.
    assert_eq!(s.current_revision().await.unwrap(), kv.mod_revision);
    assert_eq!(
        s.get("/registry/pods/default/a")
            .await
            .unwrap()
            .unwrap()
            .value,
        "one"
    );
}

async fn update_is_compare_and_swap(s: &dyn Store) {
    let v1 = s.create("/registry/cm/ns/x", b("1")).await.unwrap();
    let v2 = s
        .update("/registry/cm/ns/x", b("2"), v1.mod_revision)
        .await
        .unwrap();
    assert!(v2.mod_revision > v1.mod_revision);
    assert_eq!(v2.create_revision, v1.create_revision);

    let err = s
        .update("/registry/cm/ns/x", b("3"), v1.mod_revision)
        .await
        .unwrap_err();
    match err {
        Error::Conflict {
            expected, actual, ..
        } => {
            assert_eq!(expected, v1.mod_revision);
            assert_eq!(actual, v2.mod_revision);
        }
        other => panic!("expected a conflict, got {other}"),
    }
    let err = s
        .update("/registry/cm/ns/missing", b("3"), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(
        s.get("/registry/cm/ns/x").await.unwrap().unwrap().value,
        "2"
    );
}

async fn delete_returns_last_value(s: &dyn Store) {
    let v1 = s.create("/registry/cm/ns/d", b("last")).await.unwrap();
    let err = s
        .delete("/registry/cm/ns/d", Some(v1.mod_revision + 100))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let gone = s
        .delete("/registry/cm/ns/d", Some(v1.mod_revision))
        .await
        .unwrap();
    assert_eq!(gone.value, "last");
    assert_eq!(gone.create_revision, v1.create_revision);
    assert!(gone.mod_revision > v1.mod_revision);
    assert!(s.get("/registry/cm/ns/d").await.unwrap().is_none());
    let err = s.delete("/registry/cm/ns/d", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    // Unconditional delete works too, and the key can be created again.
    s.create("/registry/cm/ns/d", b("again")).await.unwrap();
    s.delete("/registry/cm/ns/d", None).await.unwrap();
}

async fn racing_updates_have_one_winner(s: &dyn Store) {
    let v1 = s.create("/registry/leases/ns/l", b("0")).await.unwrap();
    let attempts = (0..16).map(|i| {
        let value = b(&format!("writer-{i}"));
        async move {
            s.update("/registry/leases/ns/l", value, v1.mod_revision)
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one winner");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::Conflict { .. }), "{e}");
        }
    }
    let now = s.get("/registry/leases/ns/l").await.unwrap().unwrap();
    assert_eq!(now.value, winners[0].value);
}

async fn list_pages_at_one_revision(s: &dyn Store) {
    for i in 0..25 {
        s.create(&format!("/registry/pods/ns/p{i:02}"), b(&i.to_string()))
            .await
            .unwrap();
    }
    // Neighbours that share a string prefix but not the path prefix must not appear.
    s.create("/registry/pods2/ns/x", b("x")).await.unwrap();
    s.create("/registry/podsx", b("x")).await.unwrap();
    s.create("/registry/services/ns/x", b("x")).await.unwrap();

    let all = s
        .list("/registry/pods/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 25);
    assert!(all.continue_token.is_none());
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    let page = |token: Option<String>| ListOptions {
        limit: 10,
        continue_token: token,
        ..Default::default()
    };
    let p1 = s.list("/registry/pods/", page(None)).await.unwrap();
    assert_eq!(p1.items.len(), 10);
    assert_eq!(p1.revision, all.revision);
    // Writes between pages are not seen by later pages: they read at the first page's revision.
    s.create("/registry/pods/ns/p10a", b("new")).await.unwrap();
    s.delete("/registry/pods/ns/p15", None).await.unwrap();
    let p2 = s
        .list("/registry/pods/", page(p1.continue_token.clone()))
        .await
        .unwrap();
    assert_eq!(p2.revision, p1.revision);
    let p3 = s
        .list("/registry/pods/", page(p2.continue_token.clone()))
        .await
        .unwrap();
    assert!(p3.continue_token.is_none());
    let paged: Vec<_> = [p1.items, p2.items, p3.items]
        .concat()
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(paged, keys);

    // The latest state shows the changes.
    let latest = s
        .list("/registry/pods/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(latest.items.len(), 25);
    assert!(latest.items.iter().any(|kv| kv.key.ends_with("p10a")));
}

async fn list_at_past_revision(s: &dyn Store) {
    let a = s.create("/registry/cm/ns/a", b("a1")).await.unwrap();
    s.create("/registry/cm/ns/b", b("b1")).await.unwrap();
    let at = s.current_revision().await.unwrap();
    s.update("/registry/cm/ns/a", b("a2"), a.mod_revision)
        .await
        .unwrap();
    s.delete("/registry/cm/ns/b", None).await.unwrap();
    s.create("/registry/cm/ns/c", b("c1")).await.unwrap();

    let past = s
        .list(
            "/registry/cm/",
            ListOptions {
                revision: at,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let seen: Vec<_> = past
        .items
        .iter()
        .map(|kv| (kv.key.as_str(), &kv.value[..]))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/registry/cm/ns/a", &b"a1"[..]),
            ("/registry/cm/ns/b", b"b1")
        ]
    );
    assert_eq!(past.revision, at);

    let now = s
        .list("/registry/cm/", ListOptions::default())
        .await
        .unwrap();
    let seen: Vec<_> = now
        .items
        .iter()
        .map(|kv| (kv.key.as_str(), &kv.value[..]))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/registry/cm/ns/a", &b"a2"[..]),
            ("/registry/cm/ns/c", b"c1")
        ]
    );
}

async fn next_event(w: &mut WatchStream) -> Arc<tug_store::Event> {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch stays open")
        .expect("no watch error")
}

async fn watch_replays_then_follows(s: &dyn Store) {
    let start = s.current_revision().await.unwrap();
    let a = s.create("/registry/pods/ns/a", b("a1")).await.unwrap();
    s.create("/registry/other/ns/z", b("z")).await.unwrap();
    let a2 = s
        .update("/registry/pods/ns/a", b("a2"), a.mod_revision)
        .await
        .unwrap();

    let mut from_start = s.watch("/registry/pods/", start).await.unwrap();
    let mut from_now = s.watch("/registry/pods/", 0).await.unwrap();
    let e = next_event(&mut from_start).await;
    assert_eq!(
        (e.kind, e.revision(), &e.kv.value[..]),
        (EventKind::Create, a.mod_revision, &b"a1"[..])
    );
    let e = next_event(&mut from_start).await;
    assert_eq!((e.kind, e.revision()), (EventKind::Update, a2.mod_revision));

    let d = s.delete("/registry/pods/ns/a", None).await.unwrap();
    let c = s.create("/registry/pods/ns/b", b("b1")).await.unwrap();
    for w in [&mut from_start, &mut from_now] {
        let e = next_event(w).await;
        assert_eq!(
            (e.kind, e.revision(), &e.kv.value[..]),
            (EventKind::Delete, d.mod_revision, &b"a2"[..])
        );
        let e = next_event(w).await;
        assert_eq!((e.kind, e.revision()), (EventKind::Create, c.mod_revision));
    }
    // Nothing else arrives: no duplicates, nothing from other prefixes.
    for w in [&mut from_start, &mut from_now] {
        assert!(tokio::time::timeout(Duration::from_millis(200), w.next())
            .await
            .is_err());
    }

    // Many writes in a row arrive in order, without gaps.
    let base = s.current_revision().await.unwrap();
    for i in 0..200 {
        s.create(&format!("/registry/pods/ns/many{i:03}"), b("x"))
            .await
            .unwrap();
    }
    let mut replay = s.watch("/registry/pods/", base).await.unwrap();
    let mut last = base;
    for _ in 0..200 {
        let e = next_event(&mut replay).await;
        assert_eq!(e.revision(), last + 1);
        last = e.revision();
    }
}

async fn compaction_fails_old_reads_keeps_latest(s: &dyn Store) {
    let start = s.current_revision().await.unwrap();
    let mut kv = s.create("/registry/cm/ns/c", b("0")).await.unwrap();
    let first = kv.mod_revision;
    for i in 1..20 {
        kv = s
            .update("/registry/cm/ns/c", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    s.create("/registry/cm/ns/gone", b("g")).await.unwrap();
    s.delete("/registry/cm/ns/gone", None).await.unwrap();
    let keep = s.create("/registry/cm/ns/keep", b("k")).await.unwrap();
    let at = s.current_revision().await.unwrap();
    s.compact(at - 1).await.unwrap();

    let err = s
        .watch("/registry/cm/", start)
        .await
        .err()
        .expect("compacted");
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
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
    assert!(matches!(err, Error::Compacted { .. }), "{err}");

    let latest = s
        .list("/registry/cm/", ListOptions::default())
        .await
        .unwrap();
    let keys: Vec<_> = latest.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, vec!["/registry/cm/ns/c", "/registry/cm/ns/keep"]);
    assert_eq!(latest.items[0].value, "19");
    // The compaction revision itself is still readable, and a watch from it works.
    let at_compaction = s
        .list(
            "/registry/cm/",
            ListOptions {
                revision: at - 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(at_compaction.items.len(), 1);
    let mut w = s.watch("/registry/cm/", at - 1).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision(), keep.mod_revision);
    // Compacting again to an older revision is a no-op.
    s.compact(first).await.unwrap();
}

async fn watch_from_the_future_fails(s: &dyn Store) {
    let now = s.current_revision().await.unwrap();
    let err = s
        .watch("/registry/pods/", now + 10)
        .await
        .err()
        .expect("future");
    assert!(matches!(err, Error::FutureRevision { .. }), "{err}");
    let err = s
        .list(
            "/registry/pods/",
            ListOptions {
                revision: now + 10,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err}");
    let err = s.compact(now + 10).await.unwrap_err();
    assert!(matches!(err, Error::FutureRevision { .. }), "{err}");
}

async fn bad_input_is_a_typed_error(s: &dyn Store) {
    for key in ["", "no-slash", "/a//b", "/a/", "/a/../b", "/bad\u{0}key"] {
        let err = s.create(key, b("x")).await.unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{key:?}: {err}");
        let err = s.get(key).await.unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{key:?}: {err}");
    }
    let err = s.list("", ListOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err}");

    let big = Bytes::from(vec![b'x'; tug_store::MAX_VALUE_BYTES + 1]);
    let err = s.create("/registry/cm/ns/big", big).await.unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("over the limit"), "{err}");
    let fits = Bytes::from(vec![b'x'; 1024 * 1024]);
    s.create("/registry/cm/ns/fits", fits).await.unwrap();

    for token in [
        "garbage!",
        "e30=",
        "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MSwic3RhcnQiOiIuLi94In0=",
    ] {
        let options = ListOptions {
            continue_token: Some(token.into()),
            ..Default::default()
        };
        let err = s.list("/registry/cm/", options).await.unwrap_err();
        assert!(matches!(err, Error::InvalidContinue(_)), "{token}: {err}");
    }
    let negative: Revision = -1;
    let err = s
        .update("/registry/cm/ns/fits", b("y"), negative)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = s
        .watch("/registry/cm/", negative)
        .await
        .err()
        .expect("negative");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

//! Storage-engine comparison behind the embedded store's design (docs/store.md).
//!
//! One thread does what the store's writer does per group commit — a batch of 32 writes of
//! ~1 KiB, each touching a latest-version index, a history entry and a log entry — and makes
//! each batch durable, for 3 s per engine layout:
//!
//! - `redb-single`: one redb file, all three tables, fsync per batch;
//! - `redb-log+index`: the log in its own redb file, fsynced per batch;
//!   the index committed without fsync and checkpointed every 200 ms;
//! - `fjall` (shipped): an LSM tree, three keyspaces, one atomic batch, journal `fdatasync`
//!   per batch.
//!
//! Run: `cargo run --release -p tug-store --features engine-compare --example engines`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use redb::{Durability, TableDefinition};

const BATCH: usize = 32;
const RUN: Duration = Duration::from_secs(3);
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const HIST: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("hist");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

fn key(i: u64) -> String {
    format!("/registry/bench/ns/w{:02}-k{:08}", i % 64, i / 64)
}

fn redb_single(dir: &std::path::Path, value: &[u8]) -> f64 {
    let db = redb::Database::create(dir.join("single.redb")).unwrap();
    let (start, mut rev) = (Instant::now(), 0u64);
    while start.elapsed() < RUN {
        let txn = db.begin_write().unwrap();
        {
            let (mut kv, mut hist, mut log) = (
                txn.open_table(KV).unwrap(),
                txn.open_table(HIST).unwrap(),
                txn.open_table(LOG).unwrap(),
            );
            for _ in 0..BATCH {
                rev += 1;
                let k = key(rev);
                kv.insert(k.as_str(), &rev.to_le_bytes()[..]).unwrap();
                hist.insert((k.as_str(), rev), value).unwrap();
                log.insert(rev, k.as_bytes()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    rev as f64 / start.elapsed().as_secs_f64()
}

fn redb_log_index(dir: &std::path::Path, value: &[u8]) -> f64 {
    let log_db = redb::Database::create(dir.join("log.redb")).unwrap();
    let index = redb::Database::create(dir.join("index.redb")).unwrap();
    let (start, mut rev) = (Instant::now(), 0u64);
    let mut checkpoint = Instant::now();
    while start.elapsed() < RUN {
        let mut itxn = index.begin_write().unwrap();
        let durable = checkpoint.elapsed() >= Duration::from_millis(200);
        if durable {
            checkpoint = Instant::now();
        } else {
            itxn.set_durability(Durability::None).unwrap();
        }
        let ltxn = log_db.begin_write().unwrap();
        {
            let (mut kv, mut hist) = (itxn.open_table(KV).unwrap(), itxn.open_table(HIST).unwrap());
            let mut log = ltxn.open_table(LOG).unwrap();
            for _ in 0..BATCH {
                rev += 1;
                let k = key(rev);
                kv.insert(k.as_str(), &rev.to_le_bytes()[..]).unwrap();
                hist.insert((k.as_str(), rev), value).unwrap();
                log.insert(rev, value).unwrap();
            }
        }
        ltxn.commit().unwrap();
        itxn.commit().unwrap();
    }
    rev as f64 / start.elapsed().as_secs_f64()
}

fn fjall(dir: &std::path::Path, value: &[u8]) -> f64 {
    let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
    let opts = fjall::KeyspaceCreateOptions::default;
    let (kv, hist, log) = (
        db.keyspace("kv", opts).unwrap(),
        db.keyspace("hist", opts).unwrap(),
        db.keyspace("log", opts).unwrap(),
    );
    let (start, mut rev) = (Instant::now(), 0u64);
    while start.elapsed() < RUN {
        let mut batch = db.batch().durability(Some(fjall::PersistMode::SyncData));
        for _ in 0..BATCH {
            rev += 1;
            let k = key(rev);
            batch.insert(&kv, k.as_bytes(), rev.to_le_bytes());
            let mut hk = k.clone().into_bytes();
            hk.extend_from_slice(&rev.to_be_bytes());
            batch.insert(&hist, hk, value);
            batch.insert(&log, rev.to_be_bytes(), k.as_bytes());
        }
        batch.commit().unwrap();
    }
    rev as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let value = vec![b'v'; 1024];
    let dir = tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))
        .unwrap();
    println!("| engine layout | durable writes/s (batches of {BATCH}, 1 KiB) |");
    println!("|---|---|");
    let single = redb_single(dir.path(), &value);
    println!("| redb-single | {single:.0} |");
    let split = redb_log_index(dir.path(), &value);
    println!("| redb-log+index | {split:.0} |");
    let lsm = fjall(dir.path(), &value);
    println!("| fjall | {lsm:.0} |");
}

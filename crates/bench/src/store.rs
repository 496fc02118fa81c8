//! `tug bench store`: the embedded store against a real etcd, on the same disk, in one run.
//!
//! Measures durable write throughput and latency with 1, 16 and 64 concurrent writers
//! (~1 KiB values, each write acknowledged only once durable by both backends), the latency
//! of listing 10,000 keys, and watch delivery latency. Contenders alternate case by case so
//! that machine noise hits both alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use tug_store::embedded::{EmbeddedOptions, EmbeddedStore};
use tug_store::etcd_process::EtcdProcess;
use tug_store::{ListOptions, Store};

use crate::report::{Better, Row, Table};
use crate::{Error, Result};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long each write case runs per contender.
    pub case_duration: Duration,
    /// The concurrent-writer counts to measure.
    pub writers: Vec<usize>,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Keys in the list benchmark.
    pub list_keys: usize,
    /// How many times each list is timed.
    pub list_rounds: usize,
    /// Events in the watch benchmark.
    pub watch_events: usize,
    /// Where both stores keep their data (the same disk for both); a temp dir if `None`.
    pub dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            case_duration: Duration::from_secs(3),
            writers: vec![1, 16, 64],
            value_bytes: 1024,
            list_keys: 10_000,
            list_rounds: 20,
            watch_events: 1000,
            dir: None,
        }
    }
}

/// A latency histogram in microseconds, 1 µs to 100 s at 3 significant digits.
#[allow(clippy::expect_used)] // constant, valid bounds: cannot fail
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

pub(crate) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// Runs the benchmark and returns the side-by-side table.
pub async fn run(options: &Options) -> Result<Table> {
    let base = match &options.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|source| Error::Io {
        what: "creating the benchmark directory",
        source,
    })?;
    tracing::info!(dir = %base.path().display(), "starting etcd and the embedded store");
    let etcd = EtcdProcess::start_in(base.path()).await?;
    let embedded = open_embedded(base.path()).await?;
    let contenders: Vec<(&str, Arc<dyn Store>)> = vec![
        ("embedded", Arc::new(embedded)),
        ("etcd", Arc::new(etcd.store().await?)),
    ];
    let value = Bytes::from(vec![b'v'; options.value_bytes]);
    let mut rows = Vec::new();

    for &writers in &options.writers {
        let mut tput = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for (name, store) in &contenders {
            let prefix = format!("/registry/bench-write-{writers}/");
            let (ops, h) =
                write_case(store, &prefix, writers, options.case_duration, &value).await?;
            tracing::info!(backend = name, writers, ops_per_s = ops, "write case done");
            tput.push(ops);
            p50.push(ms(&h, 0.5));
            p99.push(ms(&h, 0.99));
        }
        let label = |what: &str| {
            format!(
                "{what}, {writers} writer{}",
                if writers == 1 { "" } else { "s" }
            )
        };
        rows.push(Row {
            name: label("write throughput"),
            unit: "ops/s",
            better: Better::Higher,
            values: tput,
        });
        rows.push(Row {
            name: label("write p50"),
            unit: "ms",
            better: Better::Lower,
            values: p50,
        });
        rows.push(Row {
            name: label("write p99"),
            unit: "ms",
            better: Better::Lower,
            values: p99,
        });
    }

    let mut list_p50 = Vec::new();
    let mut list_p99 = Vec::new();
    for (name, store) in &contenders {
        let h = list_case(store, options, &value).await?;
        tracing::info!(backend = name, "list case done");
        list_p50.push(ms(&h, 0.5));
        list_p99.push(ms(&h, 0.99));
    }
    let n = options.list_keys;
    rows.push(Row {
        name: format!("list {n} keys p50"),
        unit: "ms",
        better: Better::Lower,
        values: list_p50,
    });
    rows.push(Row {
        name: format!("list {n} keys p99"),
        unit: "ms",
        better: Better::Lower,
        values: list_p99,
    });

    let mut after_ack = (Vec::new(), Vec::new());
    let mut end_to_end = (Vec::new(), Vec::new());
    for (name, store) in &contenders {
        let (ack, e2e) = watch_case(store, options.watch_events, &value).await?;
        tracing::info!(backend = name, "watch case done");
        after_ack.0.push(ms(&ack, 0.5));
        after_ack.1.push(ms(&ack, 0.99));
        end_to_end.0.push(ms(&e2e, 0.5));
        end_to_end.1.push(ms(&e2e, 0.99));
    }
    rows.push(Row {
        name: "watch delivery after ack p50".into(),
        unit: "ms",
        better: Better::Lower,
        values: after_ack.0,
    });
    rows.push(Row {
        name: "watch delivery after ack p99".into(),
        unit: "ms",
        better: Better::Lower,
        values: after_ack.1,
    });
    rows.push(Row {
        name: "write call to watch event p50".into(),
        unit: "ms",
        better: Better::Lower,
        values: end_to_end.0,
    });
    rows.push(Row {
        name: "write call to watch event p99".into(),
        unit: "ms",
        better: Better::Lower,
        values: end_to_end.1,
    });

    Ok(Table {
        title: format!(
            "tug bench store: {} B values, durable writes, {} s per write case",
            options.value_bytes,
            options.case_duration.as_secs_f64()
        ),
        columns: contenders.iter().map(|(n, _)| (*n).to_owned()).collect(),
        rows,
    })
}

async fn open_embedded(dir: &Path) -> Result<EmbeddedStore> {
    let options = EmbeddedOptions::manual_compaction();
    Ok(EmbeddedStore::open(dir.join("embedded"), options).await?)
}

/// `writers` tasks create keys back to back for `duration`. Returns ops/s and latencies.
async fn write_case(
    store: &Arc<dyn Store>,
    prefix: &str,
    writers: usize,
    duration: Duration,
    value: &Bytes,
) -> Result<(f64, Histogram<u64>)> {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (store, value, prefix) = (store.clone(), value.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let mut h = histogram();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("{prefix}w{w}/k{i}");
                    let t = Instant::now();
                    store.create(&key, value.clone()).await?;
                    record(&mut h, t.elapsed());
                    i += 1;
                }
                Ok::<_, Error>(h)
            })
        })
        .collect();
    let mut total = histogram();
    for t in tasks {
        let h = t
            .await
            .map_err(|e| Error::Invalid(format!("writer task failed: {e}")))??;
        total.add(&h).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((total.len() as f64 / elapsed, total))
}

/// Loads `list_keys` keys, then times full lists of them.
async fn list_case(
    store: &Arc<dyn Store>,
    options: &Options,
    value: &Bytes,
) -> Result<Histogram<u64>> {
    let prefix = "/registry/bench-list/";
    let per_task = options.list_keys.div_ceil(64);
    let loaders: Vec<_> = (0..64)
        .map(|w| {
            let (store, value) = (store.clone(), value.clone());
            let n = per_task.min(options.list_keys.saturating_sub(w * per_task));
            tokio::spawn(async move {
                for i in 0..n {
                    store
                        .create(&format!("{prefix}ns/k{w:02}-{i:05}"), value.clone())
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for l in loaders {
        l.await
            .map_err(|e| Error::Invalid(format!("loader failed: {e}")))??;
    }
    let mut h = histogram();
    for _ in 0..options.list_rounds {
        let t = Instant::now();
        let result = store.list(prefix, ListOptions::default()).await?;
        record(&mut h, t.elapsed());
        if result.items.len() != options.list_keys {
            return Err(Error::Invalid(format!(
                "listed {} keys, expected {}",
                result.items.len(),
                options.list_keys
            )));
        }
    }
    Ok(h)
}

/// Writes `events` keys one after another while a watcher receives them. Returns the delay
/// from each write's acknowledgement to its event (0 when the event came first), and from the
/// start of each write call to its event.
async fn watch_case(
    store: &Arc<dyn Store>,
    events: usize,
    value: &Bytes,
) -> Result<(Histogram<u64>, Histogram<u64>)> {
    let prefix = "/registry/bench-watch/";
    // (issued, acknowledged) per write, by index.
    let mut times: Vec<(Instant, Instant)> = Vec::with_capacity(events);
    let mut watch = store.watch(prefix, 0).await?;
    let receiver = tokio::spawn(async move {
        let mut received = Vec::with_capacity(events);
        while received.len() < events {
            let next = tokio::time::timeout(Duration::from_secs(30), watch.next()).await;
            let event = match next {
                Ok(Some(Ok(e))) => e,
                Ok(Some(Err(e))) => return Err(Error::Store(e)),
                _ => return Err(Error::Invalid("watch ended or stalled".into())),
            };
            let at = Instant::now();
            let index = event
                .kv
                .key
                .rsplit('/')
                .next()
                .and_then(|k| k.strip_prefix('k'))
                .and_then(|k| k.parse::<usize>().ok())
                .ok_or_else(|| Error::Invalid(format!("unexpected key {}", event.kv.key)))?;
            received.push((index, at));
        }
        Ok(received)
    });
    for i in 0..events {
        let issued = Instant::now();
        store
            .create(&format!("{prefix}k{i}"), value.clone())
            .await?;
        times.push((issued, Instant::now()));
    }
    let received = receiver
        .await
        .map_err(|e| Error::Invalid(format!("watch task failed: {e}")))??;
    let (mut after_ack, mut end_to_end) = (histogram(), histogram());
    for (index, at) in received {
        if let Some((issued, acked)) = times.get(index) {
            record(&mut after_ack, at.saturating_duration_since(*acked));
            record(&mut end_to_end, at.saturating_duration_since(*issued));
        }
    }
    Ok((after_ack, end_to_end))
}

//! The etcd v3 backend, for clusters that need HA: the same [`Store`] semantics over
//! `etcd-client`. Creates, updates and deletes are single etcd transactions that compare
//! `create_revision` / `mod_revision`, exactly as kube-apiserver's etcd3 storage does, and
//! etcd's own revision is the store revision.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, EventType, GetOptions,
    PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures::StreamExt;

use crate::key::{
    list_start, paginate, prefix_end, resolve_revision, validate_key, validate_prefix,
    validate_revision, validate_value,
};
use crate::{
    Error, Event, EventKind, KeyValue, ListOptions, ListResult, Result, Revision, Store,
    WatchStream,
};

/// The largest etcd response accepted (kube-apiserver uses the same, `math.MaxInt32`).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// A store in an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// The highest revision this process has compacted to, to name in `Compacted` errors.
    compacted: Arc<AtomicI64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (e.g. `http://127.0.0.1:2379`).
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| Error::backend(format!("connecting to etcd at {endpoints:?}"), e))?;
        Ok(EtcdStore {
            client,
            compacted: Arc::new(AtomicI64::new(0)),
        })
    }

    /// A KV client that accepts responses as large as kube-apiserver allows (lists of many
    /// objects exceed gRPC's 4 MiB default).
    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Maps an etcd error, recognising compaction and future-revision answers. etcd does not
    /// say its current revision in the latter; callers that can ask for it fill it in.
    fn map_err(&self, what: &str, requested: Revision, e: etcd_client::Error) -> Error {
        let text = e.to_string();
        if text.contains("required revision has been compacted") {
            Error::Compacted {
                requested,
                oldest: self.compacted.load(Ordering::SeqCst),
            }
        } else if text.contains("required revision is a future revision") {
            Error::FutureRevision {
                requested,
                current: requested.saturating_sub(1),
            }
        } else {
            Error::backend(what.to_owned(), e)
        }
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map(|h| h.revision()).unwrap_or(0)
}

fn to_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv
            .key_str()
            .map_err(|e| Error::backend("etcd returned a non-UTF-8 key", e))?
            .to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// Why a compare-and-swap transaction failed, from its `or_else` get of the key: the key is
/// gone, or (when a revision was expected) it has moved on.
fn cas_failure(key: &str, expected: Option<Revision>, responses: &[TxnOpResponse]) -> Error {
    let actual = responses.iter().find_map(|r| match r {
        TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
        _ => None,
    });
    match (actual, expected) {
        (Some(actual), Some(expected)) => Error::Conflict {
            key: key.to_owned(),
            expected,
            actual,
        },
        _ => Error::NotFound {
            key: key.to_owned(),
        },
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let mut kv = self.kv();
        let resp = kv
            .get(key, None)
            .await
            .map_err(|e| self.map_err("etcd get", 0, e))?;
        resp.kvs().first().map(to_kv).transpose()
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let start = list_start(prefix, &options)?;
        let end = prefix_end(prefix);
        let compacted = self.compacted.load(Ordering::SeqCst);
        if start.revision != 0 && start.revision < compacted {
            return Err(Error::Compacted {
                requested: start.revision,
                oldest: compacted,
            });
        }
        if start.from >= end {
            let revision = match start.revision {
                0 => self.current_revision().await?,
                r => r,
            };
            return Ok(paginate(prefix, Vec::new(), options.limit, revision));
        }
        let mut get = GetOptions::new().with_range(end.as_bytes());
        if start.revision > 0 {
            get = get.with_revision(start.revision);
        }
        if options.limit > 0 {
            get = get.with_limit(i64::try_from(options.limit + 1).unwrap_or(i64::MAX));
        }
        let mut kv = self.kv();
        let resp = match kv.get(start.from.as_bytes(), Some(get)).await {
            Ok(resp) => resp,
            Err(e) => {
                return Err(match self.map_err("etcd list", start.revision, e) {
                    Error::FutureRevision { requested, .. } => Error::FutureRevision {
                        requested,
                        current: self.current_revision().await?,
                    },
                    other => other,
                })
            }
        };
        let revision = match start.revision {
            0 => header_revision(resp.header()),
            r => r,
        };
        let items = resp.kvs().iter().map(to_kv).collect::<Result<Vec<_>>>()?;
        Ok(paginate(prefix, items, options.limit, revision))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        validate_key(key)?;
        validate_value(key, &value)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(|e| self.map_err("etcd create", 0, e))?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let rev = header_revision(resp.header());
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: rev,
            mod_revision: rev,
        })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        validate_key(key)?;
        validate_value(key, &value)?;
        validate_revision(expected)?;
        let txn = Txn::new()
            .when([
                Compare::version(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(
                key,
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(|e| self.map_err("etcd update", 0, e))?;
        let rev = header_revision(resp.header());
        let responses = resp.op_responses();
        if !resp.succeeded() {
            return Err(cas_failure(key, Some(expected), &responses));
        }
        let create_revision = responses
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Put(put) => put.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            })
            .unwrap_or(rev);
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: rev,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        validate_key(key)?;
        let mut compares = vec![Compare::version(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            validate_revision(expected)?;
            compares.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self
            .kv()
            .txn(txn)
            .await
            .map_err(|e| self.map_err("etcd delete", 0, e))?;
        let rev = header_revision(resp.header());
        let responses = resp.op_responses();
        if !resp.succeeded() {
            return Err(cas_failure(key, expected, &responses));
        }
        let prev = responses
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Delete(del) => del.prev_kvs().first().map(to_kv),
                _ => None,
            })
            .transpose()?
            .ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
        Ok(KeyValue {
            mod_revision: rev,
            ..prev
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        validate_revision(after)?;
        let current = self.current_revision().await?;
        let compacted = self.compacted.load(Ordering::SeqCst);
        let after = resolve_revision(after, current, compacted)?;
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix).as_bytes())
            .with_start_revision(after + 1)
            .with_prev_key();
        let mut client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let stream = client
            .watch(prefix.as_bytes(), Some(options))
            .await
            .map_err(|e| self.map_err("etcd watch", after, e))?;
        let state = (stream, std::collections::VecDeque::new(), after, false);
        Ok(futures::stream::unfold(
            state,
            |(mut stream, mut pending, requested, done)| async move {
                loop {
                    if let Some(item) = pending.pop_front() {
                        return Some((item, (stream, pending, requested, done)));
                    }
                    if done {
                        return None;
                    }
                    let resp = match stream.message().await {
                        Ok(Some(resp)) => resp,
                        Ok(None) => return None,
                        Err(e) => {
                            let err = Error::backend("etcd watch stream", e);
                            return Some((Err(err), (stream, pending, requested, true)));
                        }
                    };
                    if resp.compact_revision() != 0 {
                        let err = Error::Compacted {
                            requested,
                            oldest: resp.compact_revision(),
                        };
                        return Some((Err(err), (stream, pending, requested, true)));
                    }
                    if resp.canceled() {
                        let err = Error::Backend {
                            message: format!("etcd cancelled the watch: {}", resp.cancel_reason()),
                            source: None,
                        };
                        return Some((Err(err), (stream, pending, requested, true)));
                    }
                    for event in resp.events() {
                        pending.push_back(convert_event(event));
                    }
                }
            },
        )
        .boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        validate_revision(revision)?;
        let mut kv = self.kv();
        match kv
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
        {
            Ok(_) => {}
            Err(e) => match self.map_err("etcd compact", revision, e) {
                // Compacting to an already compacted revision is a no-op, as in the embedded
                // store.
                Error::Compacted { .. } => {}
                Error::FutureRevision { requested, .. } => {
                    return Err(Error::FutureRevision {
                        requested,
                        current: self.current_revision().await?,
                    })
                }
                other => return Err(other),
            },
        }
        self.compacted.fetch_max(revision, Ordering::SeqCst);
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision> {
        let mut kv = self.kv();
        let resp = kv
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| self.map_err("etcd revision", 0, e))?;
        Ok(header_revision(resp.header()))
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<Arc<Event>> {
    let kv = event
        .kv()
        .ok_or_else(|| Error::Backend {
            message: "etcd watch event without a key".into(),
            source: None,
        })
        .and_then(to_kv)?;
    let converted = match event.event_type() {
        EventType::Put => Event {
            kind: if kv.create_revision == kv.mod_revision {
                EventKind::Create
            } else {
                EventKind::Update
            },
            kv,
        },
        EventType::Delete => {
            let prev = event.prev_kv().map(to_kv).transpose()?;
            Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    value: prev.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                    create_revision: prev.map(|p| p.create_revision).unwrap_or(0),
                    ..kv
                },
            }
        }
    };
    Ok(Arc::new(converted))
}

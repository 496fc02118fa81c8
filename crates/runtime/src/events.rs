//! Recording Events (core/v1, what `kubectl describe` and `kubectl get events` show), as
//! upstream's record.EventRecorder: non-blocking for the caller (a bounded queue; when it is
//! full events are dropped, as upstream's broadcaster does), and a repeat of the same event
//! for the same object bumps the `count` of the existing Event instead of creating another.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::mpsc;

/// How many events may wait to be written.
const QUEUE: usize = 1024;
/// How many distinct events are remembered for aggregation.
const REMEMBERED: usize = 4096;

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Routine.
    Normal,
    /// Something may be wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

struct Pending {
    object: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
}

/// Records events for one component (e.g. `default-scheduler`, `deployment-controller`).
/// Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Pending>,
}

impl Recorder {
    /// A recorder writing through `client` as `component` (on `host`, if given).
    pub fn new(client: kube::Client, component: &str, host: Option<String>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let source = EventSource {
            component: Some(component.to_owned()),
            host,
        };
        tokio::spawn(write_events(client, source, rx));
        Self { tx }
    }

    /// Records an event about `obj`.
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.event_for(reference(obj), kind, reason, message);
    }

    /// Records an event about the object `object` refers to.
    pub fn event_for(
        &self,
        object: ObjectReference,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let pending = Pending {
            object,
            kind,
            reason: reason.to_owned(),
            message: message.into(),
        };
        if self.tx.try_send(pending).is_err() {
            tracing::debug!(reason, "event queue full; event dropped");
        }
    }
}

/// An ObjectReference to `obj`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: obj.namespace(),
        name: Some(obj.name_any()),
        uid: obj.uid(),
        resource_version: obj.resource_version(),
        field_path: None,
    }
}

type Aggregate = (String, String, String, String);

async fn write_events(client: kube::Client, source: EventSource, mut rx: mpsc::Receiver<Pending>) {
    // (uid, type, reason, message) → (namespace, event name, count)
    let mut seen: HashMap<Aggregate, (String, String, i32)> = HashMap::new();
    let source = Arc::new(source);
    while let Some(p) = rx.recv().await {
        let ns = p
            .object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let key = (
            p.object.uid.clone().unwrap_or_default(),
            p.kind.as_str().to_owned(),
            p.reason.clone(),
            p.message.clone(),
        );
        let now = crate::now();
        if let Some((ens, name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = serde_json::json!({ "count": *count, "lastTimestamp": now });
            let api: Api<Event> = Api::namespaced(client.clone(), ens);
            if api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                continue;
            }
            seen.remove(&key);
        }
        let name = format!(
            "{}.{:x}",
            p.object.name.as_deref().unwrap_or("unknown"),
            now.0.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: p.object,
            reason: Some(p.reason),
            message: Some(p.message),
            type_: Some(p.kind.as_str().to_owned()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some((*source).clone()),
            reporting_component: source.component.clone(),
            reporting_instance: source.host.clone(),
            ..Event::default()
        };
        match create(&client, &ns, &event).await {
            Ok(()) => {
                if seen.len() >= REMEMBERED {
                    seen.clear();
                }
                seen.insert(key, (ns, name, 1));
            }
            Err(e) => tracing::debug!(error = %e, "writing an event failed"),
        }
    }
}

/// Creates an Event, reading the answer only for its status: the recorder never looks at
/// the created object, so decoding it (what `Api::create` does) would be wasted work on
/// every event.
async fn create(client: &kube::Client, ns: &str, event: &Event) -> Result<(), kube::Error> {
    let body = serde_json::to_vec(event).map_err(kube::Error::SerdeError)?;
    let mut req = kube::core::Request::new(Event::url_path(&(), Some(ns)))
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("create");
    client.request_text(req).await.map(drop)
}

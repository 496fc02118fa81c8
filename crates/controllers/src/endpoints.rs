//! The endpoints controller, as upstream's `pkg/controller/endpoint`: every Service with a
//! selector (ExternalName ones aside) gets an Endpoints object of the same name listing the
//! pods it selects, ready ones under `addresses` and the others under `notReadyAddresses`
//! (all under `addresses` with `publishNotReadyAddresses`), each with its pod as targetRef,
//! its node and its hostname when the pod names the service as its subdomain; ports come
//! from the service's ports with named target ports resolved against each pod's containers,
//! and addresses with the same ports are packed into one subset. Services without a
//! selector (such as `kubernetes`) are left alone. The helpers deciding which pods count and
//! which port they serve on are shared with the endpointslice controller.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::events::EventType;
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::util::is_pod_ready;
use crate::Context;

/// The label marking the Endpoints of a headless service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Most addresses one Endpoints object holds.
pub const MAX_CAPACITY: usize = 1000;
/// The annotation set when addresses were left out for capacity.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// Whether a Service's selector (a missing one selects nothing, an empty one everything)
/// selects `labels`.
pub fn service_selects(svc: &Service, labels: &BTreeMap<String, String>) -> bool {
    match svc.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(sel) => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
        None => false,
    }
}

/// Whether a Service gets endpoints from the controllers: it has a selector and is not
/// ExternalName.
pub fn is_managed(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .is_some_and(|s| s.selector.is_some() && s.type_.as_deref() != Some("ExternalName"))
}

/// Whether a pod belongs in a service's endpoints, as upstream's `ShouldPodBeInEndpoints`:
/// it has an IP, is not being deleted (unless `include_terminating`) and has not finished
/// for good under its restart policy.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip || (!include_terminating && pod.metadata.deletion_timestamp.is_some()) {
        return false;
    }
    let phase = status.and_then(|s| s.phase.as_deref());
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => !matches!(phase, Some("Failed" | "Succeeded")),
        Some("OnFailure") => phase != Some("Succeeded"),
        _ => true,
    }
}

/// The pod's first IP.
pub fn pod_ip(pod: &Pod) -> Option<String> {
    let s = pod.status.as_ref()?;
    s.pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())
        .or_else(|| s.pod_ips.as_ref()?.first().map(|i| i.ip.clone()))
}

/// Whether the pod's hostname is published: it has one and names the service as its
/// subdomain.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.hostname.as_deref().is_some_and(|h| !h.is_empty())
            && s.subdomain.as_deref() == svc.metadata.name.as_deref()
            && pod.metadata.namespace == svc.metadata.namespace
    })
}

/// The pod port a service port reaches, as upstream's `podutil.FindPort`: a number as is, a
/// name looked up among the containers' ports of the same protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// A reference to a pod.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// An informer handler on pods that queues every service selecting the pod (before or
/// after the change).
pub fn enqueue_services(
    queue: &Queue<ObjectKey>,
    services: Store<Service>,
) -> impl Fn(&Change<'_, Pod>) + Send + Sync + 'static {
    let queue = queue.clone();
    move |c| {
        let ns = c.object().namespace().unwrap_or_default();
        let hit = |pod: &Pod| {
            for svc in services.filter_namespace(&ns, |s| service_selects(s, pod.labels())) {
                queue.add(ObjectKey::of(svc.as_ref()));
            }
        };
        if let Some(old) = c.old() {
            if old.labels() != c.object().labels() {
                hit(old);
            }
        }
        hit(c.object());
    }
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let queue: Queue<ObjectKey> = Queue::new();
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let endpoints = ctx.informers.get::<Endpoints>();
    services.on_change(crate::util::enqueue_self(&queue));
    pods.on_change(enqueue_services(&queue, services.store()));
    {
        let q = queue.clone();
        endpoints.on_change(move |c: &Change<'_, Endpoints>| {
            if matches!(c, Change::Deleted(_)) {
                q.add(ObjectKey::of(c.object().as_ref()));
            }
        });
    }
    let ctx = ctx.clone();
    let stores = Stores {
        services: services.store(),
        pods: pods.store(),
        endpoints: endpoints.store(),
    };
    Box::pin(async move {
        ctx.informers.synced().await;
        let recorder = ctx.recorder("endpoint-controller");
        let client = ctx.client.clone();
        let stores = Arc::new(stores);
        tug_runtime::queue::run(
            "endpoint",
            queue,
            ctx.options.workers,
            move |key: ObjectKey| {
                let (client, stores, recorder) = (client.clone(), stores.clone(), recorder.clone());
                async move {
                    let r = sync(&client, &stores, &key).await;
                    if let Err(e) = &r {
                        recorder.event_for(
                            ObjectReference {
                                kind: Some("Endpoints".into()),
                                api_version: Some("v1".into()),
                                namespace: Some(key.namespace.clone()),
                                name: Some(key.name.clone()),
                                ..ObjectReference::default()
                            },
                            EventType::Warning,
                            "FailedToUpdateEndpoint",
                            format!("Failed to update endpoint {key}: {e}"),
                        );
                    }
                    r.map(|()| None)
                }
            },
        )
        .await;
    })
}

struct Stores {
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
}

async fn sync(client: &kube::Client, stores: &Stores, key: &ObjectKey) -> Result<(), kube::Error> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), &key.namespace);
    let Some(svc) = stores.services.get(key) else {
        // The service is gone: so are its endpoints.
        if stores.endpoints.get(key).is_some() {
            match api.delete(&key.name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    };
    if !is_managed(&svc) {
        return Ok(());
    }
    let spec = svc.spec.clone().unwrap_or_default();
    let tolerate = spec.publish_not_ready_addresses == Some(true);
    let pods = stores
        .pods
        .filter_namespace(&key.namespace, |p| service_selects(&svc, p.labels()));
    // (address, ready) → ports.
    let mut entries: Vec<(EndpointAddress, bool, Vec<EndpointPort>)> = Vec::new();
    for pod in &pods {
        if !should_pod_be_in_endpoints(pod, tolerate) {
            continue;
        }
        let Some(ip) = pod_ip(pod) else { continue };
        let address = EndpointAddress {
            ip,
            hostname: should_set_hostname(pod, &svc)
                .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
                .flatten(),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
        };
        let ready = tolerate || is_pod_ready(pod);
        let ports = spec.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            if spec.cluster_ip.as_deref() == Some("None") {
                entries.push((address, ready, Vec::new()));
            }
            continue;
        }
        let eps: Vec<EndpointPort> = ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: p.name.clone(),
                    port: find_port(pod, p)?,
                    protocol: p.protocol.clone(),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        if !eps.is_empty() {
            entries.push((address, ready, eps));
        }
    }
    let mut subsets = repack(entries);
    let truncated = truncate(&mut subsets);

    let current = stores.endpoints.get(key);
    let mut labels = svc.labels().clone();
    let ip_set = spec
        .cluster_ip
        .as_deref()
        .is_some_and(|ip| !ip.is_empty() && ip != "None");
    if !ip_set {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    if let Some(cur) = &current {
        let same_annotation = cur.annotations().contains_key(OVER_CAPACITY) == truncated;
        if cur.subsets.clone().unwrap_or_default() == subsets
            && cur.labels() == &labels
            && same_annotation
        {
            return Ok(());
        }
    }
    let mut annotations = current
        .as_ref()
        .map(|c| c.annotations().clone())
        .unwrap_or_default();
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let ep = Endpoints {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            resource_version: current
                .as_ref()
                .and_then(|c| c.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    let result = if current.is_some() {
        api.replace(&key.name, &PostParams::default(), &ep).await
    } else {
        api.create(&PostParams::default(), &ep).await
    };
    match result {
        Ok(_) => Ok(()),
        // Forbidden: the namespace is terminating; nothing more to do.
        Err(kube::Error::Api(s)) if s.code == 403 && current.is_none() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Packs addresses into subsets by identical port sets, as upstream's `RepackSubsets`:
/// sorted addresses, sorted ports, deterministic order.
fn repack(entries: Vec<(EndpointAddress, bool, Vec<EndpointPort>)>) -> Vec<EndpointSubset> {
    type PortKey = Vec<(String, i32, String)>;
    let key_of = |ports: &[EndpointPort]| -> PortKey {
        let mut k: PortKey = ports
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_default(),
                )
            })
            .collect();
        k.sort();
        k.dedup();
        k
    };
    // Ports, then ready and not-ready addresses by sort key.
    type Group = (
        Vec<EndpointPort>,
        BTreeMap<String, EndpointAddress>,
        BTreeMap<String, EndpointAddress>,
    );
    let mut groups: BTreeMap<PortKey, Group> = BTreeMap::new();
    // One address may appear under several ports (one entry per pod, all ports).
    for (addr, ready, ports) in entries {
        let k = key_of(&ports);
        let g = groups.entry(k).or_insert_with(|| {
            let mut ps = ports.clone();
            ps.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
            ps.dedup();
            (ps, BTreeMap::new(), BTreeMap::new())
        });
        let sort_key = format!(
            "{}/{}",
            addr.ip,
            addr.target_ref
                .as_ref()
                .and_then(|r| r.uid.clone())
                .unwrap_or_default()
        );
        if ready {
            g.1.insert(sort_key, addr);
        } else {
            g.2.insert(sort_key, addr);
        }
    }
    groups
        .into_values()
        .map(|(ports, ready, not_ready)| EndpointSubset {
            addresses: (!ready.is_empty()).then(|| ready.into_values().collect()),
            not_ready_addresses: (!not_ready.is_empty()).then(|| not_ready.into_values().collect()),
            ports: (!ports.is_empty()).then_some(ports),
        })
        .collect()
}

/// Caps the addresses at [`MAX_CAPACITY`], ready ones first; whether any were dropped.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |f: fn(&EndpointSubset) -> usize| subsets.iter().map(f).sum::<usize>();
    let ready = count(|s| s.addresses.as_ref().map_or(0, Vec::len));
    let not_ready = count(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len));
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let mut room = MAX_CAPACITY;
    for s in subsets.iter_mut() {
        if let Some(a) = s.addresses.as_mut() {
            a.truncate(room);
            room -= a.len();
        }
    }
    for s in subsets.iter_mut() {
        if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(room);
            room -= a.len();
        }
    }
    true
}

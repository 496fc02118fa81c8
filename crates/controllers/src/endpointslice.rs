//! The endpointslice controller, as upstream's `pkg/controller/endpointslice`: every Service
//! with a selector (ExternalName ones aside) gets discovery.k8s.io/v1 EndpointSlices named
//! `<service>-<random>`, owned by the service, labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, holding one
//! endpoint per selected pod (its IP, conditions ready / serving / terminating, node, zone,
//! hostname, targetRef) — at most 100 per slice (upstream's `--max-endpoints-per-slice`),
//! pods with different resolved ports in different slices. A service selecting nothing
//! keeps one empty placeholder slice.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use tug_runtime::{Change, ObjectKey, Queue, Store};

use crate::endpoints::{
    enqueue_services, find_port, is_managed, pod_ip, pod_ref, service_selects,
    should_pod_be_in_endpoints, should_set_hostname, HEADLESS_LABEL,
};
use crate::util::is_pod_ready;
use crate::Context;

/// The label naming a slice's service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller managing a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Most endpoints in one slice (upstream's `--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The node label giving an endpoint's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let queue: Queue<ObjectKey> = Queue::new();
    let services = ctx.informers.get::<Service>();
    let pods = ctx.informers.get::<Pod>();
    let slices = ctx.informers.get::<EndpointSlice>();
    let nodes = ctx.informers.get::<Node>();
    services.on_change(crate::util::enqueue_self(&queue));
    pods.on_change(enqueue_services(&queue, services.store()));
    {
        let q = queue.clone();
        slices.on_change(move |c: &Change<'_, EndpointSlice>| {
            let s = c.object();
            if s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME) {
                if let Some(svc) = s.labels().get(SERVICE_NAME_LABEL) {
                    q.add(ObjectKey::new(
                        s.namespace().unwrap_or_default(),
                        svc.clone(),
                    ));
                }
            }
        });
    }
    let stores = Arc::new(Stores {
        services: services.store(),
        pods: pods.store(),
        slices: slices.store(),
        nodes: nodes.store(),
    });
    let client = ctx.client.clone();
    ctx.run_workers("endpointslice", queue, move |key: ObjectKey| {
        let (client, stores) = (client.clone(), stores.clone());
        async move { sync(&client, &stores, &key).await.map(|()| None) }
    })
}

struct Stores {
    services: Store<Service>,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
}

type PortKey = Vec<(String, i32, String)>;
/// A port set and its endpoints, by pod name.
type Group = (Vec<EndpointPort>, Vec<(String, Endpoint)>);

fn port_key(ports: &[EndpointPort]) -> PortKey {
    ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
            )
        })
        .collect()
}

async fn sync(client: &kube::Client, stores: &Stores, key: &ObjectKey) -> Result<(), kube::Error> {
    let Some(svc) = stores.services.get(key) else {
        // The garbage collector removes the slices of a deleted service.
        return Ok(());
    };
    if !is_managed(&svc) || svc.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses == Some(true);
    let ipv6 = spec
        .ip_families
        .as_ref()
        .and_then(|f| f.first())
        .is_some_and(|f| f == "IPv6");
    let address_type = if ipv6 { "IPv6" } else { "IPv4" };

    // The endpoints we want, grouped by their ports.
    let mut desired: BTreeMap<PortKey, Group> = BTreeMap::new();
    for pod in stores
        .pods
        .filter_namespace(&key.namespace, |p| service_selects(&svc, p.labels()))
    {
        if !should_pod_be_in_endpoints(&pod, true) {
            continue;
        }
        let Some(ip) = pod_ip(&pod).filter(|ip| ip.contains(':') == ipv6) else {
            continue;
        };
        let ports: Vec<EndpointPort> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(find_port(&pod, p)?),
                    protocol: p.protocol.clone(),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        let serving = publish || is_pod_ready(&pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let zone = node_name
            .as_ref()
            .and_then(|n| stores.nodes.get(&ObjectKey::cluster(n.clone())))
            .and_then(|n| n.labels().get(ZONE_LABEL).cloned());
        let endpoint = Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(publish || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: should_set_hostname(&pod, &svc)
                .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
                .flatten(),
            node_name,
            zone,
            target_ref: Some(pod_ref(&pod)),
            ..Endpoint::default()
        };
        desired
            .entry(port_key(&ports))
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push((pod.name_any(), endpoint));
    }

    let mut existing: Vec<Arc<EndpointSlice>> =
        stores.slices.filter_namespace(&key.namespace, |s| {
            s.labels().get(SERVICE_NAME_LABEL) == Some(&key.name)
                && s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME)
        });
    existing.sort_by_key(|s| s.name_any());
    let mut by_ports: BTreeMap<PortKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    let mut stale = Vec::new();
    for s in existing {
        if s.address_type != address_type || s.metadata.deletion_timestamp.is_some() {
            stale.push(s);
            continue;
        }
        by_ports
            .entry(port_key(s.ports.as_deref().unwrap_or_default()))
            .or_default()
            .push(s);
    }
    if desired.is_empty() {
        // A placeholder keeps the service visible as selecting nothing.
        desired.insert(Vec::new(), (Vec::new(), Vec::new()));
    }

    let labels = slice_labels(&svc, &key.name);
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &key.namespace);
    for (pk, (ports, mut endpoints)) in desired {
        endpoints.sort_by(|a, b| a.0.cmp(&b.0));
        let endpoints: Vec<Endpoint> = endpoints.into_iter().map(|(_, e)| e).collect();
        let mut chunks: Vec<Vec<Endpoint>> = endpoints
            .chunks(MAX_ENDPOINTS_PER_SLICE)
            .map(<[Endpoint]>::to_vec)
            .collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let mut have = by_ports.remove(&pk).unwrap_or_default().into_iter();
        for chunk in chunks {
            let want_ports = (!ports.is_empty()).then(|| ports.clone());
            match have.next() {
                Some(cur) => {
                    if cur.endpoints.clone().unwrap_or_default() == chunk
                        && cur.ports == want_ports
                        && cur.labels() == &labels
                    {
                        continue;
                    }
                    let mut next = (*cur).clone();
                    next.endpoints = Some(chunk);
                    next.ports = want_ports;
                    next.metadata.labels = Some(labels.clone());
                    api.replace(&cur.name_any(), &PostParams::default(), &next)
                        .await?;
                }
                None => {
                    let slice = EndpointSlice {
                        metadata: ObjectMeta {
                            generate_name: Some(format!("{}-", key.name)),
                            namespace: Some(key.namespace.clone()),
                            labels: Some(labels.clone()),
                            owner_references: Some(vec![crate::util::controller_ref(svc.as_ref())]),
                            ..ObjectMeta::default()
                        },
                        address_type: address_type.to_owned(),
                        endpoints: Some(chunk),
                        ports: want_ports,
                    };
                    match api.create(&PostParams::default(), &slice).await {
                        Ok(_) => {}
                        // The namespace is terminating.
                        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        stale.extend(have);
    }
    stale.extend(by_ports.into_values().flatten());
    for s in stale {
        match api.delete(&s.name_any(), &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(st)) if st.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn slice_labels(svc: &Service, name: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| {
            k.as_str() != SERVICE_NAME_LABEL
                && k.as_str() != MANAGED_BY_LABEL
                && k.as_str() != HEADLESS_LABEL
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(SERVICE_NAME_LABEL.into(), name.to_owned());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

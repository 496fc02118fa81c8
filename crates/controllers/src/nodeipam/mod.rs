//! The node IPAM controller, as upstream's with the range allocator: every node without a
//! `spec.podCIDR` gets the next free block of `--node-cidr-mask-size` from
//! `--cluster-cidr` (`spec.podCIDR` and `spec.podCIDRs`); blocks already on nodes are
//! marked used as the informer reports them (so a restart never hands one out twice), and a
//! deleted node's block is free again. When the cluster CIDR is used up the node gets a
//! `CIDRNotAvailable` event and is retried with back-off.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use tug_runtime::events::EventType;
use tug_runtime::{Change, ObjectKey, Queue};

use crate::Context;

/// What can go wrong allocating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--cluster-cidr` or `--node-cidr-mask-size` is unusable.
    #[error("invalid cluster CIDR {cidr:?} with node mask size {mask}")]
    Config {
        /// The cluster CIDR.
        cidr: String,
        /// The node mask size.
        mask: u8,
    },
    /// Every block is taken.
    #[error("no remaining CIDR in {0} for node")]
    Exhausted(String),
    /// Writing the node failed.
    #[error("patching node {node}: {source}")]
    Patch {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// The node blocks of the cluster CIDR: which are used.
#[derive(Debug)]
pub struct CidrSet {
    network: u32,
    cluster_prefix: u8,
    mask: u8,
    used: HashSet<u32>,
    next: u32,
}

/// Parses `a.b.c.d/n` into (network, prefix), host bits cleared.
pub fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (addr, len) = s.trim().split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u8 = len.parse().ok().filter(|p| *p <= 32)?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Some((u32::from(addr) & mask, prefix))
}

impl CidrSet {
    /// The blocks of size `/mask` in `cluster_cidr`.
    pub fn new(cluster_cidr: &str, mask: u8) -> Result<Self, Error> {
        let (network, cluster_prefix) = parse_cidr(cluster_cidr)
            .filter(|(_, p)| *p <= mask && mask <= 32 && mask - p <= 24)
            .ok_or_else(|| Error::Config {
                cidr: cluster_cidr.to_owned(),
                mask,
            })?;
        Ok(Self {
            network,
            cluster_prefix,
            mask,
            used: HashSet::new(),
            next: 0,
        })
    }

    fn blocks(&self) -> u32 {
        1 << (self.mask - self.cluster_prefix)
    }

    fn block(&self, i: u32) -> String {
        let addr = self.network + (i << (32 - u32::from(self.mask)));
        format!("{}/{}", Ipv4Addr::from(addr), self.mask)
    }

    fn index(&self, cidr: &str) -> Option<u32> {
        let (net, prefix) = parse_cidr(cidr)?;
        if prefix != self.mask {
            return None;
        }
        let off = net.checked_sub(self.network)? >> (32 - u32::from(self.mask));
        (off < self.blocks()).then_some(off)
    }

    /// Marks a block used (one on a node already); false if it is not one of ours.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        match self.index(cidr) {
            Some(i) => {
                self.used.insert(i);
                true
            }
            None => false,
        }
    }

    /// Frees a block.
    pub fn release(&mut self, cidr: &str) {
        if let Some(i) = self.index(cidr) {
            self.used.remove(&i);
        }
    }

    /// Takes the next free block.
    pub fn allocate(&mut self) -> Option<String> {
        let n = self.blocks();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.used.insert(i) {
                self.next = (i + 1) % n;
                return Some(self.block(i));
            }
        }
        None
    }
}

fn pod_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    match &spec.pod_cidrs {
        Some(list) if !list.is_empty() => list.clone(),
        _ => spec.pod_cidr.iter().cloned().collect(),
    }
}

/// Registers the controller's handlers and returns its workers.
pub fn start(ctx: &Context) -> BoxFuture<'static, ()> {
    let set = match CidrSet::new(&ctx.options.cluster_cidr, ctx.options.node_cidr_mask_size) {
        Ok(s) => Arc::new(Mutex::new(s)),
        Err(e) => {
            tracing::error!(error = %e, "nodeipam controller not started");
            return Box::pin(async {});
        }
    };
    let nodes = ctx.informers.get::<Node>();
    let queue: Queue<ObjectKey> = Queue::new();
    let (q, s) = (queue.clone(), set.clone());
    nodes.on_change(move |c: &Change<'_, Node>| {
        let mut set = s.lock().unwrap_or_else(|e| e.into_inner());
        match c {
            Change::Deleted(node) => {
                for cidr in pod_cidrs(node) {
                    set.release(&cidr);
                }
            }
            _ => {
                let node = c.object();
                let cidrs = pod_cidrs(node);
                for cidr in &cidrs {
                    set.occupy(cidr);
                }
                if cidrs.is_empty() {
                    q.add(ObjectKey::of(node.as_ref()));
                }
            }
        }
    });
    let store = nodes.store();
    let informers = ctx.informers.clone();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let recorder = ctx.recorder("cidrAllocator");
    let workers = ctx.options.workers;
    Box::pin(async move {
        informers.synced().await;
        tug_runtime::queue::run("nodeipam", queue, workers, move |key: ObjectKey| {
            let (store, set, api, recorder) =
                (store.clone(), set.clone(), api.clone(), recorder.clone());
            async move {
                let Some(node) = store.get(&key) else {
                    return Ok(None);
                };
                if !pod_cidrs(&node).is_empty() {
                    return Ok(None);
                }
                let allocated = set.lock().unwrap_or_else(|e| e.into_inner()).allocate();
                let Some(cidr) = allocated else {
                    recorder.event(
                        node.as_ref(),
                        EventType::Normal,
                        "CIDRNotAvailable",
                        format!("Node {} status is now: CIDRNotAvailable", node.name_any()),
                    );
                    return Err(Error::Exhausted(set_name(&set)));
                };
                // Conditional on the version read: a stale store copy must not give a node a
                // second block (409 releases this one and the sync reads again).
                let patch = serde_json::json!({
                    "metadata": { "resourceVersion": node.resource_version() },
                    "spec": { "podCIDR": cidr, "podCIDRs": [cidr] },
                });
                match api
                    .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        tracing::debug!(node = %key.name, %cidr, "allocated podCIDR");
                        Ok(None)
                    }
                    Err(e) => {
                        set.lock().unwrap_or_else(|e| e.into_inner()).release(&cidr);
                        if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                            return Ok(None);
                        }
                        Err(Error::Patch {
                            node: key.name.clone(),
                            source: e,
                        })
                    }
                }
            }
        })
        .await;
    })
}

fn set_name(set: &Mutex<CidrSet>) -> String {
    let s = set.lock().unwrap_or_else(|e| e.into_inner());
    format!("{}/{}", Ipv4Addr::from(s.network), s.cluster_prefix)
}

#[cfg(test)]
pub(crate) mod tests;

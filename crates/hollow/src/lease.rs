//! The node heartbeat through a coordination.k8s.io Lease in `kube-node-lease`, as upstream's
//! kubelet node lease controller: the lease is named after the node, held by it, owned by
//! the Node object (so it goes with it), and renewed by updating `renewTime` from the last
//! written copy (a conflict or a missing lease is mended by reading or creating it again).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;

use crate::Error;

/// The namespace of node leases.
pub const NAMESPACE: &str = "kube-node-lease";

/// Keeps one node's lease renewed.
pub struct NodeLease {
    api: Api<Lease>,
    name: String,
    duration_seconds: i32,
    owner: Option<OwnerReference>,
    last: Option<Lease>,
}

impl NodeLease {
    /// The lease of `node`, through `client`.
    pub fn new(client: kube::Client, node: &Node, duration_seconds: i32) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let owner = node.metadata.uid.clone().map(|uid| OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Node".to_owned(),
            name: name.clone(),
            uid,
            ..OwnerReference::default()
        });
        Self {
            api: Api::namespaced(client, NAMESPACE),
            name,
            duration_seconds,
            owner,
            last: None,
        }
    }

    fn fresh(&self, now: MicroTime) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(NAMESPACE.to_owned()),
                owner_references: self.owner.clone().map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.name.clone()),
                lease_duration_seconds: Some(self.duration_seconds),
                renew_time: Some(now),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Renews the lease (creating it if needed).
    pub async fn renew(&mut self) -> Result<(), Error> {
        let now = MicroTime(Timestamp::now());
        if self.last.is_none() {
            self.last = self.api.get_opt(&self.name).await?;
        }
        let result = match self.last.take() {
            None => {
                self.api
                    .create(&PostParams::default(), &self.fresh(now))
                    .await
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                spec.holder_identity = Some(self.name.clone());
                spec.lease_duration_seconds = Some(self.duration_seconds);
                spec.renew_time = Some(now);
                if lease.metadata.owner_references.is_none() {
                    lease.metadata.owner_references = self.owner.clone().map(|o| vec![o]);
                }
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        // On failure `last` stays empty: the next renewal reads the lease afresh.
        self.last = Some(result?);
        Ok(())
    }
}

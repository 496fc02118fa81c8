//! The replicaset and replicationcontroller controllers (not written yet).

use futures::future::BoxFuture;

use crate::Context;

/// Registers the ReplicaSet controller's handlers and returns its workers.
pub fn start_replicasets(_ctx: &Context) -> BoxFuture<'static, ()> {
    Box::pin(async {})
}

/// Registers the ReplicationController controller's handlers and returns its workers.
pub fn start_replication_controllers(_ctx: &Context) -> BoxFuture<'static, ()> {
    Box::pin(async {})
}

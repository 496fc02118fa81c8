//! The runtime every Tugboat control loop is built on, upstream's client-go in miniature:
//! [`informer`] (one watch per resource, a shared in-memory store, change handlers) and its
//! [`factory`] (one informer per type per process),
//! [`queue`] (a de-duplicating work queue with per-key exponential back-off and workers),
//! [`events`] (an Event recorder that aggregates repeats), [`leader`] (leader election
//! through a coordination.k8s.io Lease) and [`trim`] (objects decoded without
//! managedFields, for informers that never read them). The controllers, the scheduler and the hollow
//! kubelets all use it, whether their client talks to the apiserver in-process or over HTTPS.

pub mod events;
pub mod factory;
pub mod informer;
pub mod leader;
pub mod queue;
pub mod trim;

pub use factory::Factory;
pub use informer::{Change, Informer, ObjectKey, Store};
pub use queue::Queue;

/// The time now as a k8s-openapi `Time`.
pub fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now())
}

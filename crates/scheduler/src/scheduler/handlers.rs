//! The informer handlers: bound pods feed the cache (confirming assumed ones), pending pods
//! this scheduler serves feed the queue, nodes feed the cache; changes that may make
//! waiting pods schedulable move them back to the queue.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use tug_runtime::{Change, Informer};

use super::{key_of, Shared};
use crate::node_info::PodInfo;
use crate::queue::Event;

fn assigned(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn responsible(shared: &Shared, p: &Pod) -> bool {
    let name = p
        .spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or("default-scheduler");
    name == shared.options.scheduler_name
}

fn nominated(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("")
}

fn pending(shared: &Shared, p: &Arc<Pod>) {
    if terminal(p) || !responsible(shared, p) {
        return;
    }
    let nominated = nominated(p);
    if !nominated.is_empty() {
        shared
            .nominator()
            .set(Arc::new(PodInfo::new(p.clone())), nominated);
    }
    shared.queue.add(p.clone());
}

/// Registers the handlers on the pod and node informers.
pub fn register(shared: &Arc<Shared>, pods: &Informer<Pod>, nodes: &Informer<Node>) {
    let s = shared.clone();
    pods.on_change(move |c| match c {
        Change::Added(p) => match assigned(p) {
            Some(node) => {
                if !terminal(p) {
                    s.cache()
                        .add_pod(Arc::new(PodInfo::new(Arc::clone(p))), node);
                    s.queue.move_all(Event::AssignedPodAdd);
                }
            }
            None => pending(&s, p),
        },
        Change::Updated { old, new } => match assigned(new) {
            Some(node) => {
                let key = key_of(new);
                if assigned(old).is_none() {
                    s.queue.delete(&key);
                    s.nominator().delete(&key);
                }
                if terminal(new) {
                    s.cache().remove_pod(&key);
                    s.queue.move_all(Event::AssignedPodDelete);
                } else {
                    s.cache()
                        .add_pod(Arc::new(PodInfo::new(Arc::clone(new))), node);
                    if old.metadata.labels != new.metadata.labels || assigned(old).is_none() {
                        s.queue.move_all(Event::AssignedPodAdd);
                    }
                }
            }
            None => {
                let key = key_of(new);
                if nominated(new).is_empty() && !nominated(old).is_empty() {
                    s.nominator().delete(&key);
                }
                pending(&s, new);
            }
        },
        Change::Deleted(p) => {
            let key = key_of(p);
            match assigned(p) {
                Some(_) => {
                    s.cache().remove_pod(&key);
                    s.queue.move_all(Event::AssignedPodDelete);
                }
                None => {
                    s.queue.delete(&key);
                    s.nominator().delete(&key);
                }
            }
        }
    });
    let s = shared.clone();
    nodes.on_change(move |c| match c {
        Change::Added(n) => {
            s.cache().set_node((*n).clone());
            s.queue.move_all(Event::Node);
        }
        Change::Updated { old, new } => {
            s.cache().set_node((*new).clone());
            let allocatable = |n: &Node| n.status.as_ref().and_then(|s| s.allocatable.clone());
            if old.spec != new.spec
                || old.metadata.labels != new.metadata.labels
                || allocatable(old) != allocatable(new)
            {
                s.queue.move_all(Event::Node);
            }
        }
        Change::Deleted(n) => {
            s.cache()
                .remove_node(n.metadata.name.as_deref().unwrap_or(""));
        }
    });
}

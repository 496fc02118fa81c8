//! NodePorts: a pod's host ports must be free on the node.

use crate::framework::{Code, Ctx, CycleState, Plugin, Status};
use crate::node_info::{NodeInfo, PodInfo};

/// Upstream's reason.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// The NodePorts plugin.
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &Ctx<'_>) -> Status {
        if pod.ports.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let clash = pod
            .ports
            .iter()
            .any(|p| node.used_ports.iter().any(|u| u.conflicts(p)));
        if clash {
            Status::new(Code::Unschedulable, ERR_REASON)
        } else {
            Status::success()
        }
    }
}

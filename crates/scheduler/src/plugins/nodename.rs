//! NodeName: a pod that names its node fits only that node.

use crate::framework::{Code, Ctx, CycleState, Plugin, Status};
use crate::node_info::{NodeInfo, PodInfo};

/// Upstream's reason.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// The NodeName plugin.
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &Ctx<'_>) -> Status {
        match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(n) if !n.is_empty() => Status::success(),
            _ => Status::skip(),
        }
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(n) if !n.is_empty() && n != node.name => {
                Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON)
            }
            _ => Status::success(),
        }
    }
}

//! Why a pod fits nowhere, and upstream's message for it (`FitError.Error()`):
//! `0/<all> nodes are available: <PreFilter message>.` or the sorted histogram of the nodes'
//! reasons (`<count> <reason>`, joined by ", ", ending in "."), then the PostFilter message
//! (preemption's, itself a FitError message prefixed with "preemption: ").

use std::collections::{BTreeSet, HashMap};

use super::Status;

/// What the Filters said, per node.
#[derive(Clone, Debug, Default)]
pub struct Diagnosis {
    /// Nodes with an explicit status: (node position in the snapshot, status).
    pub node_to_status: Vec<(usize, Status)>,
    /// The status of every node not in `node_to_status` (preemption's "not helpful").
    pub absent_status: Option<Status>,
    /// A PreFilter's rejection message, if one rejected the pod.
    pub pre_filter_msg: String,
    /// The PostFilter's message (preemption).
    pub post_filter_msg: String,
    /// Plugins that rejected the pod somewhere.
    pub unschedulable_plugins: BTreeSet<&'static str>,
}

/// A pod fits no node.
#[derive(Clone, Debug, Default)]
pub struct FitError {
    /// How many nodes were considered.
    pub num_all_nodes: usize,
    /// Why.
    pub diagnosis: Diagnosis,
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let d = &self.diagnosis;
        if !d.pre_filter_msg.is_empty() {
            write!(f, " {}.", d.pre_filter_msg)?;
        } else {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for (_, s) in &d.node_to_status {
                for r in &s.reasons {
                    *counts.entry(r.as_ref()).or_default() += 1;
                }
            }
            let explicit = d.node_to_status.len();
            if explicit < self.num_all_nodes {
                if let Some(s) = &d.absent_status {
                    for r in &s.reasons {
                        *counts.entry(r.as_ref()).or_default() += self.num_all_nodes - explicit;
                    }
                }
            }
            let mut parts: Vec<String> = counts.iter().map(|(r, c)| format!("{c} {r}")).collect();
            parts.sort();
            if !parts.is_empty() {
                write!(f, " {}.", parts.join(", "))?;
            }
        }
        if !d.post_filter_msg.is_empty() {
            write!(f, " {}", d.post_filter_msg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Code;
    use super::*;

    #[test]
    fn the_message_is_upstreams() {
        let taint = Status::new(
            Code::UnschedulableAndUnresolvable,
            "node(s) had untolerated taint {node-role: x}",
        );
        let cpu = Status::new(Code::Unschedulable, "Insufficient cpu");
        let mut pre = FitError {
            num_all_nodes: 3,
            diagnosis: Diagnosis {
                node_to_status: vec![(1, cpu.clone()), (2, cpu.clone())],
                ..Default::default()
            },
        };
        pre.diagnosis.node_to_status.insert(0, (0, taint));
        let preemption = FitError {
            num_all_nodes: 3,
            diagnosis: Diagnosis {
                node_to_status: (0..3)
                    .map(|i| {
                        (
                            i,
                            Status::new(
                                Code::UnschedulableAndUnresolvable,
                                "No preemption victims found for incoming pod",
                            ),
                        )
                    })
                    .collect(),
                ..Default::default()
            },
        };
        pre.diagnosis.post_filter_msg = format!("preemption: {preemption}");
        assert_eq!(
            pre.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role: x}, \
             2 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption \
             victims found for incoming pod."
        );
        let mut multi = Status::new(Code::Unschedulable, "Insufficient cpu");
        multi.reasons.push("Insufficient memory".into());
        let absent = FitError {
            num_all_nodes: 4,
            diagnosis: Diagnosis {
                node_to_status: vec![(0, multi)],
                absent_status: Some(Status::new(
                    Code::UnschedulableAndUnresolvable,
                    "Preemption is not helpful for scheduling",
                )),
                ..Default::default()
            },
        };
        assert_eq!(
            absent.to_string(),
            "0/4 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, \
             3 Preemption is not helpful for scheduling."
        );
        let prefilter = FitError {
            num_all_nodes: 2,
            diagnosis: Diagnosis {
                pre_filter_msg: "something".into(),
                ..Default::default()
            },
        };
        assert_eq!(prefilter.to_string(), "0/2 nodes are available: something.");
    }
}

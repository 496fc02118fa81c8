//! The kubelet: makes the pods bound to its node real. It watches those pods, runs them as
//! containers through CRI v1 (gRPC to containerd, which `tug` starts itself unless told
//! otherwise), networks them through CNI, and reports their status, the node's status and
//! the node's Lease back to the API server.

pub mod cri;

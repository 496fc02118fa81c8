//! Tugboat's API server. Today: the cluster's identity ([`pki`]), HTTPS serving with
//! authentication of every request ([`serve`], [`authn`]), Kubernetes `Status` errors
//! ([`status`]) and the health and version endpoints ([`routes`]). The REST API over the
//! store comes next, behind the same router.

pub mod authn;
pub mod pki;
pub mod routes;
pub mod serve;
pub mod status;

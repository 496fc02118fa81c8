//! Tugboat's API server. Today: the cluster's identity ([`pki`]), HTTPS serving with
//! authentication of every request ([`serve`], [`authn`]), Kubernetes `Status` errors
//! ([`status`]), the health and version endpoints ([`routes`]) and API discovery
//! ([`discovery`]), the OpenAPI documents ([`openapi`]), and the REST API over the store for
//! every resource ([`rest`]), and the pod subresources the kubelet serves, proxied
//! ([`kubelet`]).

pub mod authn;
pub mod authz;
pub mod discovery;
pub mod join;
pub mod kubelet;
pub mod local;
pub mod openapi;
pub mod pki;
pub mod rest;
pub mod routes;
pub mod serve;
pub mod status;
pub mod tokens;

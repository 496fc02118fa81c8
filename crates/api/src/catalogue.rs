//! The list of served resources (see the crate docs).

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2, batch::v1 as batch,
    certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
    policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};

/// Whether a `k8s-openapi` scope is namespaced.
trait Scoped {
    const NAMESPACED: bool;
}
impl Scoped for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scoped for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// A subresource such as `status`, `scale` or `log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subresource {
    /// Its name: `status`, `scale`, `log`…
    pub name: &'static str,
    /// The group of the kind it answers with (`""` for core).
    pub group: &'static str,
    /// The version of that kind.
    pub version: &'static str,
    /// The kind it answers with (`Scale`, `Eviction`, the parent's kind for `status`…).
    pub kind: &'static str,
    /// The verbs it supports.
    pub verbs: &'static [&'static str],
}

/// Decodes a JSON object as a kind's `k8s-openapi` type and encodes it back: the schema check
/// of a request body (wrong types fail; unknown fields are dropped). The value is read in
/// place, so the caller keeps it to compare with the result.
pub type Normalize = fn(&serde_json::Value) -> Result<serde_json::Value, serde_json::Error>;

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    value: &serde_json::Value,
) -> Result<serde_json::Value, serde_json::Error> {
    let typed = T::deserialize(value)?;
    serde_json::to_value(&typed)
}

/// One served resource.
#[derive(Clone, Copy, Debug)]
pub struct ResourceInfo {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Version, e.g. `v1`.
    pub version: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Plural, the URL segment: `deployments`.
    pub plural: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names: `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories: `all`.
    pub categories: &'static [&'static str],
    /// Verbs on the collection and its items.
    pub verbs: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// The typed round trip of this kind.
    pub normalize: Normalize,
}

impl ResourceInfo {
    /// Whether it has the subresource `name`.
    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    /// The singular name: the kind in lower case, as for every built-in kind (`deployment`).
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// `group/version`, or `version` for the core group.
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Verbs of an ordinary resource.
const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of status and scale subresources.
const SUB: &[&str] = &["get", "patch", "update"];
const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// A subresource `name` answering with `group/version` `kind`, serving `verbs`.
const fn sub(
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource {
        name,
        group,
        version,
        kind,
        verbs,
    }
}

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    sub("status", group, version, kind, SUB)
}

const SCALE: Subresource = sub("scale", "autoscaling", "v1", "Scale", SUB);

/// The entry for `T`, with what its type does not say.
const fn info<T: Resource + serde::de::DeserializeOwned + serde::Serialize>(
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    verbs: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceInfo
where
    T::Scope: Scoped,
{
    ResourceInfo {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        plural: T::URL_PATH_SEGMENT,
        namespaced: <T::Scope as Scoped>::NAMESPACED,
        short_names,
        categories,
        verbs,
        subresources,
        normalize: round_trip::<T>,
    }
}

const POD_SUBRESOURCES: &[Subresource] = &[
    status("", "v1", "Pod"),
    sub("binding", "", "v1", "Binding", &["create"]),
    sub("eviction", "policy", "v1", "Eviction", &["create"]),
    sub("ephemeralcontainers", "", "v1", "Pod", SUB),
    sub("log", "", "v1", "Pod", &["get"]),
    sub("exec", "", "v1", "PodExecOptions", &["create", "get"]),
    sub("attach", "", "v1", "PodAttachOptions", &["create", "get"]),
    sub(
        "portforward",
        "",
        "v1",
        "PodPortForwardOptions",
        &["create", "get"],
    ),
];

static CATALOGUE: &[ResourceInfo] = &[
    // core/v1
    info::<core::Namespace>(
        &["ns"],
        NONE,
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        &[
            status("", "v1", "Namespace"),
            sub("finalize", "", "v1", "Namespace", &["update"]),
        ],
    ),
    info::<core::Pod>(&["po"], ALL, RW, POD_SUBRESOURCES),
    info::<core::Node>(&["no"], NONE, RW, &[status("", "v1", "Node")]),
    info::<core::Service>(
        &["svc"],
        ALL,
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        &[status("", "v1", "Service")],
    ),
    info::<core::Endpoints>(&["ep"], NONE, RW, NONE_SUB),
    info::<core::ConfigMap>(&["cm"], NONE, RW, NONE_SUB),
    info::<core::Secret>(NONE, NONE, RW, NONE_SUB),
    info::<core::ServiceAccount>(
        &["sa"],
        NONE,
        RW,
        &[sub(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        )],
    ),
    info::<core::Event>(&["ev"], NONE, RW, NONE_SUB),
    info::<core::PersistentVolume>(&["pv"], NONE, RW, &[status("", "v1", "PersistentVolume")]),
    info::<core::PersistentVolumeClaim>(
        &["pvc"],
        NONE,
        RW,
        &[status("", "v1", "PersistentVolumeClaim")],
    ),
    info::<core::LimitRange>(&["limits"], NONE, RW, NONE_SUB),
    info::<core::ResourceQuota>(&["quota"], NONE, RW, &[status("", "v1", "ResourceQuota")]),
    info::<core::ReplicationController>(
        &["rc"],
        ALL,
        RW,
        &[status("", "v1", "ReplicationController"), SCALE],
    ),
    info::<core::PodTemplate>(NONE, NONE, RW, NONE_SUB),
    // apps/v1
    info::<apps::Deployment>(
        &["deploy"],
        ALL,
        RW,
        &[status("apps", "v1", "Deployment"), SCALE],
    ),
    info::<apps::ReplicaSet>(
        &["rs"],
        ALL,
        RW,
        &[status("apps", "v1", "ReplicaSet"), SCALE],
    ),
    info::<apps::StatefulSet>(
        &["sts"],
        ALL,
        RW,
        &[status("apps", "v1", "StatefulSet"), SCALE],
    ),
    info::<apps::DaemonSet>(&["ds"], ALL, RW, &[status("apps", "v1", "DaemonSet")]),
    info::<apps::ControllerRevision>(NONE, NONE, RW, NONE_SUB),
    // authentication.k8s.io/v1 and authorization.k8s.io/v1: reviews, answered, not stored.
    info::<authentication::SelfSubjectReview>(NONE, NONE, &["create"], NONE_SUB),
    info::<authentication::TokenReview>(NONE, NONE, &["create"], NONE_SUB),
    info::<authorization::SelfSubjectAccessReview>(NONE, NONE, &["create"], NONE_SUB),
    info::<authorization::SelfSubjectRulesReview>(NONE, NONE, &["create"], NONE_SUB),
    info::<authorization::SubjectAccessReview>(NONE, NONE, &["create"], NONE_SUB),
    info::<authorization::LocalSubjectAccessReview>(NONE, NONE, &["create"], NONE_SUB),
    // batch/v1
    info::<batch::Job>(NONE, ALL, RW, &[status("batch", "v1", "Job")]),
    info::<batch::CronJob>(&["cj"], ALL, RW, &[status("batch", "v1", "CronJob")]),
    // coordination.k8s.io/v1
    info::<coordination::Lease>(NONE, NONE, RW, NONE_SUB),
    // events.k8s.io/v1
    info::<events::Event>(&["ev"], NONE, RW, NONE_SUB),
    // discovery.k8s.io/v1
    info::<discovery::EndpointSlice>(NONE, NONE, RW, NONE_SUB),
    // networking.k8s.io/v1
    info::<networking::Ingress>(
        &["ing"],
        NONE,
        RW,
        &[status("networking.k8s.io", "v1", "Ingress")],
    ),
    info::<networking::IngressClass>(NONE, NONE, RW, NONE_SUB),
    info::<networking::NetworkPolicy>(&["netpol"], NONE, RW, NONE_SUB),
    // storage.k8s.io/v1
    info::<storage::StorageClass>(&["sc"], NONE, RW, NONE_SUB),
    // policy/v1
    info::<policy::PodDisruptionBudget>(
        &["pdb"],
        NONE,
        RW,
        &[status("policy", "v1", "PodDisruptionBudget")],
    ),
    // autoscaling/v2 (preferred) and v1
    info::<autoscaling_v2::HorizontalPodAutoscaler>(
        &["hpa"],
        ALL,
        RW,
        &[status("autoscaling", "v2", "HorizontalPodAutoscaler")],
    ),
    info::<autoscaling_v1::HorizontalPodAutoscaler>(
        &["hpa"],
        ALL,
        RW,
        &[status("autoscaling", "v1", "HorizontalPodAutoscaler")],
    ),
    // apiextensions.k8s.io/v1
    info::<apiextensions::CustomResourceDefinition>(
        &["crd", "crds"],
        &["api-extensions"],
        RW,
        &[status(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        )],
    ),
    // scheduling.k8s.io/v1
    info::<scheduling::PriorityClass>(&["pc"], NONE, RW, NONE_SUB),
    // rbac.authorization.k8s.io/v1
    info::<rbac::Role>(NONE, NONE, RW, NONE_SUB),
    info::<rbac::RoleBinding>(NONE, NONE, RW, NONE_SUB),
    info::<rbac::ClusterRole>(NONE, NONE, RW, NONE_SUB),
    info::<rbac::ClusterRoleBinding>(NONE, NONE, RW, NONE_SUB),
    // certificates.k8s.io/v1
    info::<certificates::CertificateSigningRequest>(
        &["csr"],
        NONE,
        RW,
        &[
            status("certificates.k8s.io", "v1", "CertificateSigningRequest"),
            sub(
                "approval",
                "certificates.k8s.io",
                "v1",
                "CertificateSigningRequest",
                SUB,
            ),
        ],
    ),
];

const NONE_SUB: &[Subresource] = &[];

/// Every served resource. Within a group, versions appear in preference order.
pub fn catalogue() -> &'static [ResourceInfo] {
    CATALOGUE
}

/// The resource with this group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    CATALOGUE
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_from_the_types() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.kind, "Deployment");
        assert!(deploy.namespaced);
        assert_eq!(deploy.group_version(), "apps/v1");
        let ns = find("", "v1", "namespaces").unwrap();
        assert!(!ns.namespaced);
        assert_eq!(ns.group_version(), "v1");
    }

    #[test]
    fn plurals_are_unique_per_group_version() {
        assert_eq!(find("", "v1", "endpoints").unwrap().singular(), "endpoints");
        for (i, a) in CATALOGUE.iter().enumerate() {
            for b in &CATALOGUE[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} twice",
                    a.plural
                );
            }
        }
    }
}

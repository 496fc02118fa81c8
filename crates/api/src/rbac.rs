//! RBAC's decision, as upstream's `rbac` authorizer makes it: a request is allowed when some
//! rule of some role bound to the user covers it. ClusterRoleBindings grant their
//! ClusterRole everywhere; RoleBindings grant their Role (or ClusterRole) in their own
//! namespace. Rules match verbs, API groups, resources (`pods`, `pods/log`, `*`,
//! `*/scale`), resource names and non-resource URLs (`/healthz`, `/api/*`) with upstream's
//! wildcards. Pure: the caller supplies the objects (from its caches) and the request.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};

/// Who asks.
#[derive(Clone, Copy, Debug)]
pub struct User<'a> {
    /// The user name, e.g. `system:serviceaccount:default:web`.
    pub name: &'a str,
    /// The user's groups.
    pub groups: &'a [String],
}

/// What is asked, as upstream's authorizer attributes.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    /// An API object: `verb` on `resource`(`/subresource`) in `group`, optionally one
    /// `name`, in `namespace` ("" for cluster-scoped or all namespaces).
    Resource {
        /// get, list, watch, create, update, patch, delete, deletecollection, or others.
        verb: &'a str,
        /// API group ("" for core).
        group: &'a str,
        /// Plural resource, e.g. `pods`.
        resource: &'a str,
        /// Subresource, e.g. `log`; "" for none.
        subresource: &'a str,
        /// Object name; "" for collections.
        name: &'a str,
        /// Namespace; "" for cluster scope.
        namespace: &'a str,
    },
    /// A non-resource path such as `/healthz`.
    NonResource {
        /// The HTTP verb in lower case (get, post, …).
        verb: &'a str,
        /// The URL path.
        path: &'a str,
    },
}

/// The RBAC objects a decision reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy<'a> {
    /// Every Role.
    pub roles: &'a [Role],
    /// Every ClusterRole.
    pub cluster_roles: &'a [ClusterRole],
    /// Every RoleBinding.
    pub role_bindings: &'a [RoleBinding],
    /// Every ClusterRoleBinding.
    pub cluster_role_bindings: &'a [ClusterRoleBinding],
}

impl Policy<'_> {
    /// Whether some rule bound to `user` allows `request`: the reason, naming the binding
    /// that allowed it as upstream's does ("RBAC: allowed by ClusterRoleBinding …"), or
    /// `None` when nothing does.
    pub fn allows(&self, user: User<'_>, request: &Request<'_>) -> Option<String> {
        for b in self.cluster_role_bindings {
            let subjects = b.subjects.as_deref().unwrap_or_default();
            if b.role_ref.kind != "ClusterRole" || !subjects.iter().any(|s| applies(s, user, "")) {
                continue;
            }
            if self
                .cluster_rules(&b.role_ref.name)
                .any(|r| rule_allows(r, request))
            {
                let name = b.metadata.name.as_deref().unwrap_or("");
                return Some(format!(
                    "RBAC: allowed by ClusterRoleBinding {name:?} of ClusterRole {:?} to {}",
                    b.role_ref.name,
                    subject_names(subjects, user, "")
                ));
            }
        }
        let Request::Resource { namespace, .. } = request else {
            return None;
        };
        if namespace.is_empty() {
            return None;
        }
        for b in self.role_bindings {
            if b.metadata.namespace.as_deref() != Some(namespace) {
                continue;
            }
            let subjects = b.subjects.as_deref().unwrap_or_default();
            if !subjects.iter().any(|s| applies(s, user, namespace)) {
                continue;
            }
            let allowed = match b.role_ref.kind.as_str() {
                "ClusterRole" => self
                    .cluster_rules(&b.role_ref.name)
                    .any(|r| rule_allows(r, request)),
                "Role" => self
                    .role_rules(namespace, &b.role_ref.name)
                    .any(|r| rule_allows(r, request)),
                _ => false,
            };
            if allowed {
                let name = b.metadata.name.as_deref().unwrap_or("");
                return Some(format!(
                    "RBAC: allowed by RoleBinding \"{name}/{namespace}\" of {} {:?} to {}",
                    b.role_ref.kind,
                    b.role_ref.name,
                    subject_names(subjects, user, namespace)
                ));
            }
        }
        None
    }

    fn cluster_rules<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s PolicyRule> {
        self.cluster_roles
            .iter()
            .filter(move |r| r.metadata.name.as_deref() == Some(name))
            .flat_map(|r| r.rules.as_deref().unwrap_or_default())
    }

    fn role_rules<'s>(
        &'s self,
        namespace: &'s str,
        name: &'s str,
    ) -> impl Iterator<Item = &'s PolicyRule> {
        self.roles
            .iter()
            .filter(move |r| {
                r.metadata.name.as_deref() == Some(name)
                    && r.metadata.namespace.as_deref() == Some(namespace)
            })
            .flat_map(|r| r.rules.as_deref().unwrap_or_default())
    }
}

/// The subjects of a binding that match the user, named as upstream's reason does.
fn subject_names(subjects: &[Subject], user: User<'_>, namespace: &str) -> String {
    subjects
        .iter()
        .filter(|s| applies(s, user, namespace))
        .map(|s| format!("{} {:?}", s.kind, s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a binding's subject is the user (`namespace`: the RoleBinding's, the default
/// for a ServiceAccount subject without one).
pub fn applies(subject: &Subject, user: User<'_>, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty()
                && user
                    .name
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.split_once(':'))
                    == Some((ns, subject.name.as_str()))
        }
        _ => false,
    }
}

/// Whether one rule covers the request (upstream's `RuleAllows`).
pub fn rule_allows(rule: &PolicyRule, request: &Request<'_>) -> bool {
    let has = |list: &[String], want: &str| list.iter().any(|v| v == "*" || v == want);
    match *request {
        Request::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            has(&rule.verbs, verb)
                && has(rule.api_groups.as_deref().unwrap_or_default(), group)
                && resource_matches(rule, resource, subresource)
                && rule
                    .resource_names
                    .as_deref()
                    .is_none_or(|names| names.is_empty() || names.iter().any(|n| n == name))
        }
        Request::NonResource { verb, path } => {
            has(&rule.verbs, verb)
                && rule
                    .non_resource_urls
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|u| url_matches(u, path))
        }
    }
}

fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    let combined = if subresource.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}/{subresource}")
    };
    rule.resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| {
            r == "*"
                || *r == combined
                || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
        })
}

fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn pods(verb: &'static str, namespace: &'static str) -> Request<'static> {
        Request::Resource {
            verb,
            group: "",
            resource: "pods",
            subresource: "",
            name: "",
            namespace,
        }
    }

    #[test]
    fn rules_match_with_upstreams_wildcards() {
        let rule: PolicyRule = from(json!({
            "verbs": ["get", "list"], "apiGroups": ["", "apps"],
            "resources": ["pods", "deployments/scale", "*/status"], "resourceNames": []
        }));
        assert!(rule_allows(&rule, &pods("get", "a")));
        assert!(!rule_allows(&rule, &pods("delete", "a")));
        let sub = |group, resource, subresource| Request::Resource {
            verb: "get",
            group,
            resource,
            subresource,
            name: "x",
            namespace: "a",
        };
        assert!(rule_allows(&rule, &sub("apps", "deployments", "scale")));
        assert!(!rule_allows(&rule, &sub("apps", "deployments", "")));
        assert!(rule_allows(&rule, &sub("", "nodes", "status")));
        assert!(!rule_allows(&rule, &sub("", "pods", "log")));
        assert!(!rule_allows(&rule, &sub("batch", "pods", "")));
        let named: PolicyRule = from(json!({
            "verbs": ["*"], "apiGroups": ["*"], "resources": ["configmaps"],
            "resourceNames": ["only"]
        }));
        let cm = |name| Request::Resource {
            verb: "update",
            group: "",
            resource: "configmaps",
            subresource: "",
            name,
            namespace: "a",
        };
        assert!(rule_allows(&named, &cm("only")));
        assert!(!rule_allows(&named, &cm("other")));
        let urls: PolicyRule =
            from(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}));
        let url = |path| Request::NonResource { verb: "get", path };
        assert!(rule_allows(&urls, &url("/healthz")));
        assert!(rule_allows(&urls, &url("/api/v1")));
        assert!(!rule_allows(&urls, &url("/apis")));
        assert!(!rule_allows(&urls, &pods("get", "a")));
    }

    #[test]
    fn bindings_grant_their_roles_where_they_apply() {
        let roles: Vec<Role> = vec![from(json!({
            "metadata": {"name": "reader", "namespace": "a"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
        }))];
        let cluster_roles: Vec<ClusterRole> = vec![from(json!({
            "metadata": {"name": "lister"},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]
        }))];
        let role_bindings: Vec<RoleBinding> = vec![
            from(json!({
                "metadata": {"name": "rb", "namespace": "a"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "web"}]
            })),
            from(json!({
                "metadata": {"name": "crb-in-b", "namespace": "b"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lister"},
                "subjects": [{"kind": "User", "name": "alice"}]
            })),
        ];
        let cluster_role_bindings: Vec<ClusterRoleBinding> = vec![from(json!({
            "metadata": {"name": "devs"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lister"},
            "subjects": [{"kind": "Group", "name": "devs"}]
        }))];
        let policy = Policy {
            roles: &roles,
            cluster_roles: &cluster_roles,
            role_bindings: &role_bindings,
            cluster_role_bindings: &cluster_role_bindings,
        };
        let none: Vec<String> = Vec::new();
        let devs = vec!["devs".to_owned()];
        let sa = User {
            name: "system:serviceaccount:a:web",
            groups: &none,
        };
        let alice = User {
            name: "alice",
            groups: &none,
        };
        let dev = User {
            name: "bob",
            groups: &devs,
        };
        // A Role through a RoleBinding, in its namespace only; the ServiceAccount subject
        // takes the binding's namespace.
        assert!(policy.allows(sa, &pods("get", "a")).is_some());
        assert!(policy.allows(sa, &pods("get", "b")).is_none());
        assert!(policy.allows(sa, &pods("list", "a")).is_none());
        // A ClusterRole through a RoleBinding: that namespace only.
        let why = policy.allows(alice, &pods("list", "b"));
        assert_eq!(
            why.as_deref(),
            Some(
                "RBAC: allowed by RoleBinding \"crb-in-b/b\" of ClusterRole \"lister\" to User \"alice\""
            )
        );
        assert!(policy.allows(alice, &pods("list", "a")).is_none());
        assert!(policy.allows(alice, &pods("list", "")).is_none());
        // A ClusterRoleBinding: everywhere, cluster scope included.
        assert!(policy.allows(dev, &pods("list", "")).is_some());
        assert!(policy.allows(dev, &pods("list", "z")).is_some());
        assert!(policy.allows(dev, &pods("get", "z")).is_none());
        let nothing = User {
            name: "mallory",
            groups: &none,
        };
        assert!(policy.allows(nothing, &pods("list", "a")).is_none());
    }
}

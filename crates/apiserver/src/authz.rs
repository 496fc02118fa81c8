//! Authorization: whether a user may do something. Until RBAC is built every authenticated
//! user may do everything — upstream's `--authorization-mode=AlwaysAllow` — and this module
//! is the seam RBAC replaces: the access reviews (`kubectl auth can-i`) and impersonation
//! ask it.

use serde_json::{json, Value};

use crate::authn::UserInfo;

/// An answer, as upstream's authorizer gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed.
    pub allowed: bool,
    /// Why, when there is something to say.
    pub reason: String,
}

/// Whether `user` may do what `attributes` (an access review's spec: `resourceAttributes`
/// or `nonResourceAttributes`) describe.
pub fn authorize(user: Option<&UserInfo>, _attributes: &Value) -> Decision {
    Decision {
        allowed: user.is_some(),
        reason: String::new(),
    }
}

/// What a user may do, as SelfSubjectRulesReview lists it.
#[derive(Clone, Debug)]
pub struct Rules {
    /// `resourceRules`.
    pub resource_rules: Value,
    /// `nonResourceRules`.
    pub non_resource_rules: Value,
}

/// The rules of `user`: everything, as upstream's AlwaysAllow authorizer lists them.
pub fn rules_for(user: Option<&UserInfo>) -> Rules {
    if user.is_none() {
        return Rules {
            resource_rules: json!([]),
            non_resource_rules: json!([]),
        };
    }
    Rules {
        resource_rules: json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
        non_resource_rules: json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}]),
    }
}

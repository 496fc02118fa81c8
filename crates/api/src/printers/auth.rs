//! Printers for access control: role bindings and cluster role bindings
//! (rbac.authorization.k8s.io) and certificate signing requests (certificates.k8s.io).

use serde_json::Value;

use super::util::{age, list_at, name, non_empty, opt_int, str_at};
use super::{col, human_duration, wide, Column, Printer, AGE, NAME};

/// Columns of role bindings and cluster role bindings: Name, Role, Age; wide Users, Groups,
/// ServiceAccounts (described with the given texts).
const fn binding_columns(
    users: &'static str,
    groups: &'static str,
    service_accounts: &'static str,
) -> [Column; 6] {
    [
        NAME,
        col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
        AGE,
        wide("Users", "string", users),
        wide("Groups", "string", groups),
        wide("ServiceAccounts", "string", service_accounts),
    ]
}

/// Role binding columns.
const ROLE_BINDING_COLUMNS: [Column; 6] = binding_columns(
    "Users in the roleBinding",
    "Groups in the roleBinding",
    "ServiceAccounts in the roleBinding",
);

/// Cluster role binding columns.
const CLUSTER_ROLE_BINDING_COLUMNS: [Column; 6] = binding_columns(
    "Users in the clusterRoleBinding",
    "Groups in the clusterRoleBinding",
    "ServiceAccounts in the clusterRoleBinding",
);

/// Role bindings.
pub(super) const ROLE_BINDINGS: Printer = Printer {
    columns: &ROLE_BINDING_COLUMNS,
    cells: binding_cells,
};

/// Cluster role bindings.
pub(super) const CLUSTER_ROLE_BINDINGS: Printer = Printer {
    columns: &CLUSTER_ROLE_BINDING_COLUMNS,
    cells: binding_cells,
};

fn binding_cells(rb: &Value, now: i64) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(rb, &["roleRef", "kind"]),
        str_at(rb, &["roleRef", "name"])
    );
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut sas = Vec::new();
    for subject in list_at(rb, &["subjects"]) {
        let subject_name = str_at(subject, &["name"]);
        match str_at(subject, &["kind"]) {
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            "ServiceAccount" => {
                sas.push(format!(
                    "{}/{subject_name}",
                    str_at(subject, &["namespace"])
                ));
            }
            _ => {}
        }
    }
    vec![
        name(rb),
        Value::from(role),
        age(rb, now),
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(sas.join(", ")),
    ]
}

/// Certificate signing requests: Name, Age, SignerName, Requestor, RequestedDuration,
/// Condition.
pub(super) const CERTIFICATE_SIGNING_REQUESTS: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        col("SignerName", "string", "signerName indicates the requested signer, and is a qualified name."),
        col("Requestor", "string", "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block."),
        col("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate."),
        col("Condition", "string", "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
    ],
    cells: csr_cells,
};

/// Upstream's `extractCSRStatus`: Denied, Approved or Pending, then ",Failed" and ",Issued".
fn csr_condition(csr: &Value) -> String {
    let conditions = list_at(csr, &["status", "conditions"]);
    let has = |kind: &str| conditions.iter().any(|c| str_at(c, &["type"]) == kind);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if non_empty(csr, &["status", "certificate"]).is_some() {
        status.push_str(",Issued");
    }
    status
}

fn csr_cells(csr: &Value, now: i64) -> Vec<Value> {
    let duration = opt_int(csr, &["spec", "expirationSeconds"])
        .map_or_else(|| "<none>".to_string(), human_duration);
    vec![
        name(csr),
        age(csr, now),
        Value::from(non_empty(csr, &["spec", "signerName"]).unwrap_or("<none>")),
        Value::from(str_at(csr, &["spec", "username"])),
        Value::from(duration),
        Value::from(csr_condition(csr)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bindings() {
        let rb = json!({"metadata": {"name": "read"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                         {"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}]});
        assert_eq!(
            (ROLE_BINDINGS.cells)(&rb, 0)[1..],
            [
                json!("ClusterRole/view"),
                json!("<unknown>"),
                json!("alice, bob"),
                json!("devs"),
                json!("tools/ci")
            ]
        );
        assert_eq!(
            CLUSTER_ROLE_BINDINGS.columns[3].description,
            "Users in the clusterRoleBinding"
        );
        assert_eq!(
            ROLE_BINDINGS.columns[5].description,
            "ServiceAccounts in the roleBinding"
        );
    }

    #[test]
    fn csr() {
        let csr = json!({"spec": {"signerName": "kubernetes.io/kube-apiserver-client",
            "username": "alice", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}});
        assert_eq!(
            (CERTIFICATE_SIGNING_REQUESTS.cells)(&csr, 0)[2..],
            [
                json!("kubernetes.io/kube-apiserver-client"),
                json!("alice"),
                json!("24h"),
                json!("Approved,Issued")
            ]
        );
        assert_eq!(
            (CERTIFICATE_SIGNING_REQUESTS.cells)(&json!({}), 0)[2..],
            [
                json!("<none>"),
                json!(""),
                json!("<none>"),
                json!("Pending")
            ]
        );
    }
}

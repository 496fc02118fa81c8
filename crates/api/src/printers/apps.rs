//! Printers for workload controllers: deployments, replica sets, replication controllers,
//! stateful sets, daemon sets and controller revisions.

use serde_json::Value;

use super::util::{
    age, at, format_labels, int_at, layout_containers, list_at, name, opt_int, selector_string,
    str_at, template_cells,
};
use super::{col, wide_selector, Printer, AGE, CONTAINERS, IMAGES, NAME};

/// `spec.replicas`, defaulted to 1 as the API server does.
fn desired(obj: &Value) -> i64 {
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// Container names and images of the pod template at `spec.template`.
fn template_containers(obj: &Value) -> (Value, Value) {
    layout_containers(list_at(obj, &["spec", "template", "spec", "containers"]))
}

/// Deployments: Name, Ready, Up-to-date, Available, Age; wide Containers, Images, Selector.
pub(super) const DEPLOYMENTS: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide_selector("Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
    ],
    cells: deployment_cells,
};

fn deployment_cells(d: &Value, now: i64) -> Vec<Value> {
    let ready = int_at(d, &["status", "readyReplicas"]);
    let (names, images) = template_containers(d);
    let selector =
        selector_string(at(d, &["spec", "selector"])).unwrap_or_else(|()| "<invalid>".to_string());
    vec![
        name(d),
        Value::from(format!("{ready}/{}", desired(d))),
        Value::from(int_at(d, &["status", "updatedReplicas"])),
        Value::from(int_at(d, &["status", "availableReplicas"])),
        age(d, now),
        names,
        images,
        Value::from(selector),
    ]
}

/// Replica sets: Name, Desired, Current, Ready, Age; wide Containers, Images, Selector.
pub(super) const REPLICA_SETS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Desired",
            "integer",
            "Replicas is the number of desired pods.",
        ),
        col(
            "Current",
            "integer",
            "Replicas is the most recently observed number of replicas.",
        ),
        col(
            "Ready",
            "integer",
            "The number of ready replicas for this replica set.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide_selector("Selector is a label query over pods that should match the replica count."),
    ],
    cells: replica_set_cells,
};

/// The counts and age shared by replica sets and replication controllers.
fn replica_counts(obj: &Value, now: i64) -> Vec<Value> {
    vec![
        name(obj),
        Value::from(desired(obj)),
        Value::from(int_at(obj, &["status", "replicas"])),
        Value::from(int_at(obj, &["status", "readyReplicas"])),
        age(obj, now),
    ]
}

fn replica_set_cells(rs: &Value, now: i64) -> Vec<Value> {
    let mut row = replica_counts(rs, now);
    row.extend(template_cells(at(rs, &["spec"])));
    row
}

/// Replication controllers: as replica sets, with a plain label map as selector.
pub(super) const REPLICATION_CONTROLLERS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Desired",
            "integer",
            "Replicas is the number of desired replicas.",
        ),
        col(
            "Current",
            "integer",
            "Replicas is the most recently observed number of replicas.",
        ),
        col(
            "Ready",
            "integer",
            "The number of ready replicas for this replication controller.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        wide_selector("Selector is a label query over pods that should match the Replicas count."),
    ],
    cells: replication_controller_cells,
};

fn replication_controller_cells(rc: &Value, now: i64) -> Vec<Value> {
    let mut row = replica_counts(rc, now);
    let (names, images) = template_containers(rc);
    row.extend([
        names,
        images,
        Value::from(format_labels(at(rc, &["spec", "selector"]))),
    ]);
    row
}

/// Stateful sets: Name, Ready, Age; wide Containers, Images.
pub(super) const STATEFUL_SETS: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: stateful_set_cells,
};

fn stateful_set_cells(ss: &Value, now: i64) -> Vec<Value> {
    let ready = int_at(ss, &["status", "readyReplicas"]);
    let (names, images) = template_containers(ss);
    vec![
        name(ss),
        Value::from(format!("{ready}/{}", desired(ss))),
        age(ss, now),
        names,
        images,
    ]
}

/// Daemon sets: Name, Desired, Current, Ready, Up-to-date, Available, Node Selector, Age;
/// wide Containers, Images, Selector.
pub(super) const DAEMON_SETS: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
        col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
        col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
        col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
        col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
        col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide_selector("A label query over pods that are managed by the daemon set."),
    ],
    cells: daemon_set_cells,
};

fn daemon_set_cells(ds: &Value, now: i64) -> Vec<Value> {
    let status = |field: &str| Value::from(int_at(ds, &["status", field]));
    let mut row = vec![
        name(ds),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        Value::from(format_labels(at(
            ds,
            &["spec", "template", "spec", "nodeSelector"],
        ))),
        age(ds, now),
    ];
    row.extend(template_cells(at(ds, &["spec"])));
    row
}

/// Controller revisions: Name, Controller, Revision, Age.
pub(super) const CONTROLLER_REVISIONS: Printer = Printer {
    columns: &[
        NAME,
        col("Controller", "string", "Controller of the object"),
        col(
            "Revision",
            "string",
            "Revision indicates the revision of the state represented by Data.",
        ),
        AGE,
    ],
    cells: controller_revision_cells,
};

/// The controlling owner as "kind.group/name" (lower-cased kind and group), or "<none>".
fn controller_of(obj: &Value) -> String {
    let owner = list_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true));
    let Some(owner) = owner else {
        return "<none>".to_string();
    };
    let api_version = str_at(owner, &["apiVersion"]);
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let kind = str_at(owner, &["kind"]);
    let owner_name = str_at(owner, &["name"]);
    match (kind, group) {
        ("", "") => owner_name.to_string(),
        (k, "") => format!("{}/{owner_name}", k.to_lowercase()),
        (k, g) => format!("{}.{}/{owner_name}", k.to_lowercase(), g.to_lowercase()),
    }
}

fn controller_revision_cells(cr: &Value, now: i64) -> Vec<Value> {
    vec![
        name(cr),
        Value::from(controller_of(cr)),
        Value::from(int_at(cr, &["revision"])),
        age(cr, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_ready_and_wide() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            (DEPLOYMENTS.cells)(&d, 1_704_067_200 + 7200),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("120m"),
                json!("app,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web")
            ]
        );
        let empty = json!({"metadata": {"name": "x"}});
        let row = (DEPLOYMENTS.cells)(&empty, 0);
        assert_eq!(row[1..4], [json!("0/1"), json!(0), json!(0)]);
        assert_eq!(row[7], json!(""));
    }

    #[test]
    fn replica_sets_daemon_sets_and_friends() {
        let rs = json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        let row = (REPLICA_SETS.cells)(&rs, 0);
        assert_eq!(row[1..4], [json!(2), json!(2), json!(1)]);
        assert_eq!(row[7], json!("app=web,pod-template-hash=abc"));

        let rc = json!({"spec": {"replicas": 0, "selector": {"app": "old"}}});
        let row = (REPLICATION_CONTROLLERS.cells)(&rc, 0);
        assert_eq!(row[1], json!(0));
        assert_eq!(row[5..], [json!(""), json!(""), json!("app=old")]);

        let ss = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!((STATEFUL_SETS.cells)(&ss, 0)[1], json!("3/3"));

        let ds = json!({"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                "updatedNumberScheduled": 3, "numberAvailable": 2}});
        let row = (DAEMON_SETS.cells)(&ds, 0);
        assert_eq!(
            row[1..7],
            [
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux")
            ]
        );
        assert_eq!(row[10], json!("<none>"));

        let cr = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "fluentd", "controller": true}]},
            "revision": 4});
        assert_eq!(
            (CONTROLLER_REVISIONS.cells)(&cr, 0)[1..3],
            [json!("daemonset.apps/fluentd"), json!(4)]
        );
        assert_eq!(
            (CONTROLLER_REVISIONS.cells)(&json!({}), 0)[1],
            json!("<none>")
        );
    }
}

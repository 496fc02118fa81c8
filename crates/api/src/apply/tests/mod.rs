//! Tests of server-side apply and update recording on real Deployment types: the main
//! flows here, error cases and finer points in `edge`.

mod edge;

use serde_json::{json, Value};

use super::*;
use crate::schema::builtin;

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:01:00Z";
const T2: &str = "2024-01-01T00:02:00Z";

fn deploy_ty() -> Ty {
    builtin()
        .kind("apps", "v1", "Deployment")
        .expect("Deployment type")
}

fn mgr<'a>(name: &'a str, time: &'a str) -> Manager<'a> {
    Manager {
        name,
        api_version: "apps/v1",
        time,
        subresource: "",
        reset_fields: RESET_STATUS,
    }
}

fn deployment(replicas: i64, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers}
            }
        }
    })
}

fn web() -> Value {
    json!([{"name": "web", "image": "nginx:1"}])
}

fn partial(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec})
}

fn do_apply(
    live: Option<&Value>,
    config: &Value,
    who: &str,
    time: &str,
    force: bool,
) -> Result<Value, ApplyError> {
    apply(
        live,
        config,
        &mgr(who, time),
        force,
        &deploy_ty(),
        builtin(),
    )
}

fn entries(obj: &Value) -> Vec<ManagedEntry> {
    decode_managed_fields(obj.pointer("/metadata/managedFields")).expect("managedFields decode")
}

fn entry(obj: &Value, manager: &str) -> ManagedEntry {
    entries(obj)
        .into_iter()
        .find(|e| e.manager == manager)
        .unwrap_or_else(|| panic!("no entry for {manager} in {obj:#}"))
}

fn owns(obj: &Value, manager: &str, path: &str) -> bool {
    entry(obj, manager)
        .fields
        .paths()
        .iter()
        .any(|p| path_string(p) == path)
}

fn containers(obj: &Value) -> Vec<String> {
    obj.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|c| c["name"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn create_by_apply_sets_object_and_owner() {
    let config = deployment(3, web());
    let out = do_apply(None, &config, "kubectl", T0, false).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1"
    );
    let list = out
        .pointer("/metadata/managedFields")
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!(e["manager"], "kubectl");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T0);
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e.get("subresource").is_none());
    let expected: Value = serde_json::from_str(
        r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},
        "f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":
        {"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#,
    )
    .unwrap();
    assert_eq!(e["fieldsV1"], expected);
}

#[test]
fn reapply_without_a_field_removes_it() {
    let mut first = deployment(
        3,
        json!([{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]),
    );
    first["metadata"]["labels"]["tier"] = json!("front");
    let live = do_apply(None, &first, "kubectl", T0, false).unwrap();
    assert_eq!(live["metadata"]["labels"]["tier"], "front");
    assert_eq!(containers(&live), ["web", "side"]);

    let second = deployment(3, web());
    let out = do_apply(Some(&live), &second, "kubectl", T1, false).unwrap();
    assert!(out["metadata"]["labels"].get("tier").is_none(), "{out:#}");
    assert_eq!(out["metadata"]["labels"]["app"], "web");
    assert_eq!(containers(&out), ["web"]);
    assert!(!owns(&out, "kubectl", ".metadata.labels.tier"));
    assert_eq!(entry(&out, "kubectl").time.as_deref(), Some(T1));

    // Dropping every label removes the map too.
    let mut third = second.clone();
    third["metadata"].as_object_mut().unwrap().remove("labels");
    let out = do_apply(Some(&out), &third, "kubectl", T2, false).unwrap();
    assert!(out["metadata"].get("labels").is_none(), "{out:#}");
    assert_eq!(out["metadata"]["name"], "web");
}

#[test]
fn second_manager_conflicts_then_forces() {
    let live = do_apply(None, &deployment(3, web()), "alice", T0, false).unwrap();
    let config = partial(json!({"replicas": 5}));
    let err = do_apply(Some(&live), &config, "bob", T1, false).unwrap_err();
    let ApplyError::Conflicts(conflicts) = &err else {
        panic!("not a conflict: {err}")
    };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].manager, "alice");
    assert_eq!(conflicts[0].field, ".spec.replicas");
    assert_eq!(conflicts[0].operation, Operation::Apply);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
    );
    assert_eq!(conflicts[0].cause_message(), "conflict with \"alice\"");

    let out = do_apply(Some(&live), &config, "bob", T1, true).unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert!(owns(&out, "bob", ".spec.replicas"));
    assert!(!owns(&out, "alice", ".spec.replicas"));
    assert!(owns(
        &out,
        "alice",
        ".spec.template.spec.containers[name=\"web\"].image"
    ));

    // Alice applying again without replicas no longer removes it: bob owns it.
    let out = do_apply(
        Some(&out),
        &partial(json!({"paused": false})),
        "alice",
        T2,
        false,
    )
    .unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(containers(&out), Vec::<String>::new());
}

#[test]
fn same_value_is_shared_ownership() {
    let live = do_apply(None, &deployment(3, web()), "alice", T0, false).unwrap();
    let out = do_apply(
        Some(&live),
        &partial(json!({"replicas": 3})),
        "bob",
        T1,
        false,
    )
    .unwrap();
    assert!(owns(&out, "alice", ".spec.replicas"));
    assert!(owns(&out, "bob", ".spec.replicas"));
    // Nothing changed: bob's new entry carries no time, as upstream.
    assert_eq!(entry(&out, "bob").time, None);
    assert_eq!(entry(&out, "alice").time.as_deref(), Some(T0));

    // Alice stops applying replicas: bob still owns it, so it stays.
    let mut without = deployment(3, web());
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let out = do_apply(Some(&out), &without, "alice", T2, false).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert!(!owns(&out, "alice", ".spec.replicas"));
    assert!(owns(&out, "bob", ".spec.replicas"));
}

#[test]
fn containers_merge_by_name() {
    let live = do_apply(None, &deployment(3, web()), "alice", T0, false).unwrap();
    let side = partial(
        json!({"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}),
    );
    let live = do_apply(Some(&live), &side, "bob", T1, false).unwrap();
    assert_eq!(containers(&live), ["web", "side"]);
    assert!(owns(
        &live,
        "bob",
        ".spec.template.spec.containers[name=\"side\"]"
    ));

    // Alice adds a container of her own; bob's survives.
    let two = deployment(
        3,
        json!([{"name": "web", "image": "nginx:2"}, {"name": "api", "image": "api:1"}]),
    );
    let out = do_apply(Some(&live), &two, "alice", T2, false).unwrap();
    // Upstream's list merge keeps live-only items where they were, new ones after.
    assert_eq!(containers(&out), ["web", "side", "api"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );

    // Alice drops hers again; bob's is untouched.
    let out = do_apply(Some(&out), &deployment(3, web()), "alice", T2, false).unwrap();
    assert_eq!(containers(&out), ["web", "side"]);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][1]["image"],
        "busybox"
    );

    // Bob changing alice's image conflicts on that one field.
    let img =
        partial(json!({"template": {"spec": {"containers": [{"name": "web", "image": "evil"}]}}}));
    let ApplyError::Conflicts(c) = do_apply(Some(&out), &img, "bob", T2, false).unwrap_err() else {
        panic!("expected conflicts")
    };
    let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [".spec.template.spec.containers[name=\"web\"].image"]
    );
}

#[test]
fn record_update_on_create() {
    let mut obj = deployment(3, web());
    record_update(
        None,
        &mut obj,
        &mgr("kubectl-create", T0),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    let e = entry(&obj, "kubectl-create");
    assert_eq!(e.operation, Operation::Update);
    assert_eq!(e.time.as_deref(), Some(T0));
    let f = e.fields.to_fields_v1();
    // Added maps and lists are owned as themselves too ("."); identity metadata is not
    // owned. (Upstream's Go zero-value "before" object already has `containers`, so it
    // writes no "." there.)
    assert_eq!(f["f:metadata"], json!({"f:labels": {".": {}, "f:app": {}}}));
    assert_eq!(
        f["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({".": {}, "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}})
    );
    assert!(f.get("f:apiVersion").is_none() && f.get("f:kind").is_none());
    assert_eq!(obj["spec"]["replicas"], 3);
}

#[test]
fn edit_takes_ownership_and_next_apply_conflicts() {
    let mut live = do_apply(None, &deployment(3, web()), "kubectl", T0, false).unwrap();
    live["metadata"]["uid"] = json!("1234");
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(4);
    record_update(
        Some(&live),
        &mut edited,
        &mgr("kubectl-edit", T1),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    assert!(owns(&edited, "kubectl-edit", ".spec.replicas"));
    assert!(!owns(&edited, "kubectl", ".spec.replicas"));
    assert!(owns(
        &edited,
        "kubectl",
        ".spec.template.spec.containers[name=\"web\"].image"
    ));
    assert_eq!(entries(&edited).len(), 2);

    let err = do_apply(Some(&edited), &deployment(3, web()), "kubectl", T2, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1 at 2024-01-01T00:01:00Z: .spec.replicas"
    );
    // The same value again is no conflict.
    let out = do_apply(Some(&edited), &deployment(4, web()), "kubectl", T2, false).unwrap();
    assert!(
        owns(&out, "kubectl", ".spec.replicas") && owns(&out, "kubectl-edit", ".spec.replicas")
    );

    // A second edit by the same manager merges into its one entry.
    let mut again = edited.clone();
    again["spec"]["paused"] = json!(true);
    record_update(
        Some(&edited),
        &mut again,
        &mgr("kubectl-edit", T2),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    let e = entry(&again, "kubectl-edit");
    assert_eq!(e.time.as_deref(), Some(T2));
    assert!(
        owns(&again, "kubectl-edit", ".spec.replicas")
            && owns(&again, "kubectl-edit", ".spec.paused")
    );
    assert_eq!(entries(&again).len(), 2);

    // Removing a field takes it out of every set.
    let mut removed = again.clone();
    removed["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app");
    record_update(
        Some(&again),
        &mut removed,
        &mgr("kubectl-edit", T2),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    assert!(!owns(&removed, "kubectl", ".metadata.labels.app"));
}

#[test]
fn fields_v1_round_trip_of_upstream_example() {
    let literal = r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#;
    let v: Value = serde_json::from_str(literal).unwrap();
    let set = FieldSet::from_fields_v1(&v).unwrap();
    let paths: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
    assert_eq!(
        paths,
        [
            ".metadata.labels",
            ".metadata.labels.app",
            ".spec.replicas",
            ".spec.template.spec.containers[name=\"web\"]",
            ".spec.template.spec.containers[name=\"web\"].image",
            ".spec.template.spec.containers[name=\"web\"].name",
        ]
    );
    assert_eq!(set.to_fields_v1_string(), literal);
    assert_eq!(set.to_fields_v1(), v);
    assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
}

#[test]
fn fields_v1_keys_sets_and_order() {
    let ports = json!([
        {"containerPort": 8080},
        {"containerPort": 80, "protocol": "UDP"},
    ]);
    let config = deployment(1, json!([{"name": "web", "image": "x", "ports": ports}]));
    let mut config = config;
    config["metadata"]["finalizers"] = json!(["a/b", "x<y"]);
    let out = do_apply(None, &config, "kubectl", T0, false).unwrap();
    let e = entry(&out, "kubectl");
    let s = e.fields.to_fields_v1_string();
    // Keys sorted by name, numbers compared as numbers (80 before 8080), the protocol key
    // defaulted, and Go's HTML escaping inside set members.
    assert!(
        s.contains(r#""f:ports":{"k:{\"containerPort\":80,\"protocol\":\"UDP\"}":{".":{},"f:containerPort":{},"f:protocol":{}},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}"#),
        "{s}"
    );
    assert!(
        s.contains(r#""f:finalizers":{"v:\"a/b\"":{},"v:\"x\\u003cy\"":{}}"#),
        "{s}"
    );
    assert_eq!(
        FieldSet::from_fields_v1(&e.fields.to_fields_v1()).unwrap(),
        e.fields
    );

    // A second manager's set member survives; both are owned by value.
    let more = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "finalizers": ["c"]}});
    let out = do_apply(Some(&out), &more, "other", T1, false).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["a/b", "x<y", "c"]));
    assert!(owns(&out, "other", ".metadata.finalizers[=\"c\"]"));
}

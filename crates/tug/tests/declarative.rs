//! The declarative API as real kubectl (1.33 and 1.28) drives it: client-side `apply` of a
//! multi-document manifest and of an edited copy (strategic merge patch computed by kubectl
//! from the last-applied annotation), `diff`, server-side apply from two field managers with
//! a conflict and `--force-conflicts`, `edit` through an EDITOR script, `patch` with all three
//! patch types, and validation of unknown fields.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Kubectl, Server};
use serde_json::Value;

const V1: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: decl
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: decl
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: decl
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
        - containerPort: 443
        env:
        - name: A
          value: "1"
        - name: B
          value: "2"
"#;

/// V1 edited: a new image, port 443 and env B removed, a sidecar added.
const V2: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: decl
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: decl
data:
  mode: slow
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: decl
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.26
        ports:
        - containerPort: 80
        env:
        - name: A
          value: "1"
      - name: sidecar
        image: busybox:1.36
"#;

fn get_json(k: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&k.ok(&all)).unwrap()
}

fn deployment(k: &Kubectl) -> Value {
    get_json(k, &["get", "deploy", "web", "-n", "decl"])
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match &x[key] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn client_side_apply(minor: u32) {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, minor);
    let out = k.ok_stdin(&["apply", "-f", "-"], V1);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    // Another writer's change that the manifest does not mention survives re-applies.
    k.ok(&["label", "deploy", "web", "-n", "decl", "extra=kept"]);
    let out = k.ok_stdin(&["apply", "-f", "-"], V1);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");

    // diff: nothing to show for the applied manifest, the edit for the edited one.
    let (same, out, err) = k.run_stdin(&["diff", "-f", "-"], V1);
    assert!(same, "diff of the applied manifest: {out}{err}");
    let (same, out, _) = k.run_stdin(&["diff", "-f", "-"], V2);
    assert!(!same && out.contains("nginx:1.26"), "{out}");
    assert_eq!(
        deployment(&k)["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25",
        "diff is a dry run"
    );

    let out = k.ok_stdin(&["apply", "-f", "-"], V2);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d = deployment(&k);
    let spec = &d["spec"]["template"]["spec"];
    assert_eq!(names(&spec["containers"], "name"), ["web", "sidecar"]);
    let web = &spec["containers"][0];
    assert_eq!(web["image"], "nginx:1.26");
    assert_eq!(names(&web["ports"], "containerPort"), ["80"]);
    assert_eq!(names(&web["env"], "name"), ["A"]);
    assert_eq!(d["metadata"]["labels"]["extra"], "kept");
    assert_eq!(d["metadata"]["generation"], 2);
    let cm = get_json(&k, &["get", "configmap", "settings", "-n", "decl"]);
    assert_eq!(cm["data"]["mode"], "slow");
    // The update was recorded under kubectl's manager name.
    let d = get_json(
        &k,
        &[
            "get",
            "deploy",
            "web",
            "-n",
            "decl",
            "--show-managed-fields",
        ],
    );
    let managers = names(&d["metadata"]["managedFields"], "manager");
    assert!(
        managers.iter().any(|m| m == "kubectl-client-side-apply"),
        "{managers:?}"
    );
}

#[test]
fn client_side_apply_kubectl_1_33() {
    client_side_apply(33);
}

#[test]
fn client_side_apply_kubectl_1_28() {
    client_side_apply(28);
}

const SSA: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  namespace: default
spec:
  replicas: REPLICAS
  selector:
    matchLabels:
      app: ssa
  template:
    metadata:
      labels:
        app: ssa
    spec:
      containers:
      - name: app
        image: busybox:1.36
"#;

fn server_side_apply(minor: u32) {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, minor);
    let two = SSA.replace("REPLICAS", "2");
    let three = SSA.replace("REPLICAS", "3");
    let out = k.ok_stdin(&["apply", "--server-side", "-f", "-"], &two);
    assert!(out.contains("serverside-applied"), "{out}");
    // The same manager re-applying is not a conflict.
    k.ok_stdin(&["apply", "--server-side", "-f", "-"], &two);
    let err = k.fails_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        &three,
    );
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas") && err.contains("kubectl"),
        "{err}"
    );
    let d = get_json(&k, &["get", "deploy", "ssa"]);
    assert_eq!(d["spec"]["replicas"], 2, "a conflict changes nothing");
    k.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        &three,
    );
    let d = get_json(&k, &["get", "deploy", "ssa", "--show-managed-fields"]);
    assert_eq!(d["spec"]["replicas"], 3);
    let fields = d["metadata"]["managedFields"].as_array().unwrap();
    let owner_of_replicas: Vec<&str> = fields
        .iter()
        .filter(|f| !f["fieldsV1"]["f:spec"]["f:replicas"].is_null())
        .filter_map(|f| f["manager"].as_str())
        .collect();
    assert_eq!(owner_of_replicas, ["other"], "{fields:?}");
    // Besides the appliers, only the deployment controller writes (revision annotation and
    // status), as upstream's kube-controller-manager does.
    assert!(fields
        .iter()
        .all(|f| f["operation"] == "Apply" || f["manager"] == "kube-controller-manager"));
}

#[test]
fn server_side_apply_kubectl_1_33() {
    server_side_apply(33);
}

#[test]
fn server_side_apply_kubectl_1_28() {
    server_side_apply(28);
}

fn edit_and_patch(minor: u32) {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, minor);
    k.ok_stdin(&["apply", "-f", "-"], V2);

    // kubectl edit with an editor that changes the image.
    let dir = tempfile::tempdir().unwrap();
    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/image: nginx:1.26/image: nginx:1.27/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = k.run_with_env(
        &["edit", "deploy", "web", "-n", "decl"],
        &[("EDITOR", editor.to_str().unwrap())],
    );
    assert!(out.contains("edited"), "{out}");
    let d = deployment(&k);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );

    // Strategic merge (the default): containers merge by name, the sidecar stays.
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "decl",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}"#,
    ]);
    let d = deployment(&k);
    let containers = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers, "name"), ["web", "sidecar"]);
    assert_eq!(containers[0]["image"], "nginx:1.28");
    // JSON merge patch.
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "decl",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
    ]);
    // JSON patch.
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "decl",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    let d = deployment(&k);
    assert_eq!(d["metadata"]["labels"]["patched"], "merge");
    assert_eq!(d["spec"]["replicas"], 4);
    // A strategic patch whose list element lacks its merge key is refused, not a 500.
    let err = k.fails(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "decl",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"image":"nameless"}]}}}}"#,
    ]);
    assert!(!err.contains("Internal error"), "{err}");
    assert!(err.contains("name"), "{err}");
    // A failing JSON patch test operation is 422-style, not a 500.
    let err = k.fails(&[
        "patch",
        "deploy",
        "web",
        "-n",
        "decl",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
    ]);
    assert!(!err.contains("Internal error"), "{err}");
}

#[test]
fn edit_and_patch_kubectl_1_33() {
    edit_and_patch(33);
}

#[test]
fn edit_and_patch_kubectl_1_28() {
    edit_and_patch(28);
}

const UNKNOWN_FIELD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: strict
  namespace: default
data:
  a: b
bogusField: 1
"#;

fn validation(minor: u32) {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, minor);
    let err = k.fails_stdin(&["apply", "--validate=strict", "-f", "-"], UNKNOWN_FIELD);
    assert!(err.contains("bogusField"), "{err}");
    let (_, out, err) = k.run(&["get", "configmap", "strict"]);
    assert!(
        out.is_empty() && err.contains("NotFound"),
        "nothing was created"
    );
    k.ok_stdin(&["apply", "--validate=false", "-f", "-"], UNKNOWN_FIELD);
}

#[test]
fn strict_validation_kubectl_1_33() {
    validation(33);
}

#[test]
fn strict_validation_kubectl_1_28() {
    validation(28);
}

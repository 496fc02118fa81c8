//! The REST API as real kubectl (1.33 and 1.28) drives it: create, get in every output
//! form, describe, replace and delete of a multi-document manifest; selectors, sorting and
//! all-namespaces listing; label, annotate, scale; `get -w` and `wait --for=delete`; and the
//! error messages kubectl prints for 404, 409 and 422; kubectl 1.33's `create <kind>`
//! generators, which post protobuf.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{jsonpath, wait_until, Kubectl, Server, APISERVER_ONLY};

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels:
    tier: backend
data:
  mode: fast
  level: "3"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
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
      - name: httpd
        image: busybox:1.36
        command: ["httpd", "-f"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
"#;

/// `kubectl create` of the manifest on stdin (no OpenAPI yet, so no client-side validation).
const CREATE_STDIN: &[&str] = &["create", "--validate=false", "-f", "-"];

/// The `web` Deployment as kubectl prints it with `-o json`.
fn deployment(k: &Kubectl) -> serde_json::Value {
    serde_json::from_str(&k.ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"])).unwrap()
}

fn configmap(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  k: v\n"
    )
}

fn write_manifest(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn crud(minor: u32) {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, minor);
    let dir = tempfile::tempdir().unwrap();
    let file = write_manifest(dir.path(), "app.yaml", MANIFEST);

    let out = k.ok(&["create", "--validate=false", "-f", &file]);
    for line in [
        "namespace/shop created",
        "configmap/settings created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        assert!(out.contains(line), "1.{minor}: {out}");
    }

    // The system namespaces and the kubernetes service exist from the start.
    let out = k.ok(&["get", "namespaces", "-o", "name"]);
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "shop",
    ] {
        assert!(out.contains(&format!("namespace/{ns}")), "{out}");
    }
    let ip = k.ok(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(ip, "10.43.0.1");

    // Table output with upstream's columns.
    let out = k.ok(&["get", "deploy", "-n", "shop"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert!(out.contains("web"), "{out}");
    let out = k.ok(&["get", "deploy", "-n", "shop", "-o", "wide"]);
    assert!(
        out.contains("CONTAINERS") && out.contains("busybox:1.36"),
        "{out}"
    );
    assert!(out.contains("app=web"), "{out}");
    let out = k.ok(&["get", "svc", "web", "-n", "shop"]);
    assert!(out.contains("ClusterIP") && out.contains("80/TCP"), "{out}");

    // Other output forms.
    let yaml = k.ok(&["get", "cm", "settings", "-n", "shop", "-o", "yaml"]);
    assert!(
        yaml.contains("mode: fast") && yaml.contains("uid:"),
        "{yaml}"
    );
    let json = deployment(&k);
    assert_eq!(json["spec"]["replicas"], 2);
    assert_eq!(json["metadata"]["generation"], 1);
    assert_eq!(json["spec"]["strategy"]["type"], "RollingUpdate");
    let replicas = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "2");
    let out = k.ok(&[
        "get",
        "cm",
        "-n",
        "shop",
        "-o",
        "custom-columns=NAME:.metadata.name,MODE:.data.mode",
    ]);
    assert!(out.contains("settings") && out.contains("fast"), "{out}");

    // All namespaces, labels, field selectors, sorting.
    let out = k.ok(&["get", "cm", "-A"]);
    assert!(
        out.lines().next().unwrap().starts_with("NAMESPACE"),
        "{out}"
    );
    assert!(out.contains("shop") && out.contains("settings"), "{out}");
    let out = k.ok(&["get", "cm", "-A", "-l", "tier=backend", "-o", "name"]);
    assert_eq!(out.trim(), "configmap/settings");
    let out = k.ok(&["get", "cm", "-A", "-l", "tier!=backend", "-o", "name"]);
    assert!(!out.contains("settings"), "{out}");
    let out = k.ok(&[
        "get",
        "svc",
        "-A",
        "--field-selector",
        "metadata.namespace=shop",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "service/web");
    let out = k.ok(&["get", "cm", "-n", "shop", "--show-labels"]);
    assert!(out.contains("tier=backend"), "{out}");
    // (Manifests, not `kubectl create configmap`: kubectl 1.33 sends those as protobuf.)
    k.ok_stdin(CREATE_STDIN, &configmap("aaa", "shop"));
    let out = k.ok(&[
        "get",
        "cm",
        "-n",
        "shop",
        "--sort-by=.metadata.name",
        "-o",
        "name",
    ]);
    let names: Vec<&str> = out.lines().collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    let err = k.fails(&["get", "pods", "--field-selector", "spec.nope=x"]);
    assert!(err.contains("field label not supported"), "{err}");

    // describe.
    let out = k.ok(&["describe", "deploy", "web", "-n", "shop"]);
    assert!(
        out.contains("Name:") && out.contains("web") && out.contains("busybox:1.36"),
        "{out}"
    );

    // replace: the image changes, the generation goes up.
    let replaced = write_manifest(
        dir.path(),
        "replaced.yaml",
        &MANIFEST.replace("busybox:1.36", "busybox:1.37"),
    );
    k.ok(&["replace", "--validate=false", "-f", &replaced]);
    let json = deployment(&k);
    assert_eq!(
        json["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.37"
    );
    assert_eq!(json["metadata"]["generation"], 2);

    // Errors as upstream prints them.
    let err = k.fails(&["get", "cm", "nope", "-n", "shop"]);
    assert!(
        err.contains(r#"Error from server (NotFound): configmaps "nope" not found"#),
        "{err}"
    );
    let err = k.fails_stdin(CREATE_STDIN, &configmap("aaa", "shop"));
    assert!(
        err.contains("Error from server (AlreadyExists)")
            && err.contains(r#"configmaps "aaa" already exists"#),
        "{err}"
    );
    let bad = write_manifest(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n",
    );
    let err = k.fails(&["create", "--validate=false", "-f", &bad]);
    assert!(
        err.contains(r#"The Pod "bad" is invalid: spec.containers[0].image: Required value"#),
        "{err}"
    );
    let err = k.fails_stdin(CREATE_STDIN, &configmap("Bad_Name", "default"));
    assert!(
        err.contains("is invalid") && err.contains("metadata.name"),
        "{err}"
    );

    // delete -f removes everything in the manifest but the namespace's contents wait for
    // the namespace controller; delete the objects themselves.
    let objects = write_manifest(
        dir.path(),
        "objects.yaml",
        MANIFEST
            .split("---")
            .skip(1)
            .collect::<Vec<_>>()
            .join("---")
            .as_str(),
    );
    let out = k.ok(&["delete", "-f", &objects]);
    assert!(out.contains(r#"deployment.apps "web" deleted"#), "{out}");
    let out = k.ok(&["get", "deploy,svc", "-n", "shop", "-o", "name"]);
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
fn kubectl_1_33_crud() {
    crud(33);
}

#[test]
fn kubectl_1_28_crud() {
    crud(28);
}

fn changes(minor: u32) {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, minor);
    let dir = tempfile::tempdir().unwrap();
    let file = write_manifest(dir.path(), "app.yaml", MANIFEST);
    k.ok(&["apply", "--validate=false", "-f", &file]);

    k.ok(&["label", "deploy", "web", "-n", "shop", "release=blue"]);
    k.ok(&["annotate", "deploy", "web", "-n", "shop", "owner=team-a"]);
    let json = deployment(&k);
    assert_eq!(json["metadata"]["labels"]["release"], "blue");
    assert_eq!(json["metadata"]["annotations"]["owner"], "team-a");
    // Metadata changes leave the generation alone.
    assert_eq!(json["metadata"]["generation"], 1);

    let out = k.ok(&["scale", "deploy", "web", "-n", "shop", "--replicas=5"]);
    assert!(out.contains("scaled"), "{out}");
    let replicas = k.ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(replicas, "5");

    // get -w sees a later change.
    let mut watch = k
        .cmd()
        .args([
            "get",
            "cm",
            "-n",
            "shop",
            "-w",
            "-o",
            "name",
            // Not the cluster CA's ConfigMap every namespace has.
            "--field-selector=metadata.name!=kube-root-ca.crt",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(first, "configmap/settings");
    k.ok_stdin(CREATE_STDIN, &configmap("later", "shop"));
    let next = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(next, "configmap/later");
    let _ = watch.kill();
    let _ = watch.wait();

    // wait --for=delete returns once the object is gone.
    let mut waiter = k
        .cmd()
        .args([
            "wait",
            "--for=delete",
            "cm/later",
            "-n",
            "shop",
            "--timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    k.ok(&["delete", "cm", "later", "-n", "shop"]);
    let status = waiter.wait().unwrap();
    assert!(status.success(), "wait --for=delete failed");
    wait_until(10, "configmap gone", || {
        !k.run(&["get", "cm", "later", "-n", "shop"]).0
    });
}

#[test]
fn kubectl_1_33_label_annotate_scale_watch() {
    changes(33);
}

#[test]
fn kubectl_1_28_label_annotate_scale_watch() {
    changes(28);
}

#[test]
fn kubectl_133_create_generators_post_protobuf_that_reads_as_json() {
    let server = Server::start(APISERVER_ONLY);
    let k = Kubectl::new(&server, 33);
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1",
        "--replicas=0",
        "--port=8080",
    ]);
    assert_eq!(
        jsonpath(&k, &["get", "deployment", "web"], "{.spec.replicas}"),
        "0"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["get", "deployment", "web"],
            "{.spec.template.spec.containers[0].ports[0]}"
        ),
        r#"{"containerPort":8080,"protocol":"TCP"}"#,
        "no zero hostPort where JSON clients send none"
    );
    k.ok(&["create", "secret", "generic", "s1", "--from-literal=k=vé"]);
    assert_eq!(jsonpath(&k, &["get", "secret", "s1"], "{.data.k}"), "dsOp");
    k.ok(&["create", "service", "clusterip", "svc1", "--tcp=80:http"]);
    assert_eq!(
        jsonpath(
            &k,
            &["get", "service", "svc1"],
            "{.spec.ports[0].targetPort}"
        ),
        "http"
    );
    k.ok(&["create", "quota", "q1", "--hard=cpu=1500m,pods=10"]);
    assert_eq!(
        jsonpath(&k, &["get", "quota", "q1"], "{.spec.hard.cpu}"),
        "1500m"
    );
    k.ok(&[
        "create",
        "cronjob",
        "cj1",
        "--image=busybox:1",
        "--schedule=*/5 * * * *",
        "--",
        "true",
    ]);
    assert_eq!(
        jsonpath(&k, &["get", "cronjob", "cj1"], "{.spec.schedule}"),
        "*/5 * * * *"
    );
    // Ephemeral containers: `kubectl debug` adds one through pods/ephemeralcontainers;
    // existing ones stay as they are, and the pod itself cannot change them.
    k.ok(&["run", "target", "--image=busybox:1"]);
    k.ok(&[
        "debug",
        "target",
        "--image=busybox:1",
        "-c",
        "dbg",
        "--target=target",
        "--",
        "true",
    ]);
    assert_eq!(
        jsonpath(
            &k,
            &["get", "pod", "target"],
            "{.spec.ephemeralContainers[0].targetContainerName}"
        ),
        "target"
    );
    let err = k.fails(&[
        "debug",
        "target",
        "--image=busybox:1",
        "--target=nope",
        "--",
        "true",
    ]);
    assert!(
        err.contains(r#"targetContainerName: Not found: "nope""#),
        "{err}"
    );
    let err = k.fails(&[
        "patch",
        "pod",
        "target",
        "--subresource=ephemeralcontainers",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/ephemeralContainers/0"}]"#,
    ]);
    assert!(
        err.contains(r#"existing ephemeral containers "dbg" may not be removed"#),
        "{err}"
    );
    let err = k.fails(&[
        "patch",
        "pod",
        "target",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"x","image":"y"}}]"#,
    ]);
    assert!(err.contains("pod updates may not change fields"), "{err}");
    // A path no resource serves is a 404 whose details are there, empty: kubectl tells a
    // missing subresource from a missing object by them (and panicked without them).
    let (code, body) = common::curl(
        &server,
        "GET",
        "/api/v1/namespaces/default/pods/target/nosuch",
        &[],
        None,
    );
    assert_eq!(code, 404);
    assert!(body.contains(r#""details":{}"#), "{body}");
    // Validation still answers as for JSON.
    let err = k.fails(&["create", "deployment", "Bad_Name", "--image=busybox:1"]);
    assert!(
        err.contains(r#"Deployment.apps "Bad_Name" is invalid"#),
        "{err}"
    );
}

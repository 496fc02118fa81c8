//! The OpenAPI documents as real kubectl uses them: 1.33 reads `/openapi/v3`, 1.28 the
//! protobuf `/openapi/v2`. With either, `explain` prints a field's documentation,
//! `--validate=strict` rejects an unknown field (naming it), `--validate=false` lets it
//! through, and a default `apply` of a valid manifest works. Also the endpoints over HTTP:
//! the v3 index, a group-version document, 404 for an unknown one, protobuf v2. A `List`
//! is validated by kubectl itself against the v2 document, on both versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{curl, Kubectl, Server};

/// A Deployment named `name`, with `extra` added to its spec.
fn deployment(name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1{extra}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: busybox:1.36
"#
    )
}

/// A `List` of a Deployment (with `extra` in its spec) and a ConfigMap. kubectl does not
/// leave a List to the server's field validation: it checks it against the v2 protobuf
/// document itself, on every version.
fn list(name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: {name}
    labels: {{tier: web}}
    annotations: {{note: "listed"}}
  spec:
    replicas: 2{extra}
    strategy:
      type: RollingUpdate
      rollingUpdate: {{maxSurge: "25%", maxUnavailable: 1}}
    selector:
      matchLabels: {{app: {name}}}
    template:
      metadata:
        labels: {{app: {name}}}
      spec:
        containers:
        - name: web
          image: busybox:1.36
          ports: [{{containerPort: 80, protocol: TCP}}]
          env: [{{name: MODE, value: "fast"}}]
          resources: {{limits: {{cpu: 100m, memory: 64Mi}}}}
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: {name}
  data:
    k: v
"#
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn with_kubectl(minor: u32) {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, minor);
    let dir = tempfile::tempdir().unwrap();

    let out = k.ok(&["explain", "deployment.spec.strategy"]);
    for needle in ["KIND:", "Deployment", "rollingUpdate", "type"] {
        assert!(out.contains(needle), "1.{minor} explain: {out}");
    }

    let bad = write(
        dir.path(),
        "bad.yaml",
        &deployment("bad", "\n  bogusField: 3"),
    );
    let err = k.fails(&["create", "--validate=strict", "-f", &bad]);
    assert!(err.contains("bogusField"), "1.{minor}: {err}");
    let (exists, _, _) = k.run(&["get", "deployment", "bad"]);
    assert!(!exists, "1.{minor}: the invalid Deployment was created");

    let out = k.ok(&["create", "--validate=false", "-f", &bad]);
    assert!(
        out.contains("deployment.apps/bad created"),
        "1.{minor}: {out}"
    );
    let stored = k.ok(&["get", "deployment", "bad", "-o", "json"]);
    assert!(!stored.contains("bogusField"), "1.{minor}: {stored}");

    // Client-side validation from the v2 document: an unknown field is named with its type…
    let bad_list = write(
        dir.path(),
        "bad-list.yaml",
        &list("bad-list", "\n    bogusField: 3"),
    );
    let err = k.fails(&["create", "--validate=strict", "-f", &bad_list]);
    assert!(
        err.contains(r#"unknown field "bogusField" in io.k8s.api.apps.v1.DeploymentSpec"#),
        "1.{minor}: {err}"
    );
    // …and a valid object (int-or-string, quantities, maps, lists by key) passes.
    let good_list = write(dir.path(), "good-list.yaml", &list("listed", ""));
    let out = k.ok(&["create", "--validate=strict", "-f", &good_list]);
    assert!(
        out.contains("deployment.apps/listed created") && out.contains("configmap/listed created"),
        "1.{minor}: {out}"
    );

    let good = write(dir.path(), "good.yaml", &deployment("good", ""));
    let out = k.ok(&["apply", "-f", &good]);
    assert!(
        out.contains("deployment.apps/good created"),
        "1.{minor}: {out}"
    );
    let out = k.ok(&["apply", "-f", &good]);
    assert!(
        out.contains("deployment.apps/good unchanged"),
        "1.{minor}: {out}"
    );
}

#[test]
fn kubectl_1_33_explain_and_validation() {
    with_kubectl(33);
}

#[test]
fn kubectl_1_28_explain_and_validation() {
    with_kubectl(28);
}

#[test]
fn endpoints_over_http() {
    let server = Server::start(&[]);
    let (code, body) = curl(&server, "GET", "/openapi/v3", &[], None);
    assert_eq!(code, 200, "{body}");
    let index: serde_json::Value = serde_json::from_str(&body).unwrap();
    for gv in ["api/v1", "apis/apps/v1"] {
        let url = index["paths"][gv]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with(&format!("/openapi/v3/{gv}?hash=")), "{url}");
    }
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    let (code, body) = curl(&server, "GET", url, &[], None);
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.0.0");
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "Deployment"
    );

    let (code, body) = curl(
        &server,
        "GET",
        "/openapi/v3/apis/nope.example.com/v1",
        &[],
        None,
    );
    assert_eq!(code, 404);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["reason"], "NotFound");

    let protobuf = "Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (code, body) = curl(&server, "GET", "/openapi/v2", &[protobuf], None);
    assert_eq!(code, 200);
    assert!(
        body.starts_with("\n\u{3}2.0"),
        "a Document whose swagger is 2.0"
    );
    let (code, body) = curl(&server, "GET", "/openapi/v2", &[], None);
    assert_eq!(code, 200);
    let v2: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v2["swagger"], "2.0");
}

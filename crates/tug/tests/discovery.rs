//! API discovery as real kubectl sees it: `kubectl api-resources` with kubectl 1.33
//! (aggregated discovery v2) and 1.28 (v2beta1), and the legacy documents a client without
//! aggregated discovery reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{kubectl, run, Server};

#[test]
fn kubectl_api_resources_lists_the_catalogue() {
    let server = Server::start(&[]);
    for minor in [33, 28] {
        let cache = tempfile::tempdir().unwrap();
        let (ok, out, err) = run(kubectl(minor)
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["api-resources", "--no-headers"]));
        assert!(ok, "kubectl 1.{minor} api-resources: {err}");
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let has = |want: &[&str]| rows.iter().any(|r| r.as_slice() == want);
        assert!(
            has(&["deployments", "deploy", "apps/v1", "true", "Deployment"]),
            "1.{minor}:\n{out}"
        );
        assert!(
            has(&["namespaces", "ns", "v1", "false", "Namespace"]),
            "1.{minor}:\n{out}"
        );
        assert!(
            has(&["secrets", "v1", "true", "Secret"]),
            "1.{minor}:\n{out}"
        );
        assert!(
            has(&[
                "horizontalpodautoscalers",
                "hpa",
                "autoscaling/v2",
                "true",
                "HorizontalPodAutoscaler"
            ]),
            "preferred version shown, 1.{minor}:\n{out}"
        );

        let (ok, out, err) = run(kubectl(minor)
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["api-resources", "--api-group=apps", "-o", "name"]));
        assert!(ok, "{err}");
        let names: Vec<&str> = out.lines().collect();
        assert_eq!(
            names,
            [
                "controllerrevisions.apps",
                "daemonsets.apps",
                "deployments.apps",
                "replicasets.apps",
                "statefulsets.apps"
            ]
        );
    }
}

#[test]
fn legacy_discovery_documents() {
    let server = Server::start(&[]);
    let raw = |path: &str| {
        let (ok, out, err) = run(kubectl(33)
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .args(["get", "--raw", path]));
        assert!(ok, "{path}: {err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let api = raw("/api");
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"][0], "v1");
    let apis = raw("/apis");
    assert_eq!(apis["kind"], "APIGroupList");
    let apps = raw("/apis/apps");
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    let v1 = raw("/api/v1");
    assert_eq!(v1["kind"], "APIResourceList");
    let pods_log = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/log")
        .unwrap();
    assert_eq!(pods_log["verbs"][0], "get");
    let (ok, _, err) = run(kubectl(33)
        .arg("--kubeconfig")
        .arg(server.kubeconfig())
        .args(["get", "--raw", "/apis/nosuch.group/v1"]));
    assert!(!ok);
    assert!(
        err.contains("NotFound") || err.contains("could not find"),
        "{err}"
    );
}

//! The REST API at the HTTP level: bad input always gets a `Status` with upstream's code and
//! reason (never a 500), real clients' quirks are tolerated, and watch, list paging and
//! resourceVersion semantics behave as upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{curl, Server, APISERVER_ONLY};

use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "Content-Type: application/json";

fn status(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["kind"], "Status", "{body}");
    v
}

fn cm(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "labels": { "app": "x" } },
        "data": { "k": "v" },
    }))
    .unwrap()
}

#[test]
fn bad_input_gets_a_status_and_changes_nothing() {
    let server = Server::start(APISERVER_ONLY);
    let post = |headers: &[&str], body: &[u8]| curl(&server, "POST", CMS, headers, Some(body));
    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        (
            "malformed JSON",
            post(&[JSON], b"{\"kind\": "),
            400,
            "BadRequest",
        ),
        (
            "YAML sent as JSON",
            post(&[JSON], b"kind: ConfigMap\n"),
            400,
            "BadRequest",
        ),
        (
            "wrong kind",
            post(
                &[JSON],
                br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"}}"#,
            ),
            400,
            "BadRequest",
        ),
        (
            "wrong apiVersion",
            post(
                &[JSON],
                br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"a"}}"#,
            ),
            400,
            "BadRequest",
        ),
        (
            "wrong field type",
            post(
                &[JSON],
                br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":7}"#,
            ),
            400,
            "BadRequest",
        ),
        (
            "invalid name",
            post(&[JSON], &cm("Not_Valid")),
            422,
            "Invalid",
        ),
        (
            "unknown content type",
            post(&["Content-Type: text/plain"], &cm("a")),
            415,
            "UnsupportedMediaType",
        ),
        (
            "body over 3 MiB",
            post(&[JSON], &vec![b' '; 3 * 1024 * 1024 + 10]),
            413,
            "RequestEntityTooLarge",
        ),
        (
            "unknown field, strict",
            curl(
                &server,
                "POST",
                &format!("{CMS}?fieldValidation=Strict"),
                &[JSON],
                Some(
                    br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"spec":{}}"#,
                ),
            ),
            400,
            "BadRequest",
        ),
        (
            "method not allowed",
            curl(&server, "PUT", CMS, &[JSON], Some(&cm("a"))),
            405,
            "MethodNotAllowed",
        ),
        (
            "not acceptable",
            curl(&server, "GET", CMS, &["Accept: text/html"], None),
            406,
            "NotAcceptable",
        ),
        (
            "bad label selector",
            curl(
                &server,
                "GET",
                &format!("{CMS}?labelSelector=a%20in%20("),
                &[],
                None,
            ),
            400,
            "BadRequest",
        ),
        (
            "unsupported field selector",
            curl(
                &server,
                "GET",
                &format!("{CMS}?fieldSelector=spec.x%3Dy"),
                &[],
                None,
            ),
            400,
            "BadRequest",
        ),
        (
            "bad continue token",
            curl(
                &server,
                "GET",
                &format!("{CMS}?limit=1&continue=nonsense"),
                &[],
                None,
            ),
            400,
            "BadRequest",
        ),
        (
            "missing namespace",
            curl(
                &server,
                "POST",
                "/api/v1/namespaces/nowhere/configmaps",
                &[JSON],
                Some(&cm("a")),
            ),
            404,
            "NotFound",
        ),
        (
            "unknown resource",
            curl(
                &server,
                "GET",
                "/api/v1/namespaces/default/widgets",
                &[],
                None,
            ),
            404,
            "NotFound",
        ),
    ];
    for (what, (code, body), want_code, want_reason) in cases {
        assert_eq!(code, want_code, "{what}: {body}");
        let s = status(&body);
        assert_eq!(s["reason"], want_reason, "{what}: {body}");
        assert_eq!(s["code"], want_code, "{what}");
    }
    let (code, body) = post(&[JSON], &cm("Not_Valid"));
    assert_eq!(code, 422);
    let s = status(&body);
    assert_eq!(
        s["details"]["causes"][0]["field"], "metadata.name",
        "{body}"
    );
    assert_eq!(s["details"]["kind"], "ConfigMap");
    // Nothing was stored by any of it.
    let (code, body) = curl(&server, "GET", CMS, &[], None);
    assert_eq!(code, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{body}");
}

#[test]
fn client_quirks_are_tolerated() {
    let server = Server::start(APISERVER_ONLY);
    // No Content-Type (the Python client), and a `?&` query (kube-rs).
    let (code, body) = curl(
        &server,
        "POST",
        &format!("{CMS}?&fieldManager=x"),
        &["Content-Type:"],
        Some(&cm("a")),
    );
    assert_eq!(code, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(created["metadata"]["resourceVersion"].as_str().is_some());
    // Protobuf offered first: answered with JSON.
    let (code, body) = curl(
        &server,
        "GET",
        &format!("{CMS}/a"),
        &["Accept: application/vnd.kubernetes.protobuf, */*"],
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["metadata"]["name"],
        "a"
    );
    // /version/ with a trailing slash.
    let (code, _) = curl(&server, "GET", "/version/", &[], None);
    assert_eq!(code, 200);
    // PartialObjectMetadata for kube-rs metadata calls.
    let (code, body) = curl(
        &server,
        "GET",
        CMS,
        &["Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"],
        None,
    );
    assert_eq!(code, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert!(list["items"][0].get("data").is_none());
    // DELETE with a JSON DeleteOptions body: a Success Status with the uid.
    let (code, body) = curl(
        &server,
        "DELETE",
        &format!("{CMS}/a"),
        &[JSON],
        Some(br#"{"propagationPolicy":"Background"}"#),
    );
    assert_eq!(code, 200, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["status"], "Success");
    assert_eq!(s["details"]["uid"], created["metadata"]["uid"]);
}

#[test]
fn stale_updates_conflict_and_lists_page() {
    let server = Server::start(APISERVER_ONLY);
    for i in 0..5 {
        let (code, body) = curl(&server, "POST", CMS, &[JSON], Some(&cm(&format!("c{i}"))));
        assert_eq!(code, 201, "{body}");
    }
    let (_, body) = curl(&server, "GET", &format!("{CMS}/c0"), &[], None);
    let mut obj: Value = serde_json::from_str(&body).unwrap();
    obj["data"]["k"] = json!("new");
    let (code, body) = curl(
        &server,
        "PUT",
        &format!("{CMS}/c0"),
        &[JSON],
        Some(&serde_json::to_vec(&obj).unwrap()),
    );
    assert_eq!(code, 200, "{body}");
    // The same (now stale) resourceVersion again: 409 Conflict.
    obj["data"]["k"] = json!("newer");
    let (code, body) = curl(
        &server,
        "PUT",
        &format!("{CMS}/c0"),
        &[JSON],
        Some(&serde_json::to_vec(&obj).unwrap()),
    );
    assert_eq!(code, 409, "{body}");
    let s = status(&body);
    assert_eq!(s["reason"], "Conflict");
    assert!(s["message"]
        .as_str()
        .unwrap()
        .contains("the object has been modified"));

    // Paging: 2 at a time, every object once.
    let mut names = Vec::new();
    let mut cont = String::new();
    loop {
        let path = if cont.is_empty() {
            format!("{CMS}?limit=2")
        } else {
            format!("{CMS}?limit=2&continue={cont}")
        };
        let (code, body) = curl(&server, "GET", &path, &[], None);
        assert_eq!(code, 200, "{body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        for item in list["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_owned());
        }
        match list["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_owned(),
            _ => break,
        }
        // A write between pages does not change what the paged list shows.
        let _ = curl(
            &server,
            "POST",
            CMS,
            &[JSON],
            Some(&cm(&format!("late{}", names.len()))),
        );
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
}

/// A watch of the ConfigMaps with `query` (which ends it, e.g. by timeoutSeconds): the HTTP
/// code, the raw body and its events.
fn watch(server: &Server, query: &str) -> (u16, String, Vec<Value>) {
    let (code, body) = curl(server, "GET", &format!("{CMS}?{query}"), &[], None);
    let events = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (code, body, events)
}

/// The resourceVersion of a created object's response body.
fn created_rv(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn watches_follow_resource_versions() {
    let mut server = Server::start(APISERVER_ONLY);
    let rv1 = created_rv(&curl(&server, "POST", CMS, &[JSON], Some(&cm("w1"))).1);
    let rv2 = created_rv(&curl(&server, "POST", CMS, &[JSON], Some(&cm("w2"))).1);
    // From rv1: only the later change. timeoutSeconds ends the stream.
    let (code, _, events) = watch(
        &server,
        &format!("watch=1&resourceVersion={rv1}&timeoutSeconds=1&allowWatchBookmarks=true"),
    );
    assert_eq!(code, 200);
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "w2");
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        rv2.as_str()
    );
    assert_eq!(events.last().unwrap()["type"], "BOOKMARK");
    assert_eq!(events.last().unwrap()["object"]["kind"], "ConfigMap");
    // Without a revision: the current objects first; with sendInitialEvents, the
    // initial-events-end bookmark after them.
    let (_, body, events) = watch(
        &server,
        "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    );
    assert_eq!(events.len(), 4, "{body}");
    assert_eq!(events[2]["type"], "BOOKMARK");
    assert_eq!(
        events[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    // sendInitialEvents=false: no initial objects, only later changes (here none, so just
    // the closing bookmark).
    let (_, body, events) = watch(
        &server,
        "watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    );
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["type"], "BOOKMARK");
    // After a restart the cache starts at the current revision: an older one is an ERROR
    // event with 410 Expired (clients relist). The objects survived the restart.
    server.restart();
    let (code, body) = curl(&server, "GET", &format!("{CMS}/w1"), &[], None);
    assert_eq!(code, 200, "{body}");
    let (code, body, events) = watch(&server, "watch=true&resourceVersion=1");
    assert_eq!(code, 200);
    assert_eq!(events[0]["type"], "ERROR", "{body}");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    // A label selector filters the stream.
    let (_, body, _) = watch(
        &server,
        "watch=true&labelSelector=app%3Dnone&timeoutSeconds=1",
    );
    assert!(body.trim().is_empty(), "{body}");
}

#[test]
fn services_and_namespaces_follow_upstream_rules() {
    let server = Server::start(&[
        "--service-cidr",
        "10.96.0.0/24",
        "--disable-controller-manager",
        "--disable-scheduler",
    ]);
    const SVCS: &str = "/api/v1/namespaces/default/services";
    let svc = |name: &str, node_port: Option<u16>| {
        let mut port = json!({ "port": 80 });
        if let Some(p) = node_port {
            port["nodePort"] = json!(p);
        }
        serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "Service", "metadata": { "name": name },
            "spec": { "type": "NodePort", "selector": { "app": "x" }, "ports": [port] },
        }))
        .unwrap()
    };
    // The kubernetes service has the first address of the range.
    let (_, body) = curl(&server, "GET", &format!("{SVCS}/kubernetes"), &[], None);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["spec"]["clusterIP"],
        "10.96.0.1"
    );
    let (code, body) = curl(&server, "POST", SVCS, &[JSON], Some(&svc("a", Some(30080))));
    assert_eq!(code, 201, "{body}");
    let a: Value = serde_json::from_str(&body).unwrap();
    assert!(a["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .starts_with("10.96.0."));
    assert_eq!(a["spec"]["ports"][0]["targetPort"], 80);
    // The same NodePort twice: 422 naming the field.
    let (code, body) = curl(&server, "POST", SVCS, &[JSON], Some(&svc("b", Some(30080))));
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        status(&body)["details"]["causes"][0]["field"],
        "spec.ports[0].nodePort"
    );
    // Switching to ClusterIP drops the node port and the external traffic policy.
    let (code, body) = curl(
        &server,
        "PATCH",
        &format!("{SVCS}/a"),
        &["Content-Type: application/merge-patch+json"],
        Some(br#"{"spec":{"type":"ClusterIP"}}"#),
    );
    assert_eq!(code, 200, "{body}");
    let patched: Value = serde_json::from_str(&body).unwrap();
    assert!(
        patched["spec"]["ports"][0].get("nodePort").is_none(),
        "{body}"
    );
    assert_eq!(patched["spec"]["clusterIP"], a["spec"]["clusterIP"]);
    // Now the port is free again.
    let (code, body) = curl(&server, "POST", SVCS, &[JSON], Some(&svc("b", Some(30080))));
    assert_eq!(code, 201, "{body}");
    // System namespaces cannot be deleted; a terminating one takes no new objects.
    let (code, body) = curl(
        &server,
        "DELETE",
        "/api/v1/namespaces/kube-system",
        &[],
        None,
    );
    assert_eq!(code, 403, "{body}");
    let ns = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"gone"}}"#;
    assert_eq!(
        curl(&server, "POST", "/api/v1/namespaces", &[JSON], Some(ns)).0,
        201
    );
    let (code, body) = curl(&server, "DELETE", "/api/v1/namespaces/gone", &[], None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"]["phase"],
        "Terminating"
    );
    let (code, body) = curl(
        &server,
        "POST",
        "/api/v1/namespaces/gone/configmaps",
        &[JSON],
        Some(&cm("x")),
    );
    assert_eq!(code, 403, "{body}");
    // Emptying its finalizers (what the namespace controller does) removes it.
    let fin = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"gone"},"spec":{"finalizers":[]}}"#;
    let (code, body) = curl(
        &server,
        "PUT",
        "/api/v1/namespaces/gone/finalize",
        &[JSON],
        Some(fin),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        curl(&server, "GET", "/api/v1/namespaces/gone", &[], None).0,
        404
    );
}

#[test]
fn pods_bind_delete_gracefully_and_evict() {
    let server = Server::start(APISERVER_ONLY);
    const PODS: &str = "/api/v1/namespaces/default/pods";
    let pod = |name: &str| {
        serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name },
            "spec": { "containers": [{ "name": "c", "image": "busybox:1.36" }] },
        }))
        .unwrap()
    };
    // dryRun=All answers the would-be object and stores nothing.
    let (code, body) = curl(
        &server,
        "POST",
        &format!("{PODS}?dryRun=All"),
        &[JSON],
        Some(&pod("dry")),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        curl(&server, "GET", &format!("{PODS}/dry"), &[], None).0,
        404
    );
    // generateName.
    let gen = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"job-"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#;
    let (code, body) = curl(&server, "POST", PODS, &[JSON], Some(gen));
    assert_eq!(code, 201, "{body}");
    let name = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("job-") && name.len() == 9, "{name}");

    for p in ["web", "evicted"] {
        assert_eq!(curl(&server, "POST", PODS, &[JSON], Some(&pod(p))).0, 201);
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": p},
                             "target": {"kind": "Node", "name": "node-1"}});
        let (code, body) = curl(
            &server,
            "POST",
            &format!("{PODS}/{p}/binding"),
            &[JSON],
            Some(&serde_json::to_vec(&binding).unwrap()),
        );
        assert_eq!(code, 201, "{body}");
    }
    let (_, body) = curl(&server, "GET", &format!("{PODS}/web"), &[], None);
    let bound: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bound["spec"]["nodeName"], "node-1");
    assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");
    // A pod the watch cache holds (a consistent GET waits for it) is bound from its cached
    // bytes without decoding them: the same pod, with its node and condition, results.
    let labelled = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"cached","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}"#;
    assert_eq!(curl(&server, "POST", PODS, &[JSON], Some(labelled)).0, 201);
    let (code, before) = curl(&server, "GET", &format!("{PODS}/cached"), &[], None);
    assert_eq!(code, 200, "{before}");
    let uid = serde_json::from_str::<Value>(&before).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let binding_for = |uid: &str| {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": "cached", "uid": uid}, "target": {"name": "node-3"}}))
        .unwrap()
    };
    let path = format!("{PODS}/cached/binding");
    // A binding for another incarnation of the pod (upstream's UID precondition) conflicts.
    let (code, body) = curl(&server, "POST", &path, &[JSON], Some(&binding_for("other")));
    assert_eq!(code, 409, "{body}");
    assert!(
        status(&body)["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition: other"),
        "{body}"
    );
    let bind_cached = binding_for(&uid);
    let (code, body) = curl(&server, "POST", &path, &[JSON], Some(&bind_cached));
    assert_eq!(code, 201, "{body}");
    let (_, after) = curl(&server, "GET", &format!("{PODS}/cached"), &[], None);
    let (mut before, after): (Value, Value) = (
        serde_json::from_str(&before).unwrap(),
        serde_json::from_str(&after).unwrap(),
    );
    assert_eq!(after["spec"]["nodeName"], "node-3", "{after}");
    let conditions = after["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "{after}");
    assert_eq!(conditions[0]["type"], "PodScheduled");
    assert_eq!(conditions[0]["status"], "True");
    assert!(conditions[0]["lastTransitionTime"].is_string(), "{after}");
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    before["spec"]["nodeName"] = json!("node-3");
    before["status"]["conditions"] = after["status"]["conditions"].clone();
    before["metadata"]["resourceVersion"] = after["metadata"]["resourceVersion"].clone();
    assert_eq!(before, after);
    let (code, _) = curl(&server, "POST", &path, &[JSON], Some(&bind_cached));
    assert_eq!(code, 409);
    // A gated pod is not bound; a binding's annotations are merged into the pod and the
    // nomination goes, as upstream's binding storage does.
    let gated = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"gated"},"spec":{"schedulingGates":[{"name":"g"}],"containers":[{"name":"c","image":"x"}]}}"#;
    assert_eq!(curl(&server, "POST", PODS, &[JSON], Some(gated)).0, 201);
    let bind_gated = br#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"gated"},"target":{"name":"n"}}"#;
    let (code, body) = curl(
        &server,
        "POST",
        &format!("{PODS}/gated/binding"),
        &[JSON],
        Some(bind_gated),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("has non-empty .spec.schedulingGates"),
        "{body}"
    );
    assert_eq!(
        curl(&server, "POST", PODS, &[JSON], Some(&pod("nominated"))).0,
        201
    );
    let nominate = br#"{"status":{"nominatedNodeName":"n"}}"#;
    let merge = "Content-Type: application/merge-patch+json";
    let (code, body) = curl(
        &server,
        "PATCH",
        &format!("{PODS}/nominated/status"),
        &[merge],
        Some(nominate),
    );
    assert_eq!(code, 200, "{body}");
    let annotated = br#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"nominated","annotations":{"a":"b"}},"target":{"name":"n"}}"#;
    let (code, body) = curl(
        &server,
        "POST",
        &format!("{PODS}/nominated/binding"),
        &[JSON],
        Some(annotated),
    );
    assert_eq!(code, 201, "{body}");
    let (_, body) = curl(&server, "GET", &format!("{PODS}/nominated"), &[], None);
    let bound: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bound["metadata"]["annotations"]["a"], "b", "{body}");
    assert!(bound["status"].get("nominatedNodeName").is_none(), "{body}");
    assert_eq!(bound["spec"]["nodeName"], "n", "{body}");
    // A second binding conflicts.
    let again = br#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"web"},"target":{"name":"node-2"}}"#;
    assert_eq!(
        curl(
            &server,
            "POST",
            &format!("{PODS}/web/binding"),
            &[JSON],
            Some(again)
        )
        .0,
        409
    );
    // A pod on a node is deleted gracefully: marked, still there, until its kubelet deletes
    // it with grace 0.
    let (code, body) = curl(&server, "DELETE", &format!("{PODS}/web"), &[], None);
    assert_eq!(code, 200, "{body}");
    let marked: Value = serde_json::from_str(&body).unwrap();
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{body}"
    );
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(
        curl(&server, "GET", &format!("{PODS}/web"), &[], None).0,
        200
    );
    // An absurd grace period on a bound pod is clamped, never a crash.
    assert_eq!(
        curl(&server, "POST", PODS, &[JSON], Some(&pod("huge"))).0,
        201
    );
    let bind =
        br#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"huge"},"target":{"name":"n"}}"#;
    assert_eq!(
        curl(
            &server,
            "POST",
            &format!("{PODS}/huge/binding"),
            &[JSON],
            Some(bind)
        )
        .0,
        201
    );
    let (code, body) = curl(
        &server,
        "DELETE",
        &format!("{PODS}/huge?gracePeriodSeconds=9223372036854775807"),
        &[],
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = curl(
        &server,
        "DELETE",
        &format!("{PODS}/web?gracePeriodSeconds=0"),
        &[],
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(
        curl(&server, "GET", &format!("{PODS}/web"), &[], None).0,
        404
    );
    // Eviction deletes through the same path.
    let eviction = br#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"evicted"},"deleteOptions":{"gracePeriodSeconds":0}}"#;
    let (code, body) = curl(
        &server,
        "POST",
        &format!("{PODS}/evicted/eviction"),
        &[JSON],
        Some(eviction),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        curl(&server, "GET", &format!("{PODS}/evicted"), &[], None).0,
        404
    );
    // Pod specs are immutable apart from what upstream allows.
    let (_, body) = curl(&server, "GET", &format!("{PODS}/{name}"), &[], None);
    let mut p: Value = serde_json::from_str(&body).unwrap();
    p["spec"]["containers"][0]["command"] = json!(["sh"]);
    let (code, body) = curl(
        &server,
        "PUT",
        &format!("{PODS}/{name}"),
        &[JSON],
        Some(&serde_json::to_vec(&p).unwrap()),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("pod updates may not change fields"), "{body}");
    // Tables: upstream's pod columns, with the wide ones at priority 1.
    let (code, body) = curl(
        &server,
        "GET",
        PODS,
        &["Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json"],
        None,
    );
    assert_eq!(code, 200);
    let table: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(table["metadata"]["resourceVersion"].is_string());
}

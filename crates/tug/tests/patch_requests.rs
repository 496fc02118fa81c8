//! PATCH and apply requests at the HTTP level: every malformed patch or bad option gets a
//! Kubernetes `Status` with upstream's code and reason (never a 500) and changes nothing;
//! server-side apply creates, updates, reports conflicts with causes, and accepts YAML.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{curl, Server, APISERVER_ONLY};
use serde_json::Value;

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments/web";
const SMP: &str = "Content-Type: application/strategic-merge-patch+json";
const MERGE: &str = "Content-Type: application/merge-patch+json";
const JSONPATCH: &str = "Content-Type: application/json-patch+json";
const APPLY: &str = "Content-Type: application/apply-patch+yaml";

const WEB: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
"spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
"spec":{"containers":[{"name":"web","image":"nginx:1.25"}]}}}}"#;

fn status(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[test]
fn malformed_patches_get_a_status_and_change_nothing() {
    let server = Server::start(APISERVER_ONLY);
    let (code, body) = curl(
        &server,
        "PATCH",
        &format!("{DEPLOY}?fieldManager=t"),
        &[APPLY],
        Some(WEB.as_bytes()),
    );
    assert_eq!(code, 201, "apply creates: {body}");
    let before = curl(&server, "GET", DEPLOY, &[], None).1;
    let patch = |query: &str, header: &str, body: &str| {
        curl(
            &server,
            "PATCH",
            &format!("{DEPLOY}{query}"),
            &[header],
            Some(body.as_bytes()),
        )
    };
    let cases: Vec<(&str, (u16, String), u16, &str)> = vec![
        (
            "apply without a field manager",
            patch("", APPLY, WEB),
            422,
            "Invalid",
        ),
        (
            "force on a merge patch",
            patch("?force=true", MERGE, "{}"),
            422,
            "Invalid",
        ),
        (
            "apply of unparsable YAML",
            patch("?fieldManager=t", APPLY, "a: [b"),
            400,
            "BadRequest",
        ),
        (
            "apply of another kind",
            patch(
                "?fieldManager=t",
                APPLY,
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"}}"#,
            ),
            400,
            "BadRequest",
        ),
        (
            "apply under another name",
            patch(
                "?fieldManager=t",
                APPLY,
                &WEB.replace("\"web\"}", "\"other\"}"),
            ),
            400,
            "BadRequest",
        ),
        (
            "apply of a list element without its key",
            patch(
                "?fieldManager=t",
                APPLY,
                r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
            ),
            422,
            "Invalid",
        ),
        (
            "strategic patch that is a list",
            patch("", SMP, "[1]"),
            400,
            "BadRequest",
        ),
        (
            "unknown $patch directive",
            patch("", SMP, r#"{"spec":{"$patch":"bogus"}}"#),
            400,
            "BadRequest",
        ),
        (
            "strategic list element without merge key",
            patch(
                "",
                SMP,
                r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
            ),
            400,
            "BadRequest",
        ),
        (
            "JSON patch that is an object",
            patch("", JSONPATCH, "{}"),
            400,
            "BadRequest",
        ),
        (
            "JSON patch test that fails",
            patch(
                "",
                JSONPATCH,
                r#"[{"op":"test","path":"/spec/replicas","value":7}]"#,
            ),
            422,
            "Invalid",
        ),
        (
            "unknown patch type",
            patch("", "Content-Type: text/plain", "{}"),
            415,
            "UnsupportedMediaType",
        ),
        (
            "strategic patch making the object invalid",
            patch("", SMP, r#"{"spec":{"replicas":-1}}"#),
            422,
            "Invalid",
        ),
    ];
    for (what, (code, body), want_code, want_reason) in cases {
        let s = status(&body);
        assert_eq!(code, want_code, "{what}: {body}");
        assert_eq!(s["kind"], "Status", "{what}: {body}");
        assert_eq!(s["reason"], want_reason, "{what}: {body}");
    }
    assert_eq!(
        curl(&server, "GET", DEPLOY, &[], None).1,
        before,
        "nothing changed"
    );
}

#[test]
fn server_side_apply_over_http() {
    let server = Server::start(APISERVER_ONLY);
    let apply = |manager: &str, force: bool, body: &str| {
        let q = format!("{DEPLOY}?fieldManager={manager}&force={force}");
        curl(&server, "PATCH", &q, &[APPLY], Some(body.as_bytes()))
    };
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n";
    let (code, body) = apply("first", false, yaml);
    assert_eq!(code, 201, "{body}");
    let created = status(&body);
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "first");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(
        !entry["fieldsV1"]["f:spec"]["f:replicas"].is_null(),
        "{entry}"
    );

    let (code, body) = apply("second", false, &yaml.replace("replicas: 1", "replicas: 2"));
    assert_eq!(code, 409, "{body}");
    let s = status(&body);
    assert_eq!(s["reason"], "Conflict");
    let cause = &s["details"]["causes"][0];
    assert_eq!(cause["reason"], "FieldManagerConflict");
    assert_eq!(cause["field"], ".spec.replicas");
    assert!(
        cause["message"].as_str().unwrap().contains("\"first\""),
        "{cause}"
    );

    let (code, body) = apply("second", true, &yaml.replace("replicas: 1", "replicas: 2"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(&body)["spec"]["replicas"], 2);

    // The first manager stops applying the container's image: it stays (the second owns it
    // too, having applied the same value).
    let (code, body) = apply("first", false, &yaml.replace("  replicas: 1\n", ""));
    assert_eq!(code, 200, "{body}");
    let d = status(&body);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );

    // A merge patch takes ownership of what it changes, as an Update entry.
    let (code, body) = curl(
        &server,
        "PATCH",
        &format!("{DEPLOY}?fieldManager=editor"),
        &[MERGE],
        Some(br#"{"spec":{"replicas":5}}"#),
    );
    assert_eq!(code, 200, "{body}");
    let d = status(&body);
    let managed = d["metadata"]["managedFields"].as_array().unwrap();
    let editor = managed.iter().find(|m| m["manager"] == "editor").unwrap();
    assert_eq!(editor["operation"], "Update");
    assert!(!editor["fieldsV1"]["f:spec"]["f:replicas"].is_null());
}

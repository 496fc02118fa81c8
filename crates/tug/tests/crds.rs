//! CustomResourceDefinitions end to end with real kubectl: a CRD with a structural schema is
//! served at once (discovery, short names, printer columns), its objects are defaulted,
//! pruned and validated with upstream's 422 causes, the scale and status subresources
//! work, strategic merge is refused with 415, a cluster-scoped CRD serves cluster objects, and
//! deleting a CRD deletes its objects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{curl, wait_until, Kubectl, Server};
use serde_json::Value;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec, image]
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
              mode:
                type: string
                enum: [fast, slow]
          status:
            type: object
            properties:
              replicas:
                type: integer
"#;

const CRON: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: nightly
  namespace: default
spec:
  cronSpec: "*/5 * * * *"
  image: busybox:1.36
  notInSchema: dropped
"#;

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.tools.example.com
spec:
  group: tools.example.com
  scope: Cluster
  names:
    plural: widgets
    kind: Widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn bad_cron(spec: &str) -> String {
    format!(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: bad\n  namespace: default\nspec:\n{spec}"
    )
}

fn get_json(k: &Kubectl, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&k.ok(&all)).unwrap()
}

#[test]
fn custom_resources_with_kubectl() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, 33);
    k.ok_stdin(&["apply", "-f", "-"], CRD);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=10s",
    ]);
    let crd = get_json(&k, &["get", "crd", "crontabs.stable.example.com"]);
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    for wanted in ["NamesAccepted", "Established"] {
        assert!(
            conditions
                .iter()
                .any(|c| c["type"] == wanted && c["status"] == "True"),
            "{conditions:?}"
        );
    }
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "CronTab");
    assert_eq!(crd["status"]["storedVersions"][0], "v1");

    // Unknown fields are pruned when validation is off, defaults filled in.
    k.ok_stdin(&["apply", "--validate=false", "-f", "-"], CRON);
    let cron = get_json(&k, &["get", "ct", "nightly"]);
    assert_eq!(cron["spec"]["replicas"], 1, "defaulted");
    assert!(cron["spec"].get("notInSchema").is_none(), "pruned: {cron}");

    // Printer columns.
    let table = k.ok(&["get", "crontabs"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(table.contains("*/5 * * * *"), "{table}");

    // Invalid objects: upstream's messages.
    for (spec, wanted) in [
        (
            "  cronSpec: \"* * * * *\"\n  image: x\n  replicas: 20\n",
            "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10",
        ),
        ("  cronSpec: \"* * * * *\"\n", "spec.image: Required value"),
        (
            "  cronSpec: \"* * * * *\"\n  image: x\n  mode: medium\n",
            "spec.mode: Unsupported value: \"medium\"",
        ),
        (
            "  cronSpec: \"* * * * *\"\n  image: x\n  replicas: three\n",
            "spec.replicas in body must be of type integer",
        ),
        (
            "  cronSpec: \"every minute\"\n  image: x\n",
            "spec.cronSpec in body should match",
        ),
    ] {
        let err = k.fails_stdin(&["create", "--validate=false", "-f", "-"], &bad_cron(spec));
        assert!(err.contains(wanted), "wanted {wanted:?} in: {err}");
    }

    // Scale and status subresources.
    k.ok(&["scale", "crontab", "nightly", "--replicas=3"]);
    assert_eq!(
        get_json(&k, &["get", "ct", "nightly"])["spec"]["replicas"],
        3
    );
    k.ok(&[
        "patch",
        "crontab",
        "nightly",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3}}"#,
    ]);
    let cron = get_json(&k, &["get", "ct", "nightly"]);
    assert_eq!(cron["status"]["replicas"], 3);
    // Strategic merge patch is not for custom resources (415); merge patch is.
    let err = k.fails(&["patch", "ct", "nightly", "-p", r#"{"spec":{"image":"y"}}"#]);
    assert!(
        err.contains("UnsupportedMediaType")
            || err.contains("415")
            || err.contains("unknown format"),
        "{err}"
    );
    k.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"busybox:1.37"},"status":{"replicas":9}}"#,
    ]);
    let cron = get_json(&k, &["get", "ct", "nightly"]);
    assert_eq!(cron["spec"]["image"], "busybox:1.37");
    assert_eq!(cron["status"]["replicas"], 3, "status only through /status");

    // A cluster-scoped CRD with an open schema.
    k.ok_stdin(&["apply", "-f", "-"], WIDGETS);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.tools.example.com",
        "--timeout=10s",
    ]);
    k.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: tools.example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nanything:\n  goes: [1, 2]\n",
    );
    let w = get_json(&k, &["get", "widget", "w1"]);
    assert_eq!(w["anything"]["goes"][1], 2);
    // Served through the other version too (conversion None: only apiVersion differs).
    let (code, body) = curl(
        &server,
        "GET",
        "/apis/tools.example.com/v1beta1/widgets/w1",
        &[],
        None,
    );
    assert_eq!(code, 200, "{body}");
    let w: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(w["apiVersion"], "tools.example.com/v1beta1");
    assert_eq!(w["anything"]["goes"][0], 1);
    let (_, body) = curl(
        &server,
        "GET",
        "/apis/tools.example.com/v1beta1/widgets",
        &[],
        None,
    );
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list["items"][0]["apiVersion"], "tools.example.com/v1beta1",
        "{body}"
    );

    // Deleting the CRD deletes its objects and stops serving the resource.
    k.ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=20s",
    ]);
    let path = "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly";
    wait_until(10, "the custom object to go", || {
        curl(&server, "GET", path, &[], None).0 == 404
    });
    k.ok_stdin(&["apply", "-f", "-"], CRD);
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=10s",
    ]);
    let (code, body) = curl(&server, "GET", path, &[], None);
    assert_eq!(
        code, 404,
        "the old object is gone after re-creating: {body}"
    );
}

#[test]
fn crd_validation_errors() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server, 33);
    let wrong_name = CRD.replace(
        "name: crontabs.stable.example.com",
        "name: wrong.stable.example.com",
    );
    let err = k.fails_stdin(&["create", "-f", "-"], &wrong_name);
    assert!(err.contains("metadata.name"), "{err}");
    let two_storage = CRD.replace(
        "  versions:\n  - name: v1\n",
        "  versions:\n  - name: v2\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n  - name: v1\n",
    );
    let err = k.fails_stdin(&["create", "-f", "-"], &two_storage);
    assert!(err.contains("storage"), "{err}");
}

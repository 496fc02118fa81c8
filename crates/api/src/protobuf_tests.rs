//! Tests of the protobuf reader against real client bodies: each `testdata/<name>.pb` is
//! what kubectl 1.33 sent for a `kubectl create …` command, `<name>.json` what kubectl 1.28
//! sent for the same command (see `protobuf/README.md`).

use super::*;

/// `v` without nulls and empty objects, which JSON and protobuf clients write differently
/// (`creationTimestamp: null`, `status: {}`).
fn tidy(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| tidy(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => Some(Value::Array(a.into_iter().filter_map(tidy).collect())),
        v => Some(v),
    }
}

fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/protobuf/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn kubectl_protobuf_bodies_read_as_its_json_ones() {
    for name in [
        "configmap",
        "cronjob",
        "deployment",
        "job",
        "pdb",
        "quota",
        "secret",
        "service",
    ] {
        let got =
            decode(&testdata(&format!("{name}.pb"))).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want: Value = serde_json::from_slice(&testdata(&format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tidy(got), tidy(want), "{name}");
    }
}

#[test]
fn zero_numbers_and_special_types_survive() {
    let deployment = decode(&testdata("deployment.pb")).unwrap();
    assert_eq!(
        deployment["spec"]["replicas"], 0,
        "--replicas=0 is not 'unset'"
    );
    let service = decode(&testdata("service.pb")).unwrap();
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"], "http",
        "IntOrString"
    );
    let pdb = decode(&testdata("pdb.pb")).unwrap();
    assert_eq!(pdb["spec"]["minAvailable"], "50%");
    let quota = decode(&testdata("quota.pb")).unwrap();
    assert_eq!(quota["spec"]["hard"]["cpu"], "1500m", "Quantity");
    let secret = decode(&testdata("secret.pb")).unwrap();
    assert_eq!(
        secret["data"]["empty"], "",
        "an empty bytes value is kept in a map"
    );
}

#[test]
fn hand_made_messages() {
    // Time, MicroTime, Duration and a packed repeated int32, through the generic reader.
    let time = |seconds: u8| vec![0x08, seconds];
    assert_eq!(
        message("apimachinery.pkg.apis.meta.v1.Time", &time(1), 0).unwrap(),
        "1970-01-01T00:00:01Z"
    );
    assert_eq!(
        message("apimachinery.pkg.apis.meta.v1.Time", &[], 0).unwrap(),
        Value::Null
    );
    assert_eq!(
        message(
            "apimachinery.pkg.apis.meta.v1.MicroTime",
            &[0x08, 1, 0x10, 0xe8, 0x07],
            0
        )
        .unwrap(),
        "1970-01-01T00:00:01.000001Z"
    );
    for (ns, want) in [
        (0_i64, "0s"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (2_000_000, "2ms"),
    ] {
        assert_eq!(crate::go::go_duration(ns), want);
    }
    // A ContainerPort with a negative hostPort (sign-extended varint) and a name.
    let port = [
        0x0a, 0x01, b'p', // name
        0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // hostPort = -1
        0x18, 0x50, // containerPort = 80
    ];
    assert_eq!(
        message("api.core.v1.ContainerPort", &port, 0).unwrap(),
        serde_json::json!({"name": "p", "hostPort": -1, "containerPort": 80})
    );
}

#[test]
fn bad_bodies_are_errors_not_panics() {
    let good = testdata("deployment.pb");
    for cut in 0..good.len() {
        // Every prefix either decodes (a field boundary) or is refused.
        let _ = decode(&good[..cut]);
    }
    assert!(matches!(decode(b"{}"), Err(Error::Malformed(_))));
    assert!(matches!(decode(b"k8s\0\x0a\xff"), Err(Error::Malformed(_))));
    // A kind with no layout.
    let mut unknown = b"k8s\0\x0a\x0d\x0a\x02v1\x12\x07Nothing".to_vec();
    unknown.extend([0x12, 0x00]);
    assert!(matches!(decode(&unknown), Err(Error::UnknownKind(_))));
    // Nesting deeper than any type: a JSONSchemaProps whose `not` holds itself.
    let mut deep: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut outer = vec![0xe2, 0x01]; // field 28 (`not`), length-delimited
        let mut len = deep.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                outer.push(b);
                break;
            }
            outer.push(b | 0x80);
        }
        outer.extend(&deep);
        deep = outer;
    }
    let props = "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
    assert!(matches!(message(props, &deep, 0), Err(Error::Malformed(_))));
}

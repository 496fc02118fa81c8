//! Field selectors (`k8s.io/apimachinery/pkg/fields`) and the per-kind field sets.
//!
//! Upstream answers a field selector in two steps. The request's labels go through the
//! kind's field label conversion (`AddFieldLabelConversionFunc` in
//! `pkg/apis/<group>/<version>/conversion.go`; `DefaultMetaV1FieldSelectorConversion` for
//! kinds without one, the CR converter for custom resources), which refuses unknown labels
//! with a 400; objects are then matched against the set the registry's `ToSelectableFields`
//! builds, where a key it never sets reads as "". The table below transcribes the first; the
//! value readers in [`field_value`] the second, against objects as served (v1 JSON).

use serde_json::Value;

use super::SelectorError;

/// A parsed field selector (`fieldSelector=`): `f=v`, `f==v`, `f!=v`, comma-separated;
/// values may escape `\,` `\=` `\\` as upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// Terms in upstream's order (the raw terms sorted).
    terms: Vec<Term>,
}

/// `field=value` (`equal`) or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: String,
    value: String,
    equal: bool,
}

impl FieldSelector {
    /// Parses a field selector as upstream's `fields.ParseSelector` does: terms split at
    /// unescaped commas, each split at its first `!=`, `==` or `=`, the value unescaped.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let (field, op, raw) = split_term(part).ok_or_else(|| {
                SelectorError::Field(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ))
            })?;
            terms.push(Term {
                field: field.to_owned(),
                value: unescape(raw)?,
                equal: op != "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Checks every field against the fields the resource supports; the error's Display is
    /// the text upstream's field label conversion gives for that kind (`field label not
    /// supported: <field>` for kinds with their own field set and for custom resources).
    pub fn check_supported(&self, group: &str, plural: &str) -> Result<(), SelectorError> {
        let rules = rules(group, plural);
        for t in &self.terms {
            if !rules.fields.contains(&t.field.as_str()) {
                let field = t.field.clone();
                return Err(match rules.reject {
                    Reject::NotSupported => SelectorError::FieldLabelNotSupported(field),
                    Reject::Default => SelectorError::UnknownField(field),
                    Reject::Job => SelectorError::FieldLabelNotSupportedForJob(field),
                });
            }
        }
        Ok(())
    }

    /// Whether an object (JSON as served) matches; uses `field_value` (a field the kind
    /// does not support reads as "", as a key missing from upstream's field set does).
    pub fn matches(&self, group: &str, plural: &str, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = field_value(group, plural, obj, &t.field).unwrap_or_default();
            (have == t.value) == t.equal
        })
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// If the selector pins `metadata.name=X`, that name (lets a server look up one key).
    pub fn name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.equal && t.field == "metadata.name")
            .map(|t| t.value.as_str())
    }
}

/// The terms of a selector, split at commas a backslash does not escape.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// A term's field, operator and raw value, split at the first operator.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        ["!=", "==", "="]
            .into_iter()
            .find(|op| term[i..].starts_with(op))
            .map(|op| (&term[..i], op, &term[i + op.len()..]))
    })
}

/// Undoes `\\`, `\,` and `\=`; an unescaped `,` or `=` or another escape is refused.
fn unescape(raw: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' || c == '=' {
            // Go prints the rune as its number.
            return Err(SelectorError::Field(format!(
                "invalid field selector: unescaped character in value: {}",
                c as u32
            )));
        } else {
            out.push(c);
        }
    }
    if escaped {
        return Err(SelectorError::Field(
            "invalid field selector: invalid escape sequence: \\".to_owned(),
        ));
    }
    Ok(out)
}

/// How a kind words a refused field label.
#[derive(Clone, Copy)]
enum Reject {
    /// `field label not supported: <f>`: the per-kind conversions and custom resources.
    NotSupported,
    /// `"<f>" is not a known field selector: only …`: `DefaultMetaV1FieldSelectorConversion`.
    Default,
    /// `field label "<f>" not supported for Job`.
    Job,
}

/// A kind's accepted field labels.
struct Rules {
    group: &'static str,
    plural: &'static str,
    fields: &'static [&'static str],
    reject: Reject,
}

/// What every kind without a conversion of its own accepts.
const META: &[&str] = &["metadata.name", "metadata.namespace"];

const DEFAULT: Rules = Rules {
    group: "",
    plural: "",
    fields: META,
    reject: Reject::Default,
};

const CUSTOM: Rules = Rules {
    group: "",
    plural: "",
    fields: META,
    reject: Reject::NotSupported,
};

const fn own(group: &'static str, plural: &'static str, fields: &'static [&'static str]) -> Rules {
    Rules {
        group,
        plural,
        fields,
        reject: Reject::NotSupported,
    }
}

/// The kinds with a field label conversion of their own, transcribed from upstream:
/// pkg/apis/core/v1/conversion.go, pkg/apis/events/v1/conversion.go,
/// pkg/apis/batch/v1/conversion.go and pkg/apis/certificates/v1/conversion.go. Note that
/// nodes, namespaces and the certificates kinds do not accept `metadata.namespace`, that the
/// apps group registers none (replica sets refuse `status.replicas`), and that pods accept
/// the legacy `spec.host` for `spec.nodeName`.
const KINDS: &[Rules] = &[
    own(
        "",
        "pods",
        &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
            "spec.host",
        ],
    ),
    own("", "nodes", &["metadata.name", "spec.unschedulable"]),
    own(
        "",
        "replicationcontrollers",
        &["metadata.name", "metadata.namespace", "status.replicas"],
    ),
    own(
        "",
        "events",
        &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    ),
    own("", "namespaces", &["metadata.name", "status.phase"]),
    own(
        "",
        "secrets",
        &["metadata.name", "metadata.namespace", "type"],
    ),
    own(
        "",
        "services",
        &[
            "metadata.name",
            "metadata.namespace",
            "spec.clusterIP",
            "spec.type",
        ],
    ),
    own(
        "events.k8s.io",
        "events",
        &[
            "metadata.name",
            "metadata.namespace",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "source",
            "type",
        ],
    ),
    Rules {
        group: "batch",
        plural: "jobs",
        fields: &["metadata.name", "metadata.namespace", "status.successful"],
        reject: Reject::Job,
    },
    own(
        "certificates.k8s.io",
        "certificatesigningrequests",
        &["metadata.name", "spec.signerName"],
    ),
    own(
        "certificates.k8s.io",
        "clustertrustbundles",
        &["metadata.name", "spec.signerName"],
    ),
    own(
        "certificates.k8s.io",
        "podcertificaterequests",
        &[
            "metadata.name",
            "spec.signerName",
            "spec.podName",
            "spec.nodeName",
        ],
    ),
];

/// The rules for a resource: its own, the default for other built-in kinds (those in the
/// catalogue), or a custom resource's.
fn rules(group: &str, plural: &str) -> &'static Rules {
    if let Some(r) = KINDS
        .iter()
        .find(|r| r.group == group && r.plural == plural)
    {
        return r;
    }
    let built_in = crate::catalogue()
        .iter()
        .any(|r| r.group == group && r.plural == plural);
    if built_in {
        &DEFAULT
    } else {
        &CUSTOM
    }
}

/// Fields every kind supports plus the kind's own, as upstream: the labels its field label
/// conversion accepts (`metadata.name` and `metadata.namespace` for kinds without one, even
/// cluster-scoped ones; custom resources included).
pub fn supported_fields(group: &str, plural: &str) -> &'static [&'static str] {
    rules(group, plural).fields
}

/// The value of a selectable field of an object as upstream's per-kind field sets give it
/// (e.g. pods `spec.nodeName` is "" when unset, `status.phase`, booleans as
/// "true"/"false"), or None when the kind does not support that field.
///
/// Aliases read what upstream converts them to: pods' `spec.host` is `spec.nodeName`,
/// events.k8s.io's `regarding.*` and `reportingController` are their own fields. Pods'
/// `status.podIPs` is accepted upstream but never set in the field set, so it is always "".
pub fn field_value(group: &str, plural: &str, obj: &Value, field: &str) -> Option<String> {
    if !supported_fields(group, plural).contains(&field) {
        return None;
    }
    let value = match (group, plural, field) {
        ("", "pods", "spec.host") => text(obj, &["spec", "nodeName"]),
        ("", "pods", "spec.hostNetwork") => flag(obj, &["spec", "hostNetwork"]),
        ("", "pods", "status.podIP") => pod_ip(obj),
        ("", "pods", "status.podIPs") => String::new(),
        ("", "nodes", "spec.unschedulable") => flag(obj, &["spec", "unschedulable"]),
        ("", "replicationcontrollers", "status.replicas") => count(obj, &["status", "replicas"]),
        ("batch", "jobs", "status.successful") => count(obj, &["status", "succeeded"]),
        ("", "events", "source") => either(obj, &["source", "component"], &["reportingComponent"]),
        ("events.k8s.io", "events", "source") => either(
            obj,
            &["deprecatedSource", "component"],
            &["reportingController"],
        ),
        _ => {
            let path: Vec<&str> = field.split('.').collect();
            text(obj, &path)
        }
    };
    Some(value)
}

fn at<'v>(obj: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(obj, |v, k| v.get(k))
}

/// A scalar as upstream's field set writes it; "" when absent.
fn text(obj: &Value, path: &[&str]) -> String {
    match at(obj, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A boolean: "true", or "false" when absent.
fn flag(obj: &Value, path: &[&str]) -> String {
    at(obj, path)
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .to_string()
}

/// A count: its decimal text, "0" when absent.
fn count(obj: &Value, path: &[&str]) -> String {
    match at(obj, path) {
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_owned(),
    }
}

/// The first path's text, or the second's when that is empty.
fn either(obj: &Value, first: &[&str], second: &[&str]) -> String {
    let v = text(obj, first);
    if v.is_empty() {
        text(obj, second)
    } else {
        v
    }
}

/// The primary pod IP: `status.podIPs[0].ip` (what the internal type keeps), else the
/// `status.podIP` it is converted from.
fn pod_ip(obj: &Value) -> String {
    let first = at(obj, &["status", "podIPs"])
        .and_then(|ips| ips.get(0))
        .and_then(|ip| ip.get("ip"))
        .and_then(Value::as_str);
    match first {
        Some(ip) => ip.to_owned(),
        None => text(obj, &["status", "podIP"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap()
    }

    fn err(s: &str) -> String {
        FieldSelector::parse(s).unwrap_err().to_string()
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "default", "containers": []},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                       "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}]}
        })
    }

    #[test]
    fn parses_operators_and_empty() {
        assert!(sel("").is_empty());
        assert!(sel(",,").is_empty());
        let s = sel("b!=2,a==1,c=3");
        assert!(!s.is_empty());
        // Sorted by raw term, as upstream.
        let fields: Vec<_> = s
            .terms
            .iter()
            .map(|t| (t.field.as_str(), t.equal))
            .collect();
        assert_eq!(fields, [("a", true), ("b", false), ("c", true)]);
        assert_eq!(s.terms[0].value, "1");
        // Empty value and empty field parse; the operator is the first one found.
        let s = sel("spec.nodeName=");
        assert_eq!(s.terms[0].value, "");
        assert_eq!(sel("a==b").terms[0].value, "b");
        assert_eq!(sel("a!=").terms[0].value, "");
    }

    #[test]
    fn malformed() {
        assert_eq!(err("a"), "invalid selector: 'a'; can't understand 'a'");
        assert_eq!(
            err("x=1,b"),
            "invalid selector: 'x=1,b'; can't understand 'b'"
        );
        assert_eq!(
            err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            err("a=b\\x"),
            "invalid field selector: invalid escape sequence: \\x"
        );
        assert_eq!(
            err("a=b\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
        // The first operator wins, leaving a bare '=' in the value.
        assert_eq!(
            err("a!==b"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn escaping() {
        let s = sel(r"metadata.name=a\,b\=c\\d,type=x");
        assert_eq!(s.terms[0].value, r"a,b=c\d");
        assert_eq!(s.name(), Some(r"a,b=c\d"));
        assert_eq!(s.terms[1].field, "type");
        // An escaped comma does not split terms.
        assert_eq!(sel(r"a=1\,2").terms.len(), 1);
    }

    #[test]
    fn name_pins_only_equality() {
        assert_eq!(sel("metadata.name==web").name(), Some("web"));
        assert_eq!(sel("metadata.name!=web").name(), None);
        assert_eq!(sel("metadata.namespace=x").name(), None);
        assert_eq!(sel("").name(), None);
    }

    #[test]
    fn unsupported_field_text() {
        let e = sel("spec.foo=x").check_supported("", "pods").unwrap_err();
        assert_eq!(e.to_string(), "field label not supported: spec.foo");
        assert!(
            sel("spec.nodeName=a,status.phase!=Failed,metadata.namespace=d,spec.host=n")
                .check_supported("", "pods")
                .is_ok()
        );
        // Kinds without a conversion of their own use the default wording.
        let e = sel("status.replicas=0")
            .check_supported("apps", "replicasets")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"status.replicas\" is not a known field selector: only \"metadata.name\", \
             \"metadata.namespace\""
        );
        assert!(sel("metadata.namespace=")
            .check_supported("", "configmaps")
            .is_ok());
        assert!(sel("metadata.namespace=")
            .check_supported("", "persistentvolumes")
            .is_ok());
        // Nodes and namespaces refuse metadata.namespace.
        let e = sel("metadata.namespace=")
            .check_supported("", "nodes")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "field label not supported: metadata.namespace"
        );
        assert!(sel("spec.unschedulable=true")
            .check_supported("", "nodes")
            .is_ok());
        let e = sel("status.successful=1,x=1")
            .check_supported("batch", "jobs")
            .unwrap_err();
        assert_eq!(e.to_string(), "field label \"x\" not supported for Job");
        let e = sel("spec.x=1")
            .check_supported("example.com", "widgets")
            .unwrap_err();
        assert_eq!(e.to_string(), "field label not supported: spec.x");
        // The first refused term in sorted order is reported.
        let e = sel("z=1,b=1").check_supported("", "secrets").unwrap_err();
        assert_eq!(e, SelectorError::FieldLabelNotSupported("b".into()));
    }

    #[test]
    fn pod_values() {
        let p = pod();
        let v = |f: &str| field_value("", "pods", &p, f);
        assert_eq!(v("spec.nodeName").as_deref(), Some(""));
        assert_eq!(v("spec.host").as_deref(), Some(""));
        assert_eq!(v("spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(v("status.phase").as_deref(), Some("Running"));
        assert_eq!(v("status.podIP").as_deref(), Some("10.0.0.7"));
        assert_eq!(v("status.podIPs").as_deref(), Some(""));
        assert_eq!(v("metadata.namespace").as_deref(), Some("default"));
        assert_eq!(v("spec.restartPolicy").as_deref(), Some("Always"));
        assert_eq!(v("spec.nope"), None);
        assert!(sel("spec.nodeName=").matches("", "pods", &p));
        assert!(!sel("spec.nodeName=node-1").matches("", "pods", &p));
        let mut on_node = pod();
        on_node["spec"]["nodeName"] = json!("node-1");
        on_node["spec"]["hostNetwork"] = json!(true);
        assert!(sel("spec.nodeName=node-1,spec.hostNetwork=true").matches("", "pods", &on_node));
        assert!(sel("spec.host=node-1").matches("", "pods", &on_node));
        let active = sel("status.phase!=Failed,status.phase!=Succeeded");
        assert!(active.matches("", "pods", &p));
        let mut done = pod();
        done["status"]["phase"] = json!("Succeeded");
        assert!(!active.matches("", "pods", &done));
        done["status"]["phase"] = json!("Failed");
        assert!(!active.matches("", "pods", &done));
        // podIP falls back to status.podIP when podIPs is absent.
        let mut old = pod();
        old["status"].as_object_mut().unwrap().remove("podIPs");
        assert!(sel("status.podIP=10.0.0.7").matches("", "pods", &old));
        assert!(sel("metadata.name=web-0,metadata.namespace=default").matches("", "pods", &p));
    }

    #[test]
    fn other_kinds() {
        let node = json!({"metadata": {"name": "n1"}, "spec": {}});
        assert_eq!(
            field_value("", "nodes", &node, "spec.unschedulable").as_deref(),
            Some("false")
        );
        assert_eq!(field_value("", "nodes", &node, "metadata.namespace"), None);
        let cm = json!({"metadata": {"name": "c", "namespace": "ns"}});
        assert_eq!(
            field_value("", "configmaps", &cm, "metadata.namespace").as_deref(),
            Some("ns")
        );
        let pv = json!({"metadata": {"name": "pv1"}});
        assert_eq!(
            field_value("", "persistentvolumes", &pv, "metadata.namespace").as_deref(),
            Some("")
        );
        assert!(sel("metadata.namespace=").matches("", "persistentvolumes", &pv));
        assert_eq!(field_value("", "persistentvolumeclaims", &pv, "name"), None);
        let job = json!({"metadata": {"name": "j"}, "status": {"succeeded": 2}});
        assert_eq!(
            field_value("batch", "jobs", &job, "status.successful").as_deref(),
            Some("2")
        );
        let rc = json!({"metadata": {"name": "r"}, "status": {}});
        assert!(sel("status.replicas=0").matches("", "replicationcontrollers", &rc));
        let secret = json!({"metadata": {"name": "s"}, "type": "Opaque"});
        assert!(sel("type=Opaque").matches("", "secrets", &secret));
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1"}});
        assert!(sel("spec.type=ClusterIP,spec.clusterIP=10.96.0.1").matches("", "services", &svc));
        let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
        assert!(sel("status.phase=Active").matches("", "namespaces", &ns));
        let csr = json!({"metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kubelet-serving"}});
        assert!(
            sel("spec.signerName=kubernetes.io/kubelet-serving").matches(
                "certificates.k8s.io",
                "certificatesigningrequests",
                &csr
            )
        );
    }

    #[test]
    fn events() {
        let core = json!({
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal", "reportingComponent": "default-scheduler"
        });
        let s = sel("involvedObject.kind=Pod,involvedObject.name=web-0,reason=Scheduled");
        assert!(s.check_supported("", "events").is_ok());
        assert!(s.matches("", "events", &core));
        // source falls back to the reporting component.
        assert!(sel("source=default-scheduler").matches("", "events", &core));
        assert!(sel("involvedObject.namespace=").matches("", "events", &core));
        let new = json!({
            "metadata": {"name": "e", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web-0"},
            "reason": "Scheduled", "type": "Normal", "reportingController": "sched"
        });
        let s =
            sel("regarding.kind=Pod,regarding.name=web-0,reportingController=sched,source=sched");
        assert!(s.check_supported("events.k8s.io", "events").is_ok());
        assert!(s.matches("events.k8s.io", "events", &new));
        let e = sel("involvedObject.kind=Pod")
            .check_supported("events.k8s.io", "events")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "field label not supported: involvedObject.kind"
        );
    }

    #[test]
    fn supported_lists() {
        assert_eq!(supported_fields("apps", "deployments"), META);
        assert!(supported_fields("", "pods").contains(&"status.nominatedNodeName"));
        assert_eq!(
            supported_fields("", "namespaces"),
            ["metadata.name", "status.phase"]
        );
        assert_eq!(supported_fields("example.com", "widgets"), META);
    }
}

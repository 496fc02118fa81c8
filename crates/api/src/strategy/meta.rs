//! Shared building blocks of the strategies: field paths, upstream's syntax rules and their
//! messages (qualified names, label values, config keys, ports, environment variable names,
//! IPs, percentages), label and annotation maps, label selectors, resource quantities, and the
//! small JSON helpers the defaulting code uses.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use serde_json::{Map, Value};

use super::{forbidden, invalid, not_supported, required, too_long, Errs};
use crate::validation::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain};

// ---------------------------------------------------------------------------------------------
// Paths

/// `path.name`, or `name` at the root.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `path[key]`.
pub(crate) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

// ---------------------------------------------------------------------------------------------
// Syntax rules (k8s.io/apimachinery/pkg/util/validation)

/// Upstream's `RegexError`.
pub(crate) fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_owned();
    if examples.is_empty() {
        out.push_str(" (regex used for validation is '");
    } else {
        out.push_str(" (e.g. ");
        for (i, e) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push('\'');
            out.push_str(e);
            out.push_str("', ");
        }
        out.push_str("regex used for validation is '");
    }
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// Upstream's `InclusiveRangeError`.
pub(crate) fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

const QNAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QNAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Matches `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn qname_ok(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Upstream's `IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters.
pub(crate) fn is_qualified_name(value: &str) -> Vec<String> {
    qualified_name_errors(value, "a qualified name")
}

/// [`is_qualified_name`], with `what` naming the value where it has more than one `/` (label
/// selectors call it "a valid label key").
pub(crate) fn qualified_name_errors(value: &str, what: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                for msg in is_dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {msg}"));
                }
            }
            *name
        }
        _ => {
            let syntax = regex_error(QNAME_MSG, QNAME_FMT, &["MyName", "my.name", "123-abc"]);
            return vec![format!(
                "{what} {syntax} with an optional DNS subdomain prefix and '/' \
                 (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !qname_ok(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QNAME_MSG, QNAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// Upstream's `IsValidLabelValue`: empty, or at most 63 characters of the qualified-name set.
pub(crate) fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !value.is_empty() && !qname_ok(value) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Upstream's `hasChDirPrefix`.
fn chdir_prefix(value: &str) -> Option<String> {
    match value {
        "." => Some("must not be '.'".to_owned()),
        ".." => Some("must not be '..'".to_owned()),
        v if v.starts_with("..") => Some("must not start with '..'".to_owned()),
        _ => None,
    }
}

/// Upstream's `IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
pub(crate) fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'));
    if !ok {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(chdir_prefix(value));
    errs
}

/// The name as its rule checks it: a generateName prefix may end with a dash, so upstream's
/// `maskTrailingDash` applies to prefixes; full names are checked as they are.
fn mask_trailing_dash(name: &str, prefix: bool) -> Cow<'_, str> {
    if prefix && name.len() > 1 && name.ends_with('-') {
        Cow::Owned(format!("{}a", &name[..name.len() - 2]))
    } else {
        Cow::Borrowed(name)
    }
}

/// `NameIsDNSSubdomain`: the name rule of most kinds.
pub(crate) fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    is_dns1123_subdomain(&mask_trailing_dash(name, prefix))
}

/// `NameIsDNSLabel`: namespaces and StatefulSets.
pub(crate) fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    is_dns1123_label(&mask_trailing_dash(name, prefix))
}

/// `NameIsDNS1035Label`: Services.
pub(crate) fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    is_dns1035_label(&mask_trailing_dash(name, prefix))
}

/// `ValidatePathSegmentName`: RBAC roles and bindings — anything but `.`, `..`, `/` and `%`.
pub(crate) fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if !prefix {
        for bad in [".", ".."] {
            if name == bad {
                return vec![format!("may not be '{bad}'")];
            }
        }
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// `IsValidPortNum`.
pub(crate) fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// The protocols a port may name (upstream's `supportedPortProtocols`, sorted).
pub(crate) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// A port's protocol at `field`: required, and one of [`PROTOCOLS`].
pub(crate) fn validate_protocol(protocol: Option<&str>, field: String, errs: &mut Errs) {
    match protocol.unwrap_or("") {
        "" => errs.push(required(field, "")),
        p if PROTOCOLS.contains(&p) => {}
        other => errs.push(not_supported(field, other, PROTOCOLS)),
    }
}

/// `IsValidPortName`: an IANA service name.
pub(crate) fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_owned(),
        );
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_owned());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_owned());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_owned());
    }
    errs
}

/// `IsRelaxedEnvVarName` (the rule since RelaxedEnvironmentVariableValidation went GA).
pub(crate) fn is_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.is_empty() {
        errs.push("environment variable name must be non-empty".to_owned());
    }
    if value.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push("a valid environment variable name must consist only of printable ASCII characters other than '='".to_owned());
    }
    errs
}

/// `IsHTTPHeaderName`.
pub(crate) fn is_http_header_name(value: &str) -> Vec<String> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-')
    {
        Vec::new()
    } else {
        vec![regex_error(
            "a valid HTTP header must consist of alphanumeric characters or '-'",
            "[-A-Za-z0-9]+",
            &["X-Header-Name"],
        )]
    }
}

/// `IsValidPercent`: digits then `%`.
pub(crate) fn is_valid_percent(value: &str) -> Vec<String> {
    let ok = value
        .strip_suffix('%')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
    if ok {
        Vec::new()
    } else {
        vec![regex_error(
            "a valid percent string must be a numeric string followed by an ending '%'",
            "[0-9]+%",
            &["1%", "93%"],
        )]
    }
}

/// `IsValidIP` as a field error: the message upstream gives for a malformed address.
pub(crate) fn validate_ip(path: &str, value: &str, errs: &mut Errs) {
    if value.parse::<std::net::IpAddr>().is_err() {
        errs.push(invalid(
            path,
            value,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
}

/// What `validateKubeFinalizerName` says of an unqualified, non-standard finalizer.
pub(crate) const UNQUALIFIED_FINALIZER: &str =
    "name is neither a standard finalizer name nor is it fully qualified";

/// `validateKubeFinalizerName`: an unqualified finalizer must be a standard one.
pub(crate) fn validate_kube_finalizer_name(value: &str, path: &str, errs: &mut Errs) {
    if !value.contains('/') && !matches!(value, "kubernetes" | "orphan" | "foregroundDeletion") {
        errs.push(invalid(path, value, UNQUALIFIED_FINALIZER));
    }
}

/// Go's `strings.Split(path, "/")` contains `..`.
pub(crate) fn has_backsteps(path: &str) -> bool {
    path.replace('\\', "/").split('/').any(|p| p == "..")
}

// ---------------------------------------------------------------------------------------------
// Labels, annotations, selectors

/// `ValidateLabels`: keys are qualified names, values label values.
pub(crate) fn validate_labels(labels: &BTreeMap<String, String>, path: &str, errs: &mut Errs) {
    for (k, v) in labels {
        for msg in is_qualified_name(k) {
            errs.push(invalid(path, k.as_str(), &msg));
        }
        for msg in is_valid_label_value(v) {
            errs.push(invalid(path, v.as_str(), &msg));
        }
    }
}

/// `ValidateLabelName`.
pub(crate) fn validate_label_name(name: &str, path: &str, errs: &mut Errs) {
    for msg in is_qualified_name(name) {
        errs.push(invalid(path, name, &msg));
    }
}

/// `ValidateOwnerReferences`: each reference complete, events never owners, one controller.
pub(crate) fn validate_owner_references(refs: &[OwnerReference], path: &str, errs: &mut Errs) {
    let mut first_controller: Option<String> = None;
    for r in refs {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(invalid(
                child(path, "apiVersion"),
                r.api_version.as_str(),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            errs.push(invalid(child(path, "kind"), "", "must not be empty"));
        }
        if r.name.is_empty() {
            errs.push(invalid(child(path, "name"), "", "must not be empty"));
        }
        if r.uid.is_empty() {
            errs.push(invalid(child(path, "uid"), "", "must not be empty"));
        }
        if r.api_version == "v1" && r.kind == "Event" {
            errs.push(super::invalid_json(
                path,
                r,
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.controller == Some(true) {
            let this = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(super::invalid_json(
                    path,
                    &refs,
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => first_controller = Some(this),
            }
        }
    }
}

/// Most a set of annotations may hold, keys and values together.
const ANNOTATIONS_MAX: usize = 256 * 1024;

/// `ValidateAnnotations`: keys are qualified names (any case); 256 KiB in all.
pub(crate) fn validate_annotations(
    annotations: &BTreeMap<String, String>,
    path: &str,
    errs: &mut Errs,
) {
    for k in annotations.keys() {
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(invalid(path, k.as_str(), &msg));
        }
    }
    let size: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > ANNOTATIONS_MAX {
        errs.push(too_long(path, ANNOTATIONS_MAX));
    }
}

/// `ValidateLabelSelector` (with invalid label values rejected).
pub(crate) fn validate_label_selector(selector: &LabelSelector, path: &str, errs: &mut Errs) {
    if let Some(labels) = &selector.match_labels {
        validate_labels(labels, &child(path, "matchLabels"), errs);
    }
    for (i, req) in selector
        .match_expressions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let p = index(&child(path, "matchExpressions"), i);
        let values = req.values.as_deref().unwrap_or(&[]);
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(invalid(
                child(&p, "operator"),
                op,
                "not a valid selector operator",
            )),
        }
        validate_label_name(&req.key, &child(&p, "key"), errs);
        for (j, v) in values.iter().enumerate() {
            for msg in is_valid_label_value(v) {
                errs.push(invalid(index(&child(&p, "values"), j), v.as_str(), &msg));
            }
        }
    }
}

/// Whether a selector has no terms (`{}`): after the server's typed round trip, an absent
/// required selector reads the same way, so strategies treat it as absent.
pub(crate) fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// `LabelSelectorAsSelector(selector).Matches(labels)` through the shared selector code:
/// `Err` when the selector cannot be converted (upstream then skips or reports the match), an
/// empty selector matches everything.
pub(crate) fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, ()> {
    let parsed = crate::selectors::LabelSelector::from_k8s(selector).map_err(|_| ())?;
    Ok(parsed.matches(|k| labels.get(k).map(String::as_str)))
}

// ---------------------------------------------------------------------------------------------
// JSON helpers for defaulting

pub(crate) use super::quantity::{canonical_quantity, parse_quantity, quantity_string, Qty};

/// A JSON object.
pub(crate) type Obj = Map<String, Value>;

/// The object under `k`, if there is one.
pub(crate) fn get_obj_mut<'a>(m: &'a mut Obj, k: &str) -> Option<&'a mut Obj> {
    m.get_mut(k).and_then(Value::as_object_mut)
}

/// The object under `k`, created empty when absent or null.
pub(crate) fn entry_obj<'a>(m: &'a mut Obj, k: &str) -> Option<&'a mut Obj> {
    let v = m.entry(k).or_insert(Value::Null);
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
}

/// The list under `k`, if there is one.
pub(crate) fn get_arr_mut<'a>(m: &'a mut Obj, k: &str) -> Option<&'a mut Vec<Value>> {
    m.get_mut(k).and_then(Value::as_array_mut)
}

/// Every object in the list under `k`.
pub(crate) fn each_obj<'a>(m: &'a mut Obj, k: &str) -> impl Iterator<Item = &'a mut Obj> {
    get_arr_mut(m, k)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Whether `k` is absent or null (a Go nil pointer).
pub(crate) fn is_unset(m: &Obj, k: &str) -> bool {
    matches!(m.get(k), None | Some(Value::Null))
}

/// Sets `k` when absent or null.
pub(crate) fn set_if_unset(m: &mut Obj, k: &str, v: impl Into<Value>) {
    if is_unset(m, k) {
        m.insert(k.to_owned(), v.into());
    }
}

/// Sets a string `k` when absent, null or empty (a Go empty string).
pub(crate) fn set_if_empty(m: &mut Obj, k: &str, v: &str) {
    if is_unset(m, k) || m.get(k).and_then(Value::as_str) == Some("") {
        m.insert(k.to_owned(), Value::from(v));
    }
}

/// Sets a number `k` when absent, null or zero (a Go zero int).
pub(crate) fn set_if_zero(m: &mut Obj, k: &str, v: i64) {
    if is_unset(m, k) || m.get(k).and_then(Value::as_i64) == Some(0) {
        m.insert(k.to_owned(), Value::from(v));
    }
}

/// The value at a `/`-separated path below an object (`Value::pointer` for a map).
pub(crate) fn at<'a>(m: &'a Obj, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('/');
    let first = m.get(parts.next()?)?;
    parts.try_fold(first, |v, p| match v {
        Value::Array(a) => a.get(p.parse::<usize>().ok()?),
        _ => v.get(p),
    })
}

/// The string under `k`, or `""`.
pub(crate) fn str_of<'a>(m: &'a Obj, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Rewrites every quantity of the resource list under `k` in canonical form.
pub(crate) fn canonicalize_resources(m: &mut Obj, k: &str) {
    if let Some(list) = get_obj_mut(m, k) {
        for v in list.values_mut() {
            if let Some(c) = v.as_str().and_then(canonical_quantity) {
                *v = Value::String(c);
            }
        }
    }
}

/// A JSON value with nulls and empty lists dropped, as upstream's semantic equality treats
/// nil and empty alike.
pub(crate) fn normalized(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null() && !matches!(v, Value::Array(a) if a.is_empty()))
                .map(|(k, v)| (k, normalized(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalized).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn qualified_names() {
        assert!(is_qualified_name("app.kubernetes.io/name").is_empty());
        assert!(is_qualified_name("MyName").is_empty());
        assert_eq!(is_qualified_name("/x"), ["prefix part must be non-empty"]);
        assert_eq!(is_qualified_name("").len(), 2);
        assert_eq!(
            is_qualified_name("-x")[0],
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert!(is_qualified_name("Foo.com/x")[0]
            .starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert!(is_valid_label_value("").is_empty());
        assert_eq!(
            is_valid_label_value(&"a".repeat(64))[0],
            "must be no more than 63 characters"
        );
    }

    #[test]
    fn other_rules() {
        assert!(is_config_map_key("KEY_name.1").is_empty());
        assert_eq!(is_config_map_key(".."), ["must not be '..'"]);
        assert_eq!(is_config_map_key("a b").len(), 1);
        assert!(is_valid_port_name("http").is_empty());
        assert_eq!(
            is_valid_port_name("80"),
            ["must contain at least one letter (a-z)"]
        );
        assert!(is_valid_percent("25%").is_empty());
        assert_eq!(is_valid_percent("25").len(), 1);
        assert_eq!(path_segment_name("..", false), ["may not be '..'"]);
        assert_eq!(name_is_dns_subdomain("web-", true), Vec::<String>::new());
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> =
            [("app".to_owned(), "web".to_owned())].into_iter().collect();
        let by_labels = |k: &str, v: &str| LabelSelector {
            match_labels: Some([(k.to_owned(), v.to_owned())].into_iter().collect()),
            ..Default::default()
        };
        assert_eq!(
            selector_matches(&by_labels("app", "web"), &labels),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&by_labels("app", "db"), &labels),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&LabelSelector::default(), &labels),
            Ok(true)
        );
        let expr = |op: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".to_owned(),
                operator: op.to_owned(),
                values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
            }]),
            ..Default::default()
        };
        assert_eq!(
            selector_matches(&expr("In", &["web", "x"]), &labels),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&expr("NotIn", &["web"]), &labels),
            Ok(false)
        );
        assert_eq!(selector_matches(&expr("Exists", &[]), &labels), Ok(true));
        assert_eq!(selector_matches(&expr("In", &[]), &labels), Err(()));
        assert_eq!(selector_matches(&expr("Bogus", &[]), &labels), Err(()));
    }
}

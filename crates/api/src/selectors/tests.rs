//! Tests of the label selector parser and `LabelSelector::from_k8s`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::json;

use super::*;

fn sel(s: &str) -> LabelSelector {
    LabelSelector::parse(s).unwrap()
}

fn err(s: &str) -> String {
    LabelSelector::parse(s).unwrap_err().to_string()
}

/// Whether `s` matches the labels given as `k=v` pairs.
fn m(s: &str, labels: &[(&str, &str)]) -> bool {
    let map: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    sel(s).matches(|k| map.get(k).map(String::as_str))
}

const KEY_REGEX: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must \
     start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
     '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_REGEX: &str = "a valid label must be an empty string or consist of alphanumeric \
     characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. \
     'MyValue',  or 'my_value',  or '12345', regex used for validation is \
     '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

#[test]
fn equality_operators() {
    for s in ["a=b", "a==b", " a = b ", "a\t==\nb"] {
        assert!(m(s, &[("a", "b")]), "{s}");
        assert!(!m(s, &[("a", "c")]), "{s}");
        assert!(!m(s, &[]), "{s}");
    }
    assert!(m("a!=b", &[("a", "c")]));
    assert!(m("a!=b", &[]));
    assert!(!m("a!=b", &[("a", "b")]));
    // A missing value is the empty string.
    assert!(m("a=", &[("a", "")]));
    assert!(!m("a=", &[("a", "x")]));
    assert!(m("a!=,b", &[("a", "x"), ("b", "")]));
}

#[test]
fn set_operators() {
    assert!(m("a in (x,y)", &[("a", "y")]));
    assert!(!m("a in (x, y)", &[("a", "z")]));
    assert!(!m("a in (x,y)", &[]));
    assert!(m("a notin (x)", &[]));
    assert!(m("a notin (x)", &[("a", "y")]));
    assert!(!m("a notin ( x )", &[("a", "x")]));
    assert!(m("a", &[("a", "")]));
    assert!(!m("a", &[("b", "")]));
    assert!(m("!a", &[("b", "")]));
    assert!(!m(" ! a ", &[("a", "x")]));
    // Keywords are values inside parentheses, and keys at the start.
    assert!(m("x in (in,notin)", &[("x", "notin")]));
    assert!(m("in=1", &[("in", "1")]));
    // Upstream's own example: empty members are the empty string.
    let s = sel("x in (foo,,baz),y,z notin ()");
    assert!(s.matches(|k| match k {
        "x" => Some(""),
        "y" => Some("1"),
        _ => None,
    }));
    assert_eq!(s.to_string(), "x in (,baz,foo),y,z notin ()");
}

#[test]
fn numeric_operators() {
    assert!(m("a>3", &[("a", "4")]));
    assert!(!m("a>3", &[("a", "3")]));
    assert!(!m("a>3", &[("a", "x")]));
    assert!(!m("a>3", &[]));
    assert!(m("a<3", &[("a", "2")]));
    assert!(m("a < 3", &[("a", "-10")]));
    assert!(!m("a<3", &[("a", "3")]));
}

#[test]
fn combined_and_whitespace() {
    let s = "  tier in (fe, be) , env!=prod,!legacy,  app = web  ";
    assert!(m(s, &[("tier", "fe"), ("app", "web")]));
    assert!(!m(s, &[("tier", "fe"), ("app", "web"), ("legacy", "1")]));
    assert!(!m(s, &[("tier", "fe"), ("app", "web"), ("env", "prod")]));
    assert_eq!(
        sel(s).to_string(),
        "app=web,env!=prod,!legacy,tier in (be,fe)"
    );
}

#[test]
fn empty_selects_everything() {
    for s in ["", "   ", "\t\n"] {
        let e = sel(s);
        assert!(e.is_empty());
        assert!(e.matches(|_| None));
        assert_eq!(e, LabelSelector::default());
        assert_eq!(e.to_string(), "");
    }
    assert!(!sel("a").is_empty());
}

#[test]
fn malformed() {
    let cases = [
        (
            "a in (",
            "unable to parse requirement: found '', expected: ',', ')' or identifier",
        ),
        (
            "=b",
            "found '=', expected: !, identifier, or 'end of string'",
        ),
        (
            "a!b",
            "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("a,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        (
            ",",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        (
            "!",
            "unable to parse requirement: found '', expected: identifier",
        ),
        (
            "a in (x",
            "unable to parse requirement: found '', expected: ',' or ')'",
        ),
        (
            "a in (x y)",
            "unable to parse requirement: found 'y', expected: ',' or ')'",
        ),
        (
            "a in (x,",
            "unable to parse requirement: found '', expected: ',', or identifier",
        ),
        (
            "a in x",
            "unable to parse requirement: found 'x' expected: '('",
        ),
        (
            "a=(b)",
            "unable to parse requirement: found '(', expected: identifier",
        ),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a=b)", "found ')', expected: ',' or 'end of string'"),
    ];
    for (input, want) in cases {
        assert_eq!(err(input), want, "{input:?}");
    }
}

#[test]
fn bad_keys() {
    assert_eq!(
        err("-a=b"),
        format!("unable to parse requirement: <nil>: Invalid value: \"-a\": name part {KEY_REGEX}")
    );
    assert_eq!(
        err("a/b/c"),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key \
             {KEY_REGEX} with an optional DNS subdomain prefix and '/' (e.g. \
             'example.com/MyName')"
        )
    );
    assert_eq!(
        err("/a"),
        "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty"
    );
    assert_eq!(
        err("a/"),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be \
             non-empty; name part {KEY_REGEX}"
        )
    );
    assert!(err("Example.com/a").starts_with(
        "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a \
         lowercase RFC 1123 subdomain"
    ));
    let long = "k".repeat(64);
    assert_eq!(
        err(&long),
        format!(
            "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no \
             more than 63 characters"
        )
    );
    // Valid keys: prefixes, dots, underscores, upper case, 63 characters.
    for ok in [
        "example.com/My_Name-1",
        "a.b",
        "k8s.io/x",
        "k".repeat(63).as_str(),
    ] {
        sel(ok);
    }
}

#[test]
fn bad_values() {
    assert_eq!(
        err("a=-b"),
        format!("unable to parse requirement: values[0][a]: Invalid value: \"-b\": {VALUE_REGEX}")
    );
    let long = "v".repeat(64);
    assert_eq!(
        err(&format!("a={long}")),
        format!(
            "unable to parse requirement: values[0][a]: Invalid value: \"{long}\": must be no \
             more than 63 characters"
        )
    );
    // Several errors are aggregated in brackets, values in sorted order.
    assert_eq!(
        err("a in (-y,-x)"),
        format!(
            "unable to parse requirement: [values[0][a]: Invalid value: \"-x\": {VALUE_REGEX}, \
             values[1][a]: Invalid value: \"-y\": {VALUE_REGEX}]"
        )
    );
    assert_eq!(
        err("a>x"),
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' \
         operators, the value must be an integer"
    );
    assert_eq!(
        err("a<"),
        "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' \
         operators, the value must be an integer"
    );
    // "-1" is an integer but not a label value.
    assert_eq!(
        err("a>-1"),
        format!("unable to parse requirement: values[0][a]: Invalid value: \"-1\": {VALUE_REGEX}")
    );
    let max = format!("a={}", "v".repeat(63));
    assert_eq!(sel(&max).to_string(), max);
}

fn req(key: &str, op: &str, values: Option<&[&str]>) -> metav1::LabelSelectorRequirement {
    metav1::LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
    }
}

#[test]
fn from_k8s() {
    let k8s = metav1::LabelSelector {
        match_labels: Some([("app".to_string(), "web".to_string())].into()),
        match_expressions: Some(vec![
            req("tier", "In", Some(&["fe", "be"])),
            req("env", "NotIn", Some(&["prod"])),
            req("canary", "Exists", None),
            req("legacy", "DoesNotExist", Some(&[])),
        ]),
    };
    let s = LabelSelector::from_k8s(&k8s).unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,canary,env notin (prod),!legacy,tier in (be,fe)"
    );
    let labels = json!({"metadata": {"labels": {"app": "web", "tier": "be", "canary": "y"}}});
    assert!(s.matches_object(&labels));
    let labels = json!({"metadata": {"labels": {"app": "web", "tier": "be"}}});
    assert!(!s.matches_object(&labels));

    let empty = LabelSelector::from_k8s(&metav1::LabelSelector::default()).unwrap();
    assert!(empty.is_empty());
    assert!(empty.matches_object(&json!({})));

    let bad = |e: metav1::LabelSelectorRequirement| {
        let sel = metav1::LabelSelector {
            match_expressions: Some(vec![e]),
            ..Default::default()
        };
        LabelSelector::from_k8s(&sel).unwrap_err().to_string()
    };
    assert_eq!(
        bad(req("a", "Gt", Some(&["1"]))),
        "\"Gt\" is not a valid label selector operator"
    );
    assert_eq!(
        bad(req("a", "In", None)),
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't \
         be empty"
    );
    assert_eq!(
        bad(req("a", "Exists", Some(&["x", "y"]))),
        "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists \
         and does not exist"
    );
    assert_eq!(
        bad(req("a b", "In", Some(&["-x"]))),
        format!(
            "[key: Invalid value: \"a b\": name part {KEY_REGEX}, values[0][a b]: Invalid \
             value: \"-x\": {VALUE_REGEX}]"
        )
    );
    let bad_label = metav1::LabelSelector {
        match_labels: Some([("app".to_string(), "-web".to_string())].into()),
        ..Default::default()
    };
    assert_eq!(
        LabelSelector::from_k8s(&bad_label).unwrap_err(),
        SelectorError::Label(format!(
            "values[0][app]: Invalid value: \"-web\": {VALUE_REGEX}"
        ))
    );
}

#[test]
fn matches_object_labels() {
    let s = sel("app=web,!gone");
    assert!(s.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
    assert!(!s.matches_object(&json!({"metadata": {"labels": {"app": "db"}}})));
    // No labels map: only negative requirements can match.
    assert!(!s.matches_object(&json!({"metadata": {"name": "x"}})));
    assert!(sel("!gone,a notin (b)").matches_object(&json!({"metadata": {}})));
}

#[test]
fn go_quoting() {
    assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    assert_eq!(
        SelectorError::UnknownField("x\"y".into()).to_string(),
        "\"x\\\"y\" is not a known field selector: only \"metadata.name\", \
         \"metadata.namespace\""
    );
}

//! Helpers the printers share: reading fields of an object as served (JSON), ages, and
//! upstream's label, selector and container formatting.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::human_duration;

/// Nanoseconds in a second.
const NANOS: i128 = 1_000_000_000;

/// Unix seconds of Go's zero time (0001-01-01T00:00:00Z), which upstream treats as "unset".
const GO_ZERO_TIME_SECS: i128 = -62_135_596_800;

/// The value at `path` below `v`, if every step is an object holding that key.
pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |cur, key| cur.get(*key))
        .filter(|x| !x.is_null())
}

/// Whether `path` holds a value (not absent, not null).
pub(super) fn has(v: &Value, path: &[&str]) -> bool {
    at(v, path).is_some()
}

/// The string at `path`, if there is one.
pub(super) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// The string at `path`, or "" (Go's zero value).
pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str(v, path).unwrap_or("")
}

/// The string at `path` when it is present and not empty.
pub(super) fn non_empty<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    opt_str(v, path).filter(|s| !s.is_empty())
}

/// The integer at `path`, if there is one.
pub(super) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

/// The integer at `path`, or 0.
pub(super) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

/// The boolean at `path`, if there is one.
pub(super) fn opt_bool(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

/// The boolean at `path`, or false.
pub(super) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

/// The array at `path`, or an empty one.
pub(super) fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// How many keys the map at `path` has.
pub(super) fn map_len(v: &Value, path: &[&str]) -> usize {
    at(v, path)
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

/// `metadata.name` as a cell.
pub(super) fn name(v: &Value) -> Value {
    Value::from(str_at(v, &["metadata", "name"]))
}

/// Whether `metadata.deletionTimestamp` is set.
pub(super) fn deleting(v: &Value) -> bool {
    has(v, &["metadata", "deletionTimestamp"])
}

/// The status ("True", "False", "Unknown") of the first condition of that type in
/// `status.conditions`, if any.
pub(super) fn condition_status<'a>(v: &'a Value, kind: &str) -> Option<&'a str> {
    list_at(v, &["status", "conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == kind)
        .map(|c| str_at(c, &["status"]))
}

/// A timestamp (RFC 3339, any precision) as Unix nanoseconds; None when absent, unparsable
/// or Go's zero time.
pub(super) fn time_nanos(ts: &str) -> Option<i128> {
    let nanos = ts.parse::<Timestamp>().ok()?.as_nanosecond();
    (nanos != GO_ZERO_TIME_SECS * NANOS).then_some(nanos)
}

/// Whole seconds (truncated toward zero, as Go) from `from` to `to`, both in nanoseconds.
pub(super) fn seconds_between(from: i128, to: i128) -> i64 {
    let secs = (to - from) / NANOS;
    i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX })
}

/// Upstream's `translateTimestampSince` on a parsed time.
pub(super) fn since_nanos(nanos: i128, now: i64) -> String {
    human_duration(seconds_between(nanos, i128::from(now) * NANOS))
}

/// Upstream's `translateTimestampSince`: how long ago `ts` was, or "<unknown>" when unset.
pub(super) fn since(ts: &str, now: i64) -> String {
    match time_nanos(ts) {
        Some(nanos) => since_nanos(nanos, now),
        None => "<unknown>".to_string(),
    }
}

/// The time since the timestamp at `path`, as [`since`].
pub(super) fn since_at(v: &Value, path: &[&str], now: i64) -> String {
    since(str_at(v, path), now)
}

/// The Age cell: time since `metadata.creationTimestamp`.
pub(super) fn age(v: &Value, now: i64) -> Value {
    Value::from(since_at(v, &["metadata", "creationTimestamp"], now))
}

/// A JSON scalar as text: strings as they are, numbers and booleans printed, else "".
pub(super) fn scalar_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// A resource quantity as text; an absent one is "0", as Go's zero `Quantity`.
pub(super) fn quantity(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "0".to_string(),
        other => scalar_text(other),
    }
}

/// Upstream's `labels.FormatLabels`: "k=v" sorted by key and comma-joined, or "<none>".
pub(super) fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, String)> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), scalar_text(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A label selector rendered as upstream's `LabelSelectorAsSelector(..).String()`: "" for
/// a missing selector (selects nothing) or an empty one (selects everything), requirements
/// sorted by key otherwise; Err when an expression is malformed.
pub(super) fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = at(sel, &["matchLabels"]).and_then(Value::as_object) {
        for (k, v) in labels {
            reqs.push((k.clone(), format!("{k}={}", scalar_text(Some(v)))));
        }
    }
    for expr in list_at(sel, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let mut values: Vec<String> = list_at(expr, &["values"])
            .iter()
            .map(|v| scalar_text(Some(v)))
            .collect();
        values.sort();
        let text = match str_at(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

/// Upstream's `metav1.FormatLabelSelector`: the selector, "<none>" when it selects nothing
/// or everything, "<error>" when malformed.
pub(super) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// Upstream's `layoutContainerCells`: container names and images, each comma-joined.
pub(super) fn layout_containers(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

/// Upstream's wide cells of a controller with a pod template: the names and images of the
/// containers at `template.spec.containers` and the label selector at `selector`, both below
/// `spec` (the object's spec, or a cron job's job template spec).
pub(super) fn template_cells(spec: Option<&Value>) -> [Value; 3] {
    let spec = spec.unwrap_or(&Value::Null);
    let (names, images) = layout_containers(list_at(spec, &["template", "spec", "containers"]));
    let selector = format_label_selector(at(spec, &["selector"]));
    [names, images, Value::from(selector)]
}

/// Lists with a limit, as upstream's `listWithMoreString`: the first items comma-joined,
/// "+ N more..." when some were left out, "<unset>" when there are none.
pub(super) fn list_with_more(items: &[String], max: usize) -> String {
    let shown = items[..items.len().min(max)].join(",");
    if items.len() > max {
        format!("{shown} + {} more...", items.len() - max)
    } else if shown.is_empty() {
        "<unset>".to_string()
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_format_as_upstream() {
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        let sel = json!({"matchLabels": {"tier": "web", "app": "shop"}});
        assert_eq!(format_label_selector(Some(&sel)), "app=shop,tier=web");
        let sel = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
                {"key": "arch", "operator": "NotIn", "values": ["arm"]}
            ]
        });
        assert_eq!(
            format_label_selector(Some(&sel)),
            "app=web,arch notin (arm),!canary,env in (dev,prod),zone"
        );
        let bad = json!({"matchExpressions": [{"key": "a", "operator": "Near"}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
        assert_eq!(selector_string(None), Ok(String::new()));
    }

    #[test]
    fn labels_format_as_upstream() {
        assert_eq!(format_labels(None), "<none>");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
    }

    #[test]
    fn ages() {
        let obj = json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}});
        let t0 = 1_704_067_200;
        assert_eq!(age(&obj, t0 + 300), json!("5m"));
        assert_eq!(age(&json!({}), t0), json!("<unknown>"));
        assert_eq!(since("0001-01-01T00:00:00Z", t0), "<unknown>");
        // Sub-second precision truncates toward zero, as Go's time.Since.
        assert_eq!(since("2024-01-01T00:00:00.500000Z", t0 + 1), "0s");
        assert_eq!(since("2024-01-01T00:00:03.500000Z", t0), "<invalid>");
    }
}

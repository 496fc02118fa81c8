//! The event printer, shared by core/v1 events and events.k8s.io/v1 events (upstream prints
//! both from the same internal type; only the JSON field names differ).

use serde_json::Value;

use super::util::{at, non_empty, opt_int, since_at, str_at, time_nanos};
use super::{col, wide, Column, Printer, NAME_DESCRIPTION};

/// Events: Last Seen, Type, Reason, Object, Message; wide Subobject, Source, First Seen,
/// Count, Name.
const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    wide("Count", "string", "The number of times this event has occurred."),
    Column { name: "Name", type_: "string", format: "name", description: NAME_DESCRIPTION, priority: 1 },
];

/// core/v1 events.
pub(super) const CORE_EVENTS: Printer = Printer {
    columns: EVENT_COLUMNS,
    cells: core_event_cells,
};

/// events.k8s.io/v1 events.
pub(super) const EVENTS_V1: Printer = Printer {
    columns: EVENT_COLUMNS,
    cells: event_v1_cells,
};

/// Where each printed field lives in one of the two event shapes.
struct Fields {
    /// The object the event is about.
    regarding: &'static str,
    /// The human-readable message.
    message: &'static str,
    /// The deprecated-style source (component, host).
    source: &'static str,
    /// The deprecated-style first timestamp.
    first: &'static str,
    /// The deprecated-style last timestamp.
    last: &'static str,
    /// The deprecated-style count.
    count: &'static str,
    /// The controller that reported the event.
    controller: &'static str,
}

const CORE_FIELDS: Fields = Fields {
    regarding: "involvedObject",
    message: "message",
    source: "source",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
    controller: "reportingComponent",
};

const V1_FIELDS: Fields = Fields {
    regarding: "regarding",
    message: "note",
    source: "deprecatedSource",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    controller: "reportingController",
};

fn core_event_cells(ev: &Value, now: i64) -> Vec<Value> {
    event_cells(ev, now, &CORE_FIELDS)
}

fn event_v1_cells(ev: &Value, now: i64) -> Vec<Value> {
    event_cells(ev, now, &V1_FIELDS)
}

fn event_cells(ev: &Value, now: i64, f: &Fields) -> Vec<Value> {
    let set = |field: &str| time_nanos(str_at(ev, &[field])).is_some();
    let first = since_at(ev, &[if set(f.first) { f.first } else { "eventTime" }], now);
    let mut last = if set(f.last) {
        since_at(ev, &[f.last], now)
    } else {
        first.clone()
    };
    let mut count = opt_int(ev, &[f.count]).unwrap_or(0);
    if let Some(series) = at(ev, &["series"]).filter(|s| s.is_object()) {
        last = since_at(series, &["lastObservedTime"], now);
        count = opt_int(series, &["count"]).unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }

    let kind = str_at(ev, &[f.regarding, "kind"]).to_lowercase();
    let target = match non_empty(ev, &[f.regarding, "name"]) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let component =
        non_empty(ev, &[f.source, "component"]).unwrap_or_else(|| str_at(ev, &[f.controller]));
    let source = match non_empty(ev, &[f.source, "host"])
        .or_else(|| non_empty(ev, &["reportingInstance"]))
    {
        Some(instance) => format!("{component}, {instance}"),
        None => component.to_string(),
    };

    vec![
        Value::from(last),
        Value::from(str_at(ev, &["type"])),
        Value::from(str_at(ev, &["reason"])),
        Value::from(target),
        Value::from(str_at(ev, &[f.regarding, "fieldPath"])),
        Value::from(source),
        Value::from(str_at(ev, &[f.message]).trim()),
        Value::from(first),
        Value::from(count),
        Value::from(str_at(ev, &["metadata", "name"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

    #[test]
    fn core_event() {
        let ev = json!({
            "metadata": {"name": "web-0.17a"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "message": "  Image pulled\n", "type": "Normal",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:08:00Z",
            "count": 3
        });
        assert_eq!(
            (CORE_EVENTS.cells)(&ev, T0 + 600),
            [
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-0"),
                json!("spec.containers{app}"),
                json!("kubelet, n1"),
                json!("Image pulled"),
                json!("10m"),
                json!(3),
                json!("web-0.17a")
            ]
        );
    }

    #[test]
    fn new_api_event() {
        let ev = json!({
            "metadata": {"name": "e1"},
            "regarding": {"kind": "Deployment", "name": "web"},
            "reason": "ScalingReplicaSet", "note": "Scaled up", "type": "Normal",
            "reportingController": "deployment-controller",
            "eventTime": "2024-01-01T00:00:00.000000Z"
        });
        let row = (EVENTS_V1.cells)(&ev, T0 + 30);
        assert_eq!(row[0], json!("30s"));
        assert_eq!(row[3], json!("deployment/web"));
        assert_eq!(row[5], json!("deployment-controller"));
        assert_eq!(row[6], json!("Scaled up"));
        assert_eq!(row[7], json!("30s"));
        assert_eq!(row[8], json!(1));

        let series = json!({"regarding": {"kind": "Node"}, "eventTime": "2024-01-01T00:00:00Z",
            "series": {"count": 7, "lastObservedTime": "2024-01-01T00:00:20.123456Z"}});
        let row = (EVENTS_V1.cells)(&series, T0 + 30);
        assert_eq!(row[0], json!("9s"));
        assert_eq!(row[3], json!("node"));
        assert_eq!(row[8], json!(7));
        assert_eq!((CORE_EVENTS.cells)(&json!({}), T0)[0], json!("<unknown>"));
    }
}

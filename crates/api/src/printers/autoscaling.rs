//! The horizontal pod autoscaler printer, reading either the autoscaling/v2 shape
//! (`spec.metrics`, `status.currentMetrics`) or the v1 one (CPU utilisation percentages).

use serde_json::Value;

use super::util::{age, at, int_at, list_at, name, opt_int, str_at};
use super::{col, Printer, AGE, NAME};

/// Horizontal pod autoscalers: Name, Reference, Targets, MinPods, MaxPods, Replicas, Age.
pub(super) const HORIZONTAL_POD_AUTOSCALERS: Printer = Printer {
    columns: &[
        NAME,
        col("Reference", "string", "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource."),
        col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count."),
        col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
        col("MaxPods", "string", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
        col("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
        AGE,
    ],
    cells: hpa_cells,
};

/// A quantity behind a pointer, as Go prints it: the value, or "<nil>" when unset.
fn qty(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "<nil>".to_string(),
    }
}

/// A utilisation percentage, if set.
fn percent(v: &Value, path: &[&str]) -> Option<String> {
    opt_int(v, path).map(|p| format!("{p}%"))
}

/// One target of a resource or container-resource metric, as "cpu: 40%/80%".
fn resource_target(spec: &Value, status: Option<&Value>) -> String {
    let resource = str_at(spec, &["name"]);
    if let Some(target) = at(spec, &["target", "averageValue"]) {
        let current = status.map_or_else(
            || "<unknown>".to_string(),
            |s| qty(at(s, &["current", "averageValue"])),
        );
        return format!("{resource}: {current}/{}", qty(Some(target)));
    }
    let current = status
        .and_then(|s| percent(s, &["current", "averageUtilization"]))
        .unwrap_or_else(|| "<unknown>".to_string());
    let target =
        percent(spec, &["target", "averageUtilization"]).unwrap_or_else(|| "<auto>".to_string());
    format!("{resource}: {current}/{target}")
}

/// One target of an object or external metric: "cur/target", or "cur/target (avg)".
fn value_target(spec: &Value, status: Option<&Value>) -> String {
    if let Some(target) = at(spec, &["target", "averageValue"]) {
        let current = status
            .and_then(|s| at(s, &["current", "averageValue"]))
            .map_or_else(|| "<unknown>".to_string(), |c| qty(Some(c)));
        return format!("{current}/{} (avg)", qty(Some(target)));
    }
    let current = status.map_or_else(
        || "<unknown>".to_string(),
        |s| qty(at(s, &["current", "value"])),
    );
    format!("{current}/{}", qty(at(spec, &["target", "value"])))
}

/// Upstream's `formatHPAMetrics` over the v2 shape: two targets, then "+ N more...".
fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            // The status at the same index, if it carries this source kind.
            let status = |source: &str| statuses.get(i).and_then(|s| at(s, &[source]));
            match str_at(spec, &["type"]) {
                "External" => value_target(
                    at(spec, &["external"]).unwrap_or(&Value::Null),
                    status("external"),
                ),
                "Object" => value_target(
                    at(spec, &["object"]).unwrap_or(&Value::Null),
                    status("object"),
                ),
                "Pods" => {
                    let current = status("pods").map_or_else(
                        || "<unknown>".to_string(),
                        |s| qty(at(s, &["current", "averageValue"])),
                    );
                    format!(
                        "{current}/{}",
                        qty(at(spec, &["pods", "target", "averageValue"]))
                    )
                }
                "Resource" => resource_target(
                    at(spec, &["resource"]).unwrap_or(&Value::Null),
                    status("resource"),
                ),
                "ContainerResource" => resource_target(
                    at(spec, &["containerResource"]).unwrap_or(&Value::Null),
                    status("containerResource"),
                ),
                _ => "<unknown type>".to_string(),
            }
        })
        .collect();
    let shown = list[..list.len().min(MAX)].join(", ");
    if list.len() > MAX {
        format!("{shown} + {} more...", list.len() - MAX)
    } else {
        shown
    }
}

/// The Targets cell: v2 metrics when present, else the v1 CPU target.
fn targets(hpa: &Value) -> String {
    let metrics = list_at(hpa, &["spec", "metrics"]);
    if !metrics.is_empty() {
        return format_metrics(metrics, list_at(hpa, &["status", "currentMetrics"]));
    }
    match percent(hpa, &["spec", "targetCPUUtilizationPercentage"]) {
        Some(target) => {
            let current = percent(hpa, &["status", "currentCPUUtilizationPercentage"])
                .unwrap_or_else(|| "<unknown>".to_string());
            format!("cpu: {current}/{target}")
        }
        None => "<none>".to_string(),
    }
}

fn hpa_cells(hpa: &Value, now: i64) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        str_at(hpa, &["spec", "scaleTargetRef", "kind"]),
        str_at(hpa, &["spec", "scaleTargetRef", "name"])
    );
    let min = opt_int(hpa, &["spec", "minReplicas"])
        .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    vec![
        name(hpa),
        Value::from(reference),
        Value::from(targets(hpa)),
        Value::from(min),
        Value::from(int_at(hpa, &["spec", "maxReplicas"])),
        Value::from(int_at(hpa, &["status", "currentReplicas"])),
        age(hpa, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v2_metrics() {
        let hpa = json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"averageValue": "1k"}}}
                ]},
            "status": {"currentReplicas": 3, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 41, "averageValue": "205m"}}}
            ]}
        });
        assert_eq!(
            (HORIZONTAL_POD_AUTOSCALERS.cells)(&hpa, 0)[1..6],
            [
                json!("Deployment/web"),
                json!("cpu: 41%/80%, memory: <unknown>/500Mi + 1 more..."),
                json!("2"),
                json!(10),
                json!(3)
            ]
        );
        let ext = json!({"spec": {"metrics": [
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "30"}}},
            {"type": "Object", "object": {"target": {"type": "Value", "value": "2"}}}]},
            "status": {"currentMetrics": [{"type": "External", "external": {"current": {"averageValue": "12"}}}]}});
        assert_eq!(
            (HORIZONTAL_POD_AUTOSCALERS.cells)(&ext, 0)[2],
            json!("12/30 (avg), <unknown>/2")
        );
    }

    #[test]
    fn v1_cpu_target() {
        let hpa = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"},
            "maxReplicas": 5, "targetCPUUtilizationPercentage": 70},
            "status": {"currentReplicas": 1}});
        let row = (HORIZONTAL_POD_AUTOSCALERS.cells)(&hpa, 0);
        assert_eq!(row[2..4], [json!("cpu: <unknown>/70%"), json!("<unset>")]);
        let mut seen = hpa.clone();
        seen["status"]["currentCPUUtilizationPercentage"] = json!(35);
        assert_eq!(
            (HORIZONTAL_POD_AUTOSCALERS.cells)(&seen, 0)[2],
            json!("cpu: 35%/70%")
        );
        assert_eq!(
            (HORIZONTAL_POD_AUTOSCALERS.cells)(&json!({}), 0)[2],
            json!("<none>")
        );
    }
}

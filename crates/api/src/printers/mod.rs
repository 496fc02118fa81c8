//! Server-side Table printers: the columns and cells `kubectl get` shows for each built-in
//! resource, after upstream's `pkg/printers/internalversion`.
//!
//! [`printer`] picks the [`Printer`] for a group and plural; its `cells` function turns one
//! object, as served in JSON, into one row. Rows always carry every column, wide ones
//! included (the API server renders with upstream's `Wide: true`); clients hide the
//! columns whose priority is above zero unless asked for wide output. Kinds without a
//! printer of their own (custom resources, roles, limit ranges, ...) get upstream's
//! default table: the name and the creation time.

mod apps;
mod auth;
mod autoscaling;
mod batch;
mod core;
mod events;
mod networking;
mod others;
mod pod;
mod storage;
mod util;

use serde_json::Value;

/// One column of a Table (meta.k8s.io/v1 TableColumnDefinition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column's header: "Name", "Ready", "Status", ...
    pub name: &'static str,
    /// The OpenAPI type of the column: "string", "integer", "date", "number" or "boolean".
    pub type_: &'static str,
    /// The OpenAPI format: "name" for the Name column, otherwise empty (as upstream).
    pub format: &'static str,
    /// What the column shows, in upstream's words where known.
    pub description: &'static str,
    /// 0 for columns always shown, 1 for columns shown only in wide output.
    pub priority: i32,
}

/// How one resource prints.
#[derive(Clone, Copy)]
pub struct Printer {
    /// The columns, in order.
    pub columns: &'static [Column],
    /// Cells of one object's row, one per column, given the object as JSON (as served:
    /// apiVersion, kind, metadata, spec, status) and the current time in Unix seconds.
    pub cells: fn(&Value, i64) -> Vec<Value>,
}

/// The printer for a resource by API group ("" for core) and plural.
pub fn printer(group: &str, plural: &str) -> Printer {
    match (group, plural) {
        ("", "pods") => pod::PODS,
        ("", "namespaces") => core::NAMESPACES,
        ("", "nodes") => core::NODES,
        ("", "services") => core::SERVICES,
        ("", "endpoints") => core::ENDPOINTS,
        ("", "configmaps") => core::CONFIGMAPS,
        ("", "secrets") => core::SECRETS,
        ("", "serviceaccounts") => core::SERVICE_ACCOUNTS,
        ("", "resourcequotas") => core::RESOURCE_QUOTAS,
        ("", "podtemplates") => core::POD_TEMPLATES,
        ("", "events") => events::CORE_EVENTS,
        ("events.k8s.io", "events") => events::EVENTS_V1,
        ("", "persistentvolumes") => storage::PERSISTENT_VOLUMES,
        ("", "persistentvolumeclaims") => storage::PERSISTENT_VOLUME_CLAIMS,
        ("storage.k8s.io", "storageclasses") => storage::STORAGE_CLASSES,
        ("", "replicationcontrollers") => apps::REPLICATION_CONTROLLERS,
        ("apps", "deployments") => apps::DEPLOYMENTS,
        ("apps", "replicasets") => apps::REPLICA_SETS,
        ("apps", "statefulsets") => apps::STATEFUL_SETS,
        ("apps", "daemonsets") => apps::DAEMON_SETS,
        ("apps", "controllerrevisions") => apps::CONTROLLER_REVISIONS,
        ("batch", "jobs") => batch::JOBS,
        ("batch", "cronjobs") => batch::CRON_JOBS,
        ("discovery.k8s.io", "endpointslices") => networking::ENDPOINT_SLICES,
        ("networking.k8s.io", "ingresses") => networking::INGRESSES,
        ("networking.k8s.io", "ingressclasses") => networking::INGRESS_CLASSES,
        ("networking.k8s.io", "networkpolicies") => networking::NETWORK_POLICIES,
        ("coordination.k8s.io", "leases") => others::LEASES,
        ("policy", "poddisruptionbudgets") => others::POD_DISRUPTION_BUDGETS,
        ("scheduling.k8s.io", "priorityclasses") => others::PRIORITY_CLASSES,
        ("autoscaling", "horizontalpodautoscalers") => autoscaling::HORIZONTAL_POD_AUTOSCALERS,
        ("rbac.authorization.k8s.io", "rolebindings") => auth::ROLE_BINDINGS,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => auth::CLUSTER_ROLE_BINDINGS,
        ("certificates.k8s.io", "certificatesigningrequests") => auth::CERTIFICATE_SIGNING_REQUESTS,
        // Upstream registers no printer for roles, cluster roles and limit ranges: they,
        // and every custom resource, print as the default table.
        _ => DEFAULT,
    }
}

/// Upstream's `duration.HumanDuration` (used for AGE): about two or three significant
/// figures, "45s", "5m", "3h10m", "2d", "3y45d"... Under -1 second is "<invalid>" and a
/// second of clock skew is "0s".
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 2 * 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let rest = seconds % 60;
        return if rest == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rest}s")
        };
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let rest = minutes % 60;
        return if rest == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rest}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let rest = hours % 24;
        return if rest == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{rest}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let rest = days % 365;
        return if rest == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{rest}d")
        };
    }
    format!("{years}y")
}

/// Upstream's description of `metadata.name`, used by every Name column.
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Upstream's description of `metadata.creationTimestamp`, used by every Age column.
const CREATED_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The Name column every printer starts with.
const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: NAME_DESCRIPTION,
    priority: 0,
};

/// The Age column: time since creation, as [`human_duration`].
const AGE: Column = col("Age", "string", CREATED_DESCRIPTION);

/// Wide-output Containers column of workload controllers.
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);

/// Wide-output Images column of workload controllers.
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// The wide-output Selector column of workload controllers and services, in the resource's
/// own words.
const fn wide_selector(description: &'static str) -> Column {
    wide("Selector", "string", description)
}

/// The same column, shown in normal output too (pod templates show what controllers keep for
/// wide output).
const fn always_shown(column: Column) -> Column {
    Column {
        priority: 0,
        ..column
    }
}

/// A column shown in normal output.
const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown only in wide output.
const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

/// Upstream's default table, for kinds without a printer of their own.
const DEFAULT: Printer = Printer {
    columns: &[NAME, col("Created At", "date", CREATED_DESCRIPTION)],
    cells: default_cells,
};

/// The default row: the name and the creation time in RFC 3339, UTC, whole seconds.
fn default_cells(obj: &Value, _now: i64) -> Vec<Value> {
    let stored = util::str_at(obj, &["metadata", "creationTimestamp"]);
    let created = match stored.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Upstream formats the zero time when there is none.
        Err(_) if stored.is_empty() => "0001-01-01T00:00:00Z".to_string(),
        Err(_) => stored.to_string(),
    };
    vec![util::name(obj), Value::from(created)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_duration_table() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (9 * 60 + 59, "9m59s"),
            (10 * 60 + 30, "10m"),
            (3600, "60m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 10 * 60, "3h10m"),
            (8 * 3600 + 59 * 60, "8h"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (8 * 86400, "8d"),
            (400 * 86400, "400d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            ((3 * 365 + 45) * 86400, "3y45d"),
            (8 * 365 * 86400, "8y"),
            (20 * 365 * 86400 + 86400 * 3, "20y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(*secs), *want, "for {secs}s");
        }
    }

    #[test]
    fn unknown_kinds_get_the_default_table() {
        let p = printer("example.com", "widgets");
        let names: Vec<_> = p
            .columns
            .iter()
            .map(|c| (c.name, c.type_, c.format))
            .collect();
        assert_eq!(
            names,
            [("Name", "string", "name"), ("Created At", "date", "")]
        );
        let obj = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-05-01T10:00:00Z"}});
        assert_eq!(
            (p.cells)(&obj, 0),
            [json!("w1"), json!("2024-05-01T10:00:00Z")]
        );
        let bare = json!({"metadata": {"name": "w2"}});
        assert_eq!(
            (p.cells)(&bare, 0),
            [json!("w2"), json!("0001-01-01T00:00:00Z")]
        );
        // Kinds upstream leaves to the default table.
        for (g, r) in [("rbac.authorization.k8s.io", "roles"), ("", "limitranges")] {
            assert_eq!(printer(g, r).columns.len(), 2);
        }
    }

    #[test]
    fn every_printer_fills_every_column() {
        let kinds = [
            ("", "pods"),
            ("", "namespaces"),
            ("", "nodes"),
            ("", "services"),
            ("", "endpoints"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "serviceaccounts"),
            ("", "events"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("", "limitranges"),
            ("", "resourcequotas"),
            ("", "replicationcontrollers"),
            ("", "podtemplates"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("apps", "controllerrevisions"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("coordination.k8s.io", "leases"),
            ("events.k8s.io", "events"),
            ("discovery.k8s.io", "endpointslices"),
            ("networking.k8s.io", "ingresses"),
            ("networking.k8s.io", "ingressclasses"),
            ("networking.k8s.io", "networkpolicies"),
            ("storage.k8s.io", "storageclasses"),
            ("policy", "poddisruptionbudgets"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("certificates.k8s.io", "certificatesigningrequests"),
        ];
        let empty = json!({});
        let named = json!({"metadata": {"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z"}});
        for (g, r) in kinds {
            let p = printer(g, r);
            assert_eq!(
                p.columns.iter().filter(|c| c.format == "name").count(),
                1,
                "{g}/{r}"
            );
            assert_eq!((p.cells)(&empty, 0).len(), p.columns.len(), "{g}/{r}");
            assert_eq!(
                (p.cells)(&named, 1_704_067_200 + 90).len(),
                p.columns.len(),
                "{g}/{r}"
            );
        }
    }
}

//! Printers for the small groups: leases (coordination.k8s.io), pod disruption budgets
//! (policy) and priority classes (scheduling.k8s.io).

use serde_json::Value;

use super::util::{age, at, int_at, name, opt_bool, scalar_text, str_at};
use super::{col, Printer, AGE, NAME};

/// Leases: Name, Holder, Age.
pub(super) const LEASES: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        AGE,
    ],
    cells: lease_cells,
};

fn lease_cells(lease: &Value, now: i64) -> Vec<Value> {
    vec![
        name(lease),
        Value::from(str_at(lease, &["spec", "holderIdentity"])),
        age(lease, now),
    ]
}

/// Pod disruption budgets: Name, Min Available, Max Unavailable, Allowed Disruptions, Age.
pub(super) const POD_DISRUPTION_BUDGETS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    cells: pdb_cells,
};

fn pdb_cells(pdb: &Value, now: i64) -> Vec<Value> {
    // An int-or-string prints as its number or its text; an unset one as "N/A".
    let bound = |field: &str| match at(pdb, &["spec", field]) {
        Some(v) => scalar_text(Some(v)),
        None => "N/A".to_string(),
    };
    vec![
        name(pdb),
        Value::from(bound("minAvailable")),
        Value::from(bound("maxUnavailable")),
        Value::from(int_at(pdb, &["status", "disruptionsAllowed"])),
        age(pdb, now),
    ]
}

/// Priority classes: Name, Value, Global-Default, Age, PreemptionPolicy.
pub(super) const PRIORITY_CLASSES: Printer = Printer {
    columns: &[
        NAME,
        col("Value", "integer", "value represents the integer value of this priority class."),
        col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."),
        AGE,
        col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority."),
    ],
    cells: priority_class_cells,
};

fn priority_class_cells(pc: &Value, now: i64) -> Vec<Value> {
    vec![
        name(pc),
        Value::from(int_at(pc, &["value"])),
        Value::from(opt_bool(pc, &["globalDefault"]).unwrap_or(false)),
        age(pc, now),
        Value::from(str_at(pc, &["preemptionPolicy"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leases_budgets_priorities() {
        let lease = json!({"spec": {"holderIdentity": "node-1"}});
        assert_eq!((LEASES.cells)(&lease, 0)[1], json!("node-1"));
        let pdb = json!({"spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            (POD_DISRUPTION_BUDGETS.cells)(&pdb, 0)[1..4],
            [json!("50%"), json!("N/A"), json!(1)]
        );
        let pdb = json!({"spec": {"maxUnavailable": 1}});
        assert_eq!(
            (POD_DISRUPTION_BUDGETS.cells)(&pdb, 0)[1..3],
            [json!("N/A"), json!("1")]
        );
        let pc = json!({"metadata": {"name": "system-node-critical"}, "value": 2000001000,
            "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            (PRIORITY_CLASSES.cells)(&pc, 0)[1..3],
            [json!(2000001000), json!(false)]
        );
        assert_eq!(
            (PRIORITY_CLASSES.cells)(&pc, 0)[4],
            json!("PreemptLowerPriority")
        );
    }
}

//! Server-side apply and field management, as upstream's structured-merge-diff and the
//! apiserver's field manager do them, over `serde_json` values typed by [`crate::schema`].
//!
//! - [`apply`] handles an `application/apply-patch+yaml` request: the applied
//!   configuration is merged into the live object (granular objects key by key,
//!   associative lists by their keys, sets by value, atomic lists and maps replaced
//!   whole), fields the applier stopped applying are removed unless another manager owns
//!   them, and changing a field another manager owns is a conflict unless forced.
//! - [`record_update`] records any other write (create, update, patch) as an `Update`
//!   entry: what changed becomes the writer's, and leaves other managers' sets.
//!
//! Both keep `metadata.managedFields` in upstream's `FieldsV1` encoding ([`FieldSet`]).
//!
//! Differences from upstream, by design or for lack of data:
//! - there is no conversion between API versions: every entry's set is read against the
//!   given type, whatever its `apiVersion`;
//! - list-map key defaults are not in the embedded OpenAPI document; a missing `protocol`
//!   key counts as `TCP` (every such key of the built-in kinds defaults to that);
//! - the "object before create" is `{}`, not the Go zero value, so a create's `Update`
//!   entry also marks struct fields such as `f:spec` with `.`;
//! - malformed `managedFields` on the live object fail an apply with
//!   [`ApplyError::BadManagedFields`] (upstream answers 500 the same way); an ordinary
//!   write instead starts over from no entries, as upstream does;
//! - an explicit `null` applied to a struct field removes the field (upstream's decoding
//!   into typed objects does the same for built-in kinds);
//! - the `kubectl.kubernetes.io/last-applied-configuration` annotation is not maintained.

mod fieldset;
mod managed;
mod merge;
mod path;
mod typed;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use fieldset::FieldSet;
pub use managed::{decode as decode_managed_fields, encode as encode_managed_fields};
pub use managed::{ManagedEntry, Operation};
pub use path::{path_string, PathElement};

use crate::schema::{Schemas, Ty};
use typed::{compare, Comparison, SetBuilder};

/// The reset fields of a write to the main resource of a kind with a status subresource.
pub const RESET_STATUS: &[&[&str]] = &[&["status"]];

/// Who writes, and how.
#[derive(Clone, Copy, Debug)]
pub struct Manager<'a> {
    /// The field manager (`fieldManager`, or from the user agent); `""` is `unknown` for
    /// updates.
    pub name: &'a str,
    /// The API version of the request (`apps/v1`).
    pub api_version: &'a str,
    /// The time to record (RFC 3339).
    pub time: &'a str,
    /// The subresource written through (`""` for the main resource).
    pub subresource: &'a str,
    /// Paths (field names from the root) this write may neither set nor own, upstream's
    /// "reset fields": [`RESET_STATUS`] for the main resource of a kind with a status
    /// subresource, `&[&["spec"], &["metadata"]]`-like sets for its status subresource,
    /// `&[]` otherwise. An applied configuration's values there are ignored.
    pub reset_fields: &'a [&'a [&'a str]],
}

/// A field owned by another manager that an apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// The field, in upstream's path form: `.spec.replicas`,
    /// `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
    /// The other manager's operation.
    pub operation: Operation,
    /// The other manager's API version.
    pub api_version: String,
    /// The other manager's subresource.
    pub subresource: String,
    /// When the other manager last wrote.
    pub time: Option<String>,
}

impl Conflict {
    fn describe(&self) -> String {
        managed::describe(
            &self.manager,
            self.operation,
            &self.api_version,
            &self.subresource,
            self.time.as_deref(),
        )
    }

    fn identifier(&self) -> String {
        ManagedEntry {
            manager: self.manager.clone(),
            operation: self.operation,
            api_version: self.api_version.clone(),
            subresource: self.subresource.clone(),
            time: None,
            fields: FieldSet::new(),
        }
        .identifier()
    }

    /// The message of this conflict's status cause (type `FieldManagerConflict`):
    /// `conflict with "kubectl" using apps/v1`.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.describe())
    }
}

/// Upstream's 409 message for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.describe(),
            c.field
        );
    }
    let mut groups: Vec<(String, String, Vec<&str>)> = Vec::new();
    for c in conflicts {
        let id = c.identifier();
        match groups.iter_mut().find(|g| g.0 == id) {
            Some(g) => g.2.push(&c.field),
            None => groups.push((id, c.describe(), vec![&c.field])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    for (_, who, fields) in groups {
        lines.push(format!("conflicts with {who}:"));
        lines.extend(fields.into_iter().map(|f| format!("- {f}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Why an apply or update could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change (HTTP 409).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration (or the object) does not fit its type (HTTP 400/422).
    #[error("{0}")]
    Invalid(String),
    /// The live object's `metadata.managedFields` cannot be read (HTTP 500).
    #[error("failed to decode managed fields: {0}")]
    BadManagedFields(String),
}

fn reset_set(mgr: &Manager) -> FieldSet {
    FieldSet::from_paths(mgr.reset_fields.iter().map(|p| {
        p.iter()
            .map(|s| PathElement::Field((*s).to_owned()))
            .collect()
    }))
}

fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// Removes `metadata.managedFields` and returns it.
fn take_managed_fields(obj: &mut Value) -> Option<Value> {
    obj.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"))
}

/// Sets (or, for no entries, removes) `metadata.managedFields`.
fn put_managed_fields(obj: &mut Value, entries: &[ManagedEntry]) {
    let encoded = managed::encode(entries);
    let Value::Object(root) = obj else { return };
    match encoded {
        Some(list) => {
            let meta = root
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = meta {
                m.insert("managedFields".into(), list);
            }
        }
        None => {
            if let Some(Value::Object(m)) = root.get_mut("metadata") {
                m.remove("managedFields");
            }
        }
    }
}

/// `namespace/name; apps/v1, Kind=Deployment`, as upstream names an object in errors.
fn object_name(obj: &Value) -> String {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    let meta = metadata(obj);
    format!(
        "{}/{}; {}, Kind={}",
        s(meta.and_then(|m| m.get("namespace"))),
        s(meta.and_then(|m| m.get("name"))),
        s(obj.get("apiVersion")),
        s(obj.get("kind")),
    )
}

fn format_errors(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => {
            let mut lines = vec!["errors:".to_owned()];
            lines.extend(many.iter().map(|e| format!("  {e}")));
            lines.join("\n")
        }
    }
}

/// Takes the paths other managers own that the comparison changed (their conflicts) and
/// those it removed out of their sets. `skip` is the writing manager. Without `force`,
/// any conflict fails and nothing changes.
fn update_others(
    entries: &mut Vec<ManagedEntry>,
    cmp: &Comparison,
    skip: Option<&ManagedEntry>,
    force: bool,
) -> Result<(), Vec<Conflict>> {
    let changed = cmp.changed();
    let mut conflicts: Vec<(String, Conflict)> = Vec::new();
    let mut taken: Vec<FieldSet> = Vec::with_capacity(entries.len());
    for e in entries.iter() {
        if skip.is_some_and(|s| s.same_manager(e)) {
            taken.push(FieldSet::new());
            continue;
        }
        let c = e.fields.intersection(&changed);
        for p in c.paths() {
            let conflict = Conflict {
                manager: e.manager.clone(),
                field: path_string(&p),
                operation: e.operation,
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
                time: e.time.clone(),
            };
            conflicts.push((e.identifier(), conflict));
        }
        taken.push(c);
    }
    if !force && !conflicts.is_empty() {
        // Stable: managers by identifier, each manager's paths in set order.
        conflicts.sort_by(|a, b| a.0.cmp(&b.0));
        return Err(conflicts.into_iter().map(|(_, c)| c).collect());
    }
    for (e, t) in entries.iter_mut().zip(taken) {
        if skip.is_some_and(|s| s.same_manager(e)) {
            continue;
        }
        e.fields = e.fields.difference(&t).difference(&cmp.removed);
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok(())
}

/// Records `old` (`None`: `{}`, a create) → `new` as an `Update` by `who` (upstream's
/// update path below the "skip non-applied" step: compare, take from others, strip
/// metadata, merge into the writer's entry, cap the number of updaters).
fn record(
    schemas: &Schemas,
    ty: &Ty,
    entries: &mut Vec<ManagedEntry>,
    old: Option<&Value>,
    new: &Value,
    who: ManagedEntry,
    reset: &FieldSet,
) {
    let mut cmp = match old {
        Some(old) => compare(schemas, old, new, Some(ty)),
        // Everything in a created object is added: one walk, no comparison.
        None => match typed::created(schemas, new, Some(ty)) {
            Some(added) => Comparison {
                added,
                ..Comparison::default()
            },
            None => compare(schemas, &Value::Object(Map::new()), new, Some(ty)),
        },
    };
    cmp.exclude(reset);
    if !entries.is_empty() {
        // Forced: an update never conflicts.
        let _ = update_others(entries, &cmp, None, true);
    }
    let mut set = cmp.added;
    set.absorb(cmp.modified);
    set.remove_all(managed::strip_set());
    if !set.is_empty() {
        match entries.iter_mut().find(|e| e.same_manager(&who)) {
            Some(e) => {
                e.fields.absorb(set);
                e.time = who.time.clone();
            }
            None => entries.push(ManagedEntry { fields: set, ..who }),
        }
    }
    managed::cap_update_managers(entries);
}

/// Server-side apply of `config` (the applied configuration, already parsed) onto `live`
/// (None = the object does not exist yet). Returns the new object with
/// metadata.managedFields updated.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    mgr: &Manager,
    force: bool,
    ty: &Ty,
    schemas: &Schemas,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Invalid(
            "the applied configuration must be an object".into(),
        ));
    }
    if metadata(config)
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::Invalid(
            "metadata.managedFields must be nil".into(),
        ));
    }
    if let Some(v) = config.get("apiVersion").and_then(Value::as_str) {
        if v != mgr.api_version {
            return Err(ApplyError::Invalid(format!(
                "Incorrect version specified in apply patch. Specified patch version: {v}, expected: {}",
                mgr.api_version
            )));
        }
    }
    let reset = reset_set(mgr);
    let config_kept =
        merge::remove_items(schemas, config, &reset, Some(ty)).unwrap_or(Value::Object(Map::new()));
    let mut builder = SetBuilder::strict(schemas);
    let applied_set = builder.field_set(&config_kept, Some(ty));
    if !builder.errors.is_empty() {
        return Err(ApplyError::Invalid(format!(
            "failed to create typed patch object ({}): {}",
            object_name(config),
            format_errors(&builder.errors)
        )));
    }
    let applied_set = applied_set.recursive_difference(&reset);

    let mut live_obj = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = managed::decode(take_managed_fields(&mut live_obj).as_ref())
        .map_err(ApplyError::BadManagedFields)?;
    if entries.is_empty() && live.is_some() {
        // An object nobody manages yet: what it has becomes "before-first-apply"'s.
        let who = ManagedEntry {
            manager: "before-first-apply".into(),
            operation: Operation::Update,
            api_version: mgr.api_version.into(),
            subresource: mgr.subresource.into(),
            time: Some(mgr.time.into()),
            fields: FieldSet::new(),
        };
        record(schemas, ty, &mut entries, None, &live_obj, who, &reset);
    }

    let merged = merge::merge(schemas, &live_obj, &config_kept, Some(ty)).map_err(|e| {
        ApplyError::Invalid(format!(
            "failed to merge config ({}): {e}",
            object_name(config)
        ))
    })?;
    let applier = ManagedEntry {
        manager: mgr.name.into(),
        operation: Operation::Apply,
        api_version: mgr.api_version.into(),
        subresource: mgr.subresource.into(),
        time: None,
        fields: applied_set,
    };
    let last = match entries.iter_mut().find(|e| e.same_manager(&applier)) {
        Some(e) => {
            let last = std::mem::replace(&mut e.fields, applier.fields.clone());
            e.api_version = applier.api_version.clone();
            last
        }
        None => {
            entries.push(applier.clone());
            FieldSet::new()
        }
    };
    let owned = entries
        .iter()
        .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
    let pruned = merge::prune(schemas, &merged, &last, &owned, Some(ty));

    let mut cmp = compare(schemas, &live_obj, &pruned, Some(ty));
    cmp.exclude(&reset);
    update_others(&mut entries, &cmp, Some(&applier), force).map_err(ApplyError::Conflicts)?;

    let changed = pruned != live_obj;
    let strip = managed::strip_set();
    for e in entries.iter_mut().filter(|e| e.same_manager(&applier)) {
        e.fields.remove_all(strip);
        if changed {
            e.time = Some(mgr.time.into());
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    let mut out = if changed { pruned } else { live_obj };
    put_managed_fields(&mut out, &entries);
    Ok(out)
}

/// Records an ordinary write (create/update/patch, operation "Update") in new's
/// managedFields, given the object before it (None for create): fields that changed or
/// appeared become mgr's, and are removed from other managers' sets; fields that
/// disappeared leave every set.
///
/// As upstream: the entries come from `new` when the request carried valid ones (an empty
/// list, or one empty entry, resets them), else from `old` (unreadable ones are dropped);
/// writes through a subresource always start from `old`'s. An existing object (one with a
/// `metadata.uid`) that has no entries stays untracked.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    mgr: &Manager,
    ty: &Ty,
    schemas: &Schemas,
) -> Result<(), ApplyError> {
    if !new.is_object() {
        return Err(ApplyError::Invalid(
            "the object must be a JSON object".into(),
        ));
    }
    let old_entries = || {
        managed::decode(old.and_then(metadata).and_then(|m| m.get("managedFields")))
            .unwrap_or_default()
    };
    let requested = take_managed_fields(new);
    let mut entries = if !mgr.subresource.is_empty() {
        old_entries()
    } else if managed::is_reset(requested.as_ref()) {
        Vec::new()
    } else {
        match managed::decode(requested.as_ref()) {
            Ok(e) if !e.is_empty() => e,
            _ => old_entries(),
        }
    };
    let old_uid = old
        .and_then(metadata)
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if entries.is_empty() && !old_uid.is_empty() {
        return Ok(());
    }
    let old_obj = old.map(|o| {
        let mut o = o.clone();
        take_managed_fields(&mut o);
        o
    });
    let who = ManagedEntry {
        manager: if mgr.name.is_empty() {
            "unknown".into()
        } else {
            mgr.name.into()
        },
        operation: Operation::Update,
        api_version: mgr.api_version.into(),
        subresource: mgr.subresource.into(),
        time: Some(mgr.time.into()),
        fields: FieldSet::new(),
    };
    record(
        schemas,
        ty,
        &mut entries,
        old_obj.as_ref(),
        new,
        who,
        &reset_set(mgr),
    );
    put_managed_fields(new, &entries);
    Ok(())
}

//! `metadata.managedFields` as data: decoding and encoding the entries (upstream's checks,
//! order and identity rules), the metadata fields no manager owns, and the cap on the
//! number of `Update` entries.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::FieldSet;
use super::path::{go_json_string, go_quote, PathElement};

/// The most `Update` entries an object keeps; older ones are folded into one entry.
const MAX_UPDATE_MANAGERS: usize = 10;
/// The manager that older `Update` entries are folded into.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// `Apply` or `Update`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedEntry {
    /// The field manager's name.
    pub manager: String,
    /// How it wrote.
    pub operation: Operation,
    /// The API version it wrote with.
    pub api_version: String,
    /// The subresource it wrote through (`""` for the main resource).
    pub subresource: String,
    /// When it last changed the object.
    pub time: Option<String>,
    /// The fields it owns.
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether `other` is the same manager as upstream counts them: name, operation and
    /// subresource, and for `Update` also the API version.
    pub fn same_manager(&self, other: &ManagedEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// Upstream's manager identifier (the JSON of the entry's identifying fields), which
    /// orders managers in conflict messages.
    pub fn identifier(&self) -> String {
        let mut s = String::from("{");
        let mut parts = Vec::new();
        if !self.manager.is_empty() {
            parts.push(("manager", self.manager.as_str()));
        }
        parts.push(("operation", self.operation.as_str()));
        if self.operation == Operation::Update && !self.api_version.is_empty() {
            parts.push(("apiVersion", self.api_version.as_str()));
        }
        if !self.subresource.is_empty() {
            parts.push(("subresource", self.subresource.as_str()));
        }
        for (i, (k, v)) in parts.into_iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            go_json_string(&mut s, k);
            s.push(':');
            go_json_string(&mut s, v);
        }
        s.push('}');
        s
    }

    /// How upstream names the manager in messages: `"kubectl"`, with ` with subresource
    /// "status"`, and for `Update` ` using apps/v1 at <time>`.
    pub fn describe(&self) -> String {
        describe(
            &self.manager,
            self.operation,
            &self.api_version,
            &self.subresource,
            self.time.as_deref(),
        )
    }
}

/// See [`ManagedEntry::describe`].
pub(crate) fn describe(
    manager: &str,
    op: Operation,
    api_version: &str,
    subresource: &str,
    time: Option<&str>,
) -> String {
    let mut s = go_quote(manager);
    if !subresource.is_empty() {
        s.push_str(&format!(" with subresource {}", go_quote(subresource)));
    }
    if op == Operation::Update {
        s.push_str(&format!(" using {api_version}"));
        if let Some(t) = time {
            let formatted = parse_time(t)
                .map(format_time)
                .unwrap_or_else(|| t.to_owned());
            s.push_str(&format!(" at {formatted}"));
        }
    }
    s
}

/// The paths no manager owns: identity and server-set metadata (upstream's list). Built
/// once.
pub(crate) fn strip_set() -> &'static FieldSet {
    static SET: std::sync::LazyLock<FieldSet> = std::sync::LazyLock::new(build_strip_set);
    &SET
}

fn build_strip_set() -> FieldSet {
    let f = |s: &str| PathElement::Field(s.to_owned());
    let mut set = FieldSet::new();
    set.insert(&[f("apiVersion")]);
    set.insert(&[f("kind")]);
    set.insert(&[f("metadata")]);
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.insert(&[f("metadata"), f(name)]);
    }
    set
}

fn str_field<'v>(m: &'v Map<String, Value>, key: &str, i: usize) -> Result<&'v str, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "{key} of managed fields entry {i} must be a string, got {other}"
        )),
    }
}

/// Decodes `metadata.managedFields` (absent or null: no entries). An entry repeating an
/// earlier one's identity replaces it, as upstream's map does.
pub fn decode(v: Option<&Value>) -> Result<Vec<ManagedEntry>, String> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(format!("managedFields must be a list, got {other}")),
    };
    let mut out: Vec<ManagedEntry> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(format!(
                "managed fields entry {i} must be an object, got {item}"
            ));
        };
        let operation = match str_field(m, "operation", i)? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".to_owned()),
        };
        let api_version = str_field(m, "apiVersion", i)?;
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".to_owned());
        }
        match str_field(m, "fieldsType", i)? {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {} in managed fields entry {i}",
                    go_quote(other)
                ))
            }
        }
        let fields = FieldSet::from_fields_v1(m.get("fieldsV1").unwrap_or(&Value::Null))
            .map_err(|e| format!("error decoding set of managed fields entry {i}: {e}"))?;
        let time = match str_field(m, "time", i)? {
            "" => None,
            t => Some(t.to_owned()),
        };
        let entry = ManagedEntry {
            manager: str_field(m, "manager", i)?.to_owned(),
            operation,
            api_version: api_version.to_owned(),
            subresource: str_field(m, "subresource", i)?.to_owned(),
            time,
            fields,
        };
        match out.iter_mut().find(|e| e.same_manager(&entry)) {
            Some(existing) => *existing = entry,
            None => out.push(entry),
        }
    }
    Ok(out)
}

/// Whether a request's `managedFields` asks for them to be reset: an empty list, or a
/// list of one empty entry.
pub(crate) fn is_reset(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(list)) => match list.as_slice() {
            [] => true,
            [Value::Object(m)] => m.values().all(|v| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            }),
            _ => false,
        },
        _ => false,
    }
}

/// Encodes entries as `metadata.managedFields`, in upstream's order (operation, time,
/// manager, API version, subresource); `None` when there are none.
pub fn encode(entries: &[ManagedEntry]) -> Option<Value> {
    if entries.is_empty() {
        return None;
    }
    let mut sorted: Vec<&ManagedEntry> = entries.iter().collect();
    sorted.sort_by(|p, q| {
        let secs = |e: &ManagedEntry| e.time.as_deref().and_then(parse_time).unwrap_or(0);
        p.operation
            .cmp(&q.operation)
            .then_with(|| secs(p).cmp(&secs(q)))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let list = sorted
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            if !e.manager.is_empty() {
                m.insert("manager".into(), Value::String(e.manager.clone()));
            }
            m.insert(
                "operation".into(),
                Value::String(e.operation.as_str().into()),
            );
            m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
            if let Some(t) = &e.time {
                m.insert("time".into(), Value::String(t.clone()));
            }
            m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
            m.insert("fieldsV1".into(), e.fields.to_fields_v1());
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), Value::String(e.subresource.clone()));
            }
            Value::Object(m)
        })
        .collect();
    Some(Value::Array(list))
}

/// Folds the oldest `Update` entries into `ancient-changes` entries (one per API version)
/// while there are more than ten, as upstream does.
pub(crate) fn cap_update_managers(entries: &mut Vec<ManagedEntry>) {
    let updates = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .count();
    if updates <= MAX_UPDATE_MANAGERS {
        return;
    }
    let mut updaters: Vec<ManagedEntry> = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .cloned()
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let secs = |e: &ManagedEntry| e.time.as_deref().and_then(parse_time).unwrap_or(0);
    updaters.sort_by(|a, b| {
        secs(a)
            .cmp(&secs(b))
            .then_with(|| a.identifier().cmp(&b.identifier()))
    });
    let mut length = updaters.len();
    let mut first_by_version: BTreeMap<String, ManagedEntry> = BTreeMap::new();
    for u in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let bucket = ManagedEntry {
            manager: ANCIENT_CHANGES.to_owned(),
            operation: Operation::Update,
            api_version: u.api_version.clone(),
            subresource: String::new(),
            time: None,
            fields: FieldSet::new(),
        };
        if u.same_manager(&bucket) {
            continue;
        }
        let Some(first) = first_by_version.get(&u.api_version) else {
            first_by_version.insert(u.api_version.clone(), u);
            continue;
        };
        if !entries.iter().any(|e| e.same_manager(&bucket)) {
            // The first (oldest) entry of this version becomes the bucket.
            if let Some(e) = entries.iter_mut().find(|e| e.same_manager(first)) {
                e.manager = ANCIENT_CHANGES.to_owned();
                e.subresource = String::new();
            }
        }
        if let Some(b) = entries.iter_mut().find(|e| e.same_manager(&bucket)) {
            b.fields = u.fields.union(&b.fields);
            b.time = u.time.clone();
        }
        entries.retain(|e| !e.same_manager(&u));
        length -= 1;
    }
}

/// Seconds since the epoch of an RFC 3339 time (`2024-05-01T10:00:00Z`, fractions and
/// offsets allowed).
pub(crate) fn parse_time(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { t.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            let v = oh * 3600 + om * 60;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset)
}

/// An epoch time as RFC 3339 in UTC (`2024-05-01T10:00:00Z`).
pub(crate) fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

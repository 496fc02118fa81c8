//! Walking JSON values by their schema type: which values are leaves (scalars, atomic lists
//! and maps), which are granular objects and which are associative lists (items named by
//! key fields or, for sets, by value). On top of that: the field set of a value (what an
//! applier owns), the comparison of two values (what an update added, changed and removed)
//! and the "named fields are members" widening upstream uses when pruning.

use serde_json::{Map, Value};

use super::fieldset::FieldSet;
use super::path::{cmp_value, path_string, PathElement};
use crate::schema::{ListType, Node, Schemas, Struct, Ty};

/// A type: `None` is untyped (maps granular, lists atomic).
pub(crate) type TyRef<'a> = Option<&'a Ty>;

static ANY: Node = Node::Any;

/// Key fields whose absence means a default value (upstream's schemas carry these defaults;
/// the embedded OpenAPI v2 document does not): every `protocol` list-map key of the
/// built-in kinds defaults to `TCP`.
const KEY_DEFAULTS: &[(&str, &str)] = &[("protocol", "TCP")];

/// What kind of granular object a value is.
#[derive(Clone, Copy)]
pub(crate) enum ObjType<'a> {
    /// Known fields (others are untyped, or `extra`).
    Struct(&'a Struct),
    /// Every value of one type.
    Map(&'a Ty),
    /// Untyped.
    Any,
}

/// How a value is walked.
#[derive(Clone, Copy)]
pub(crate) enum Shape<'a> {
    /// Compared and owned as a whole.
    Leaf,
    /// A granular object.
    Object(ObjType<'a>),
    /// An associative list: by key fields, or by value when `keys` is `None`.
    List(TyRef<'a>, Option<&'a [String]>),
}

impl Shape<'_> {
    fn same_kind(&self, other: &Shape<'_>) -> bool {
        matches!(
            (self, other),
            (Shape::Leaf, Shape::Leaf)
                | (Shape::Object(_), Shape::Object(_))
                | (Shape::List(..), Shape::List(..))
        )
    }
}

/// The node a type stands for.
pub(crate) fn node<'a>(schemas: &'a Schemas, ty: TyRef<'a>) -> &'a Node {
    match ty {
        Some(t) => schemas.resolve(t),
        None => &ANY,
    }
}

/// How `v` is walked at type `ty` (a value not of the type's kind is a leaf).
pub(crate) fn shape_of<'a>(schemas: &'a Schemas, ty: TyRef<'a>, v: &Value) -> Shape<'a> {
    match (node(schemas, ty), v) {
        (Node::Any, Value::Object(_)) => Shape::Object(ObjType::Any),
        (Node::Struct(s), Value::Object(_)) if !s.atomic => Shape::Object(ObjType::Struct(s)),
        (Node::Map(m), Value::Object(_)) if !m.atomic => Shape::Object(ObjType::Map(&m.values)),
        (Node::List(l), Value::Array(_)) => match &l.list_type {
            ListType::Atomic => Shape::Leaf,
            ListType::Set => Shape::List(Some(&l.items), None),
            ListType::Map(keys) if keys.is_empty() => Shape::List(Some(&l.items), None),
            ListType::Map(keys) => Shape::List(Some(&l.items), Some(keys)),
        },
        _ => Shape::Leaf,
    }
}

/// The type of field `key` of an object, and whether it is a declared struct field.
pub(crate) fn field_ty<'a>(obj: ObjType<'a>, key: &str) -> (TyRef<'a>, bool) {
    match obj {
        ObjType::Struct(s) => match s.fields.get(key) {
            Some(f) => (Some(&f.ty), true),
            None => (s.extra.as_deref(), false),
        },
        ObjType::Map(values) => (Some(values), false),
        ObjType::Any => (None, false),
    }
}

/// The type below path element `pe` of a value of type `ty`, whatever the value.
pub(crate) fn child_ty<'a>(schemas: &'a Schemas, ty: TyRef<'a>, pe: &PathElement) -> TyRef<'a> {
    match (node(schemas, ty), pe) {
        (Node::Struct(s), PathElement::Field(name)) => match s.fields.get(name) {
            Some(f) => Some(&f.ty),
            None => s.extra.as_deref(),
        },
        (Node::Map(m), PathElement::Field(_)) => Some(&m.values),
        (Node::List(l), PathElement::Key(_) | PathElement::Value(_) | PathElement::Index(_)) => {
            Some(&l.items)
        }
        _ => None,
    }
}

/// The path element naming a list item: by its key fields, or by value for a set.
pub(crate) fn item_pe(keys: Option<&[String]>, item: &Value) -> Result<PathElement, String> {
    match keys {
        Some(keys) => {
            let m = match item {
                Value::Null => {
                    return Err("associative list with keys may not have a null element".into())
                }
                Value::Object(m) => m,
                _ => return Err("associative list with keys may not have non-map elements".into()),
            };
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = m.get(k) {
                    fields.push((k.clone(), v.clone()));
                } else if let Some((_, d)) = KEY_DEFAULTS.iter().find(|(n, _)| n == k) {
                    fields.push((k.clone(), Value::String((*d).to_owned())));
                }
            }
            if fields.is_empty() {
                let quoted: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
                return Err(format!(
                    "associative list with keys has an element that omits all key fields [{}] \
                     (and doesn't have default values for any key fields)",
                    quoted.join(" ")
                ));
            }
            Ok(PathElement::key(fields))
        }
        None => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(PathElement::value(v)),
        },
    }
}

/// Values equal as upstream compares them (numbers by value).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    cmp_value(a, b) == std::cmp::Ordering::Equal
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// Builds field sets; in strict mode (an applied configuration) it also checks the value
/// against its type and collects errors as `path: message`.
pub(crate) struct SetBuilder<'a> {
    pub schemas: &'a Schemas,
    pub strict: bool,
    pub errors: Vec<String>,
}

impl<'a> SetBuilder<'a> {
    /// A builder for live objects (lenient: duplicates allowed, mismatches are leaves).
    pub fn lenient(schemas: &'a Schemas) -> SetBuilder<'a> {
        SetBuilder {
            schemas,
            strict: false,
            errors: Vec::new(),
        }
    }

    /// A builder for applied configurations.
    pub fn strict(schemas: &'a Schemas) -> SetBuilder<'a> {
        SetBuilder {
            schemas,
            strict: true,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, path: &[PathElement], msg: String) {
        let p = path_string(path);
        self.errors.push(if p.is_empty() {
            msg
        } else {
            format!("{p}: {msg}")
        });
    }

    fn check_kind(&mut self, ty: TyRef<'a>, v: &Value, path: &[PathElement]) {
        if v.is_null() {
            return;
        }
        let msg = match node(self.schemas, ty) {
            Node::Scalar if v.is_object() || v.is_array() => {
                format!(
                    "expected string, number, integer or boolean, got {}",
                    kind_name(v)
                )
            }
            Node::Struct(_) | Node::Map(_) if !v.is_object() => format!("expected map, got {v}"),
            Node::List(_) if !v.is_array() => format!("expected list, got {v}"),
            _ => return,
        };
        self.error(path, msg);
    }

    /// The field set of `v` at type `ty`, with `path` as its location.
    pub fn field_set(&mut self, v: &Value, ty: TyRef<'a>) -> FieldSet {
        let mut set = FieldSet::new();
        self.walk(v, ty, &mut Vec::new(), &mut set);
        set
    }

    fn walk(&mut self, v: &Value, ty: TyRef<'a>, path: &mut Vec<PathElement>, set: &mut FieldSet) {
        if self.strict {
            self.check_kind(ty, v, path);
        }
        match shape_of(self.schemas, ty, v) {
            Shape::Leaf => set.insert(path),
            Shape::Object(obj) => {
                if let Value::Object(m) = v {
                    self.walk_object(obj, m, path, set);
                }
            }
            Shape::List(items, keys) => {
                if let Value::Array(list) = v {
                    self.walk_list(items, keys, list, path, set);
                }
            }
        }
    }

    fn walk_object(
        &mut self,
        obj: ObjType<'a>,
        m: &Map<String, Value>,
        path: &mut Vec<PathElement>,
        set: &mut FieldSet,
    ) {
        for (k, child) in m {
            let (cty, known) = field_ty(obj, k);
            path.push(PathElement::Field(k.clone()));
            self.walk(child, cty, path, set);
            let empty_map = matches!(child, Value::Object(c) if c.is_empty());
            if child.is_null() || empty_map || !known {
                set.insert(path);
            }
            path.pop();
        }
    }

    fn walk_list(
        &mut self,
        items: TyRef<'a>,
        keys: Option<&'a [String]>,
        list: &[Value],
        path: &mut Vec<PathElement>,
        set: &mut FieldSet,
    ) {
        let mut pes: Vec<Option<PathElement>> = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            match item_pe(keys, item) {
                Ok(pe) => pes.push(Some(pe)),
                Err(e) => {
                    if self.strict {
                        self.error(path, format!("element {i}: {e}"));
                    }
                    pes.push(None);
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut dups = std::collections::BTreeSet::new();
        for pe in pes.iter().flatten() {
            if !seen.insert(pe) && dups.insert(pe) {
                if self.strict {
                    self.error(path, format!("duplicate entries for key {pe}"));
                }
                path.push(pe.clone());
                set.insert(path);
                path.pop();
            }
        }
        for (item, pe) in list.iter().zip(pes.iter()) {
            let Some(pe) = pe else { continue };
            if dups.contains(pe) {
                continue;
            }
            path.push(pe.clone());
            self.walk(item, items, path, set);
            set.insert(path);
            path.pop();
        }
    }
}

/// What [`compare`] of `{}` with `new` finds added, built in one walk without the
/// comparison: every path of `new` (its leaves, and the non-empty objects and lists above
/// them) as a set, each level built once instead of inserting path by path from the root.
/// `None` when `new` is not a granular object at `ty` (then compare).
pub(crate) fn created(schemas: &Schemas, new: &Value, ty: TyRef<'_>) -> Option<FieldSet> {
    let Value::Object(m) = new else { return None };
    let Shape::Object(obj) = shape_of(schemas, ty, new) else {
        return None;
    };
    let mut set = FieldSet::new();
    created_fields(schemas, obj, m, &mut set);
    Some(set)
}

fn created_fields(schemas: &Schemas, obj: ObjType<'_>, m: &Map<String, Value>, set: &mut FieldSet) {
    for (k, v) in m {
        let (ty, _) = field_ty(obj, k);
        created_at(schemas, PathElement::Field(k.clone()), v, ty, set);
    }
}

/// Adds `pe`, holding `v`, to `set` (the level above it): as a member, and with its
/// paths below it unless it is a leaf or empty.
fn created_at(schemas: &Schemas, pe: PathElement, v: &Value, ty: TyRef<'_>, set: &mut FieldSet) {
    let mut below = FieldSet::new();
    match (shape_of(schemas, ty, v), v) {
        (Shape::Object(obj), Value::Object(m)) => created_fields(schemas, obj, m, &mut below),
        (Shape::List(items, keys), Value::Array(list)) => {
            // Items by path element; one named twice is only a member (compare's "added
            // twice"), items without a path element are skipped.
            let mut named: std::collections::BTreeMap<PathElement, (usize, &Value)> =
                std::collections::BTreeMap::new();
            for item in list {
                if let Ok(pe) = item_pe(keys, item) {
                    named.entry(pe).or_insert((0, item)).0 += 1;
                }
            }
            for (pe, (count, item)) in named {
                if count == 1 {
                    created_at(schemas, pe, item, items, &mut below);
                } else {
                    below.insert_member(pe);
                }
            }
        }
        _ => {}
    }
    set.set_child(pe.clone(), below);
    set.insert_member(pe);
}

/// What changed between two values: paths added, changed (leaves) and removed.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// Paths added or modified.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    /// Drops the paths at or below any member of `exclude` from all three sets.
    pub fn exclude(&mut self, exclude: &FieldSet) {
        self.added.remove_below(exclude);
        self.modified.remove_below(exclude);
        self.removed.remove_below(exclude);
    }
}

/// Compares `old` with `new` (both objects at type `ty`).
pub(crate) fn compare(schemas: &Schemas, old: &Value, new: &Value, ty: TyRef<'_>) -> Comparison {
    let mut c = Comparison::default();
    let mut w = Comparer {
        schemas,
        out: &mut c,
    };
    w.compare(Some(old), Some(new), ty, &mut Vec::new());
    c
}

struct Comparer<'s, 'c> {
    schemas: &'s Schemas,
    out: &'c mut Comparison,
}

impl<'s> Comparer<'s, '_> {
    fn leaf(&mut self, l: Option<&Value>, r: Option<&Value>, path: &[PathElement]) {
        match (l, r) {
            (None, _) => self.out.added.insert(path),
            (_, None) => self.out.removed.insert(path),
            (Some(a), Some(b)) if !values_equal(a, b) => self.out.modified.insert(path),
            _ => {}
        }
    }

    fn compare(
        &mut self,
        l: Option<&Value>,
        r: Option<&Value>,
        ty: TyRef<'s>,
        path: &mut Vec<PathElement>,
    ) {
        let sl = l.map(|v| shape_of(self.schemas, ty, v));
        let sr = r.map(|v| shape_of(self.schemas, ty, v));
        let shape = match (sl, sr) {
            (Some(a), Some(b)) if !a.same_kind(&b) => {
                // The kind changed: the old children went, the new ones came, the value changed.
                self.out.modified.insert(path);
                self.children(l, None, a, path);
                self.children(None, r, b, path);
                return;
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => return,
        };
        let empty = |v: Option<&Value>| match v {
            None => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        };
        if matches!(shape, Shape::Leaf) || (empty(l) && empty(r)) {
            self.leaf(l, r, path);
            return;
        }
        self.children(l, r, shape, path);
        if l.is_none() {
            self.out.added.insert(path);
        } else if r.is_none() {
            self.out.removed.insert(path);
        }
    }

    fn children(
        &mut self,
        l: Option<&Value>,
        r: Option<&Value>,
        shape: Shape<'s>,
        path: &mut Vec<PathElement>,
    ) {
        match shape {
            Shape::Leaf => {}
            Shape::Object(obj) => {
                let lm = l.and_then(Value::as_object);
                let rm = r.and_then(Value::as_object);
                let mut keys: Vec<&String> =
                    lm.into_iter().chain(rm).flat_map(|m| m.keys()).collect();
                if lm.is_some() && rm.is_some() {
                    // Keys of both maps: once each (the sets built do not depend on order).
                    keys.sort();
                    keys.dedup();
                }
                for k in keys {
                    let (cty, _) = field_ty(obj, k);
                    path.push(PathElement::Field(k.clone()));
                    self.compare(
                        lm.and_then(|m| m.get(k)),
                        rm.and_then(|m| m.get(k)),
                        cty,
                        path,
                    );
                    path.pop();
                }
            }
            Shape::List(items, keys) => {
                let ll = l
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let rl = r
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                self.list(items, keys, ll, rl, path);
            }
        }
    }

    fn list(
        &mut self,
        items: TyRef<'s>,
        keys: Option<&[String]>,
        l: &[Value],
        r: &[Value],
        path: &mut Vec<PathElement>,
    ) {
        // Items grouped by path element, in first-seen order (old items, then new ones).
        let mut order: Vec<PathElement> = Vec::new();
        let mut groups: std::collections::BTreeMap<PathElement, (Vec<&Value>, Vec<&Value>)> =
            std::collections::BTreeMap::new();
        for (side, list) in [(0, l), (1, r)] {
            for item in list {
                let Ok(pe) = item_pe(keys, item) else {
                    continue;
                };
                let g = groups.entry(pe.clone()).or_insert_with(|| {
                    order.push(pe);
                    (Vec::new(), Vec::new())
                });
                if side == 0 {
                    g.0.push(item)
                } else {
                    g.1.push(item)
                }
            }
        }
        for pe in order {
            let Some((ls, rs)) = groups.get(&pe) else {
                continue;
            };
            path.push(pe);
            match (ls.len(), rs.len()) {
                (0..=1, 0..=1) => {
                    self.compare(ls.first().copied(), rs.first().copied(), items, path)
                }
                (a, b) if a >= 2 && b >= 2 => {
                    let same = a == b && ls.iter().zip(rs.iter()).all(|(x, y)| values_equal(x, y));
                    if !same {
                        self.out.modified.insert(path);
                    }
                }
                (a, _) if a >= 2 => {
                    if let Some(first) = rs.first() {
                        self.compare(None, Some(first), items, path);
                    }
                    self.out.removed.insert(path);
                }
                _ => {
                    if let Some(first) = ls.first() {
                        self.compare(Some(first), None, items, path);
                    }
                    self.out.added.insert(path);
                }
            }
            path.pop();
        }
    }
}

/// `set` widened so that every declared struct field with paths below it is a member too
/// (upstream's `EnsureNamedFieldsAreMembers`).
pub(crate) fn ensure_named_fields(schemas: &Schemas, set: &FieldSet, ty: TyRef<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    for pe in set.members() {
        out.insert_member(pe.clone());
    }
    let st = match node(schemas, ty) {
        Node::Struct(s) => Some(s),
        _ => None,
    };
    for (pe, child) in set.children() {
        if let (Some(s), PathElement::Field(name)) = (st, pe) {
            if s.fields.contains_key(name) {
                out.insert_member(pe.clone());
            }
        }
        let widened = ensure_named_fields(schemas, child, child_ty(schemas, ty, pe));
        out.set_child(pe.clone(), widened);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::builtin;

    /// The one-walk set of a created object is exactly what comparing it with `{}` adds.
    #[test]
    fn created_is_compare_with_nothing() {
        let schemas = builtin();
        let pod_ty = schemas.kind("", "v1", "Pod").expect("Pod type");
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"a": "b"},
                         "annotations": {}, "finalizers": ["x/y", "x/y", "z/w"],
                         "ownerReferences": null},
            "spec": {
                "containers": [
                    {"name": "c", "image": "i", "ports": [
                        {"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"},
                        {"containerPort": 81, "protocol": "UDP"}],
                     "resources": {"limits": {"cpu": "1"}, "requests": {}},
                     "env": [{"name": "A", "value": "1"}, {"value": "no name"}],
                     "args": ["a", "a"]},
                    {"name": "d", "image": "j"}, {"name": "d", "image": "k"}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "nodeSelector": {"x": "y"},
                "volumes": [],
                "unknownField": {"nested": [1, 2, {"a": null}]}
            },
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}
        });
        let deploy_ty = schemas
            .kind("apps", "v1", "Deployment")
            .expect("Deployment type");
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "i"}]}}, "selector": {"matchLabels": {}}}});
        for (obj, ty) in [
            (pod, Some(&pod_ty)),
            (deploy, Some(&deploy_ty)),
            (json!({"a": {"b": [1, 2]}, "c": {}}), None),
            (json!({}), Some(&pod_ty)),
        ] {
            let want = compare(schemas, &json!({}), &obj, ty);
            assert_eq!(created(schemas, &obj, ty), Some(want.added), "{obj}");
            assert!(want.modified.is_empty() && want.removed.is_empty());
        }
        assert_eq!(created(schemas, &json!([1]), Some(&pod_ty)), None);
    }
}

//! Sets of field paths (what one manager owns), with upstream's set algebra and its
//! `FieldsV1` encoding: an object whose keys are serialized path elements, `{}` for a
//! member, nested objects for children and `"."` for "this element itself, which also has
//! children".

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::path::{go_json_string, Path, PathElement};

/// A set of field paths, as a tree: the elements at this level that are themselves in the
/// set (members), and the sub-sets below elements (children, never empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// A set of the given paths.
    pub fn from_paths<I: IntoIterator<Item = Path>>(paths: I) -> FieldSet {
        let mut s = FieldSet::new();
        for p in paths {
            s.insert(&p);
        }
        s
    }

    /// Whether the set has no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds a path (the empty path is ignored).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [pe] => {
                if !self.members.contains(pe) {
                    self.members.insert(pe.clone());
                }
            }
            // Elements are cloned only for levels the set does not have yet.
            [pe, rest @ ..] => match self.children.get_mut(pe) {
                Some(child) => child.insert(rest),
                None => {
                    let mut child = FieldSet::new();
                    child.insert(rest);
                    self.children.insert(pe.clone(), child);
                }
            },
        }
    }

    /// Adds a one-element path.
    pub fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    /// Whether the path is in the set.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [pe] => self.members.contains(pe),
            [pe, rest @ ..] => self.children.get(pe).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the one-element path `pe` is in the set.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths below `pe`, without it (`None` when there are none).
    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    /// The elements at this level that are members.
    pub fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    /// The elements at this level with paths below them, and those sub-sets.
    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    /// Replaces the sub-set below `pe` (removing it when `child` is empty).
    pub(crate) fn set_child(&mut self, pe: PathElement, child: FieldSet) {
        if child.is_empty() {
            self.children.remove(&pe);
        } else {
            self.children.insert(pe, child);
        }
    }

    /// The paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.intersection(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                out.set_child(pe.clone(), c.intersection(o));
            }
        }
        out
    }

    /// The paths of `self` not in `other` (a path's descendants stay unless they are in
    /// `other` too).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            match other.children.get(pe) {
                Some(o) => out.set_child(pe.clone(), c.difference(o)),
                None => out.set_child(pe.clone(), c.clone()),
            }
        }
        out
    }

    /// The paths of `self` that are neither in `other` nor below a member of `other`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            match other.children.get(pe) {
                Some(o) => out.set_child(pe.clone(), c.recursive_difference(o)),
                None => out.set_child(pe.clone(), c.clone()),
            }
        }
        out
    }

    /// Adds every path of `other` (an in-place [`union`](Self::union)).
    pub fn absorb(&mut self, other: FieldSet) {
        self.members.extend(other.members);
        for (pe, c) in other.children {
            match self.children.entry(pe) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().absorb(c),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(c);
                }
            }
        }
    }

    /// Removes the paths of `other` (an in-place [`difference`](Self::difference)).
    pub fn remove_all(&mut self, other: &FieldSet) {
        for m in &other.members {
            self.members.remove(m);
        }
        for (pe, o) in &other.children {
            if let Some(c) = self.children.get_mut(pe) {
                c.remove_all(o);
                if c.is_empty() {
                    self.children.remove(pe);
                }
            }
        }
    }

    /// Removes the paths of `other` and those below its members (an in-place
    /// [`recursive_difference`](Self::recursive_difference)).
    pub fn remove_below(&mut self, other: &FieldSet) {
        for m in &other.members {
            self.members.remove(m);
            self.children.remove(m);
        }
        for (pe, o) in &other.children {
            if let Some(c) = self.children.get_mut(pe) {
                c.remove_below(o);
                if c.is_empty() {
                    self.children.remove(pe);
                }
            }
        }
    }

    /// Every member path, in upstream's order (members of a level, then each child's).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` object of this set.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_object(false))
    }

    fn fields_v1_object(&self, include_self: bool) -> Map<String, Value> {
        let mut m = Map::new();
        if include_self && !self.is_empty() {
            m.insert(".".to_owned(), Value::Object(Map::new()));
        }
        for pe in &self.members {
            if !self.children.contains_key(pe) {
                m.insert(pe.to_fields_key(), Value::Object(Map::new()));
            }
        }
        for (pe, c) in &self.children {
            let inner = c.fields_v1_object(self.members.contains(pe));
            m.insert(pe.to_fields_key(), Value::Object(inner));
        }
        m
    }

    /// The `fieldsV1` object as the exact bytes upstream writes: keys in path element
    /// order (`.` first), Go's string escaping. (A `serde_json::Value` keeps its keys
    /// sorted as strings, which differs when two keys of one level sort differently as
    /// values, e.g. `k:{"port":80}` and `k:{"port":443}`.)
    pub fn to_fields_v1_string(&self) -> String {
        let mut out = String::new();
        self.write_fields_v1(&mut out, false);
        out
    }

    fn write_fields_v1(&self, out: &mut String, include_self: bool) {
        out.push('{');
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !first {
                out.push(',');
            }
            first = false;
        };
        if include_self && !self.is_empty() {
            sep(out);
            out.push_str("\".\":{}");
        }
        let mut members = self.members.iter().peekable();
        let mut children = self.children.iter().peekable();
        loop {
            let take_member = match (members.peek(), children.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(m), Some((c, _))) => *m < *c,
            };
            sep(out);
            if take_member {
                if let Some(pe) = members.next() {
                    go_json_string(out, &pe.to_fields_key());
                    out.push_str(":{}");
                }
            } else if let Some((pe, c)) = children.next() {
                let is_member = members.peek().is_some_and(|m| *m == pe);
                if is_member {
                    members.next();
                }
                go_json_string(out, &pe.to_fields_key());
                out.push(':');
                c.write_fields_v1(out, is_member);
            }
        }
        out.push('}');
    }

    /// Reads a `fieldsV1` object. Keys of unknown element types are dropped, as upstream
    /// does; anything else malformed is an error.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, String> {
        match v {
            Value::Null => Ok(FieldSet::new()),
            Value::Object(m) => {
                let (set, _) = read_level(m)?;
                Ok(set)
            }
            other => Err(format!("fieldsV1 must be an object, got {other}")),
        }
    }
}

/// Reads one level: the set below it, and whether it is itself a member (it has `.`, or
/// has nothing at all below it).
fn read_level(m: &Map<String, Value>) -> Result<(FieldSet, bool), String> {
    let mut set = FieldSet::new();
    let mut is_member = false;
    let mut any_child = false;
    for (key, v) in m {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::from_fields_key(key)? else {
            continue;
        };
        let inner = match v {
            Value::Object(inner) => inner,
            Value::Null => &Map::new(),
            other => return Err(format!("value of {key:?} must be an object, got {other}")),
        };
        let (child, child_member) = read_level(inner)?;
        any_child = true;
        if child_member {
            set.members.insert(pe.clone());
        }
        set.set_child(pe, child);
    }
    if !any_child {
        is_member = true;
    }
    Ok((set, is_member))
}

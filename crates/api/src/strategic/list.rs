//! List merging of strategic merge patch: lists of maps merged on a merge key (with the
//! `$patch: delete`/`replace` element directives), lists of primitives merged as ordered
//! sets (and `$deleteFromPrimitiveList`), and the ordering rules, `$setElementOrder`
//! included, that decide where merged, new and server-only elements end up.
//!
//! Order follows upstream: elements named by the patch (or by `$setElementOrder`) keep the
//! patch's relative order; elements only the server has keep theirs, and each is placed
//! before the first patch element that comes after it in the original list.

use serde_json::{Map, Value};

use super::gofmt::{self, GO_LIST, GO_MAP};
use super::{
    fresh, Cx, Sch, SmpError, BAD_PRIMITIVE_LIST, BAD_SET_ORDER, DIRECTIVE, NO_LIST_OF_LISTS,
    SET_ORDER,
};

/// The JSON type of list elements (a merge list's elements must share one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    List,
    Map,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Map,
    }
}

/// The common element type of `lists` (upstream's `sliceElementType`); `None` when they
/// are all empty. A first element that is itself a list is [`SmpError::Invalid`].
fn element_kind(lists: &[&[Value]]) -> Result<Option<Kind>, SmpError> {
    let mut prev = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = kind_of(v);
        match prev {
            None if k == Kind::List => return Err(SmpError::Invalid(NO_LIST_OF_LISTS.into())),
            None => prev = Some(k),
            Some(p) if p != k => {
                let all: Vec<String> = lists.iter().map(|l| gofmt::go_list(l)).collect();
                return Err(SmpError::bad(format!(
                    "list element types are not identical: [{}]",
                    all.join(" ")
                )));
            }
            Some(_) => {}
        }
    }
    Ok(prev)
}

/// How list elements are identified when ordering: by the value of the merge key (maps),
/// or by the whole value (primitives).
#[derive(Clone, Copy, Debug)]
struct Ident<'k> {
    key: Option<&'k str>,
}

impl Ident<'_> {
    fn of<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        match self.key {
            Some(k) => v.get(k),
            None => Some(v),
        }
    }

    /// Where `v` is in `list`, if it is.
    fn index(&self, list: &[Value], v: &Value) -> Option<usize> {
        let id = self.of(v);
        list.iter().position(|o| self.of(o) == id)
    }
}

/// Merges two lists of a `merge` field or a deletion list (upstream's `mergeSlice`).
pub(super) fn merge_slice(
    cx: &Cx<'_>,
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Sch<'_>,
    key: Option<&str>,
    is_delete: bool,
) -> Result<Vec<Value>, SmpError> {
    let Some(kind) = element_kind(&[&original, &patch])? else {
        return Ok(original);
    };
    if kind != Kind::Map {
        if is_delete {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only): (Vec<Value>, Vec<Value>) =
            merged.into_iter().partition(|v| patch.contains(v));
        return normalize(
            in_patch,
            server_only,
            &patch,
            &original,
            Ident { key: None },
        );
    }
    if is_delete {
        return Err(SmpError::bad(BAD_PRIMITIVE_LIST));
    }
    let Some(key) = key else {
        return Err(SmpError::bad(
            "cannot merge lists without merge key for struct",
        ));
    };
    let (base, plain) = special_elements(original, patch, key)?;
    let mut merged = base.clone();
    for p in &plain {
        let Value::Object(pm) = p else {
            return Err(gofmt::bad_arg_type(GO_MAP, p));
        };
        let Some(val) = pm.get(key) else {
            return Err(gofmt::no_merge_key(pm, key));
        };
        match merged.iter().position(|e| e.get(key) == Some(val)) {
            Some(i) => {
                let Some(slot) = merged.get_mut(i) else {
                    continue;
                };
                let om = match std::mem::take(slot) {
                    Value::Object(om) => om,
                    other => return Err(gofmt::bad_arg_type(GO_MAP, &other)),
                };
                match cx.merge_map(om, pm.clone(), items)? {
                    Some(m) => *slot = Value::Object(m),
                    None => {
                        merged.remove(i);
                    }
                }
            }
            None => {
                if let Some(v) = fresh(p.clone()) {
                    merged.push(v);
                }
            }
        }
    }
    let (in_patch, server_only) = partition_maps(merged, &plain, key)?;
    normalize(
        in_patch,
        server_only,
        &plain,
        &base,
        Ident { key: Some(key) },
    )
}

/// Applies the `$patch` elements of a merge-key list patch (upstream's
/// `mergeSliceWithSpecialElements`): deletions remove every matching element of
/// `original`; `replace` makes the other patch elements the whole list. Returns the list
/// to merge into and the plain patch elements.
fn special_elements(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut base = original;
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Value::Object(m) = &v else {
            return Err(gofmt::bad_arg_type(GO_MAP, &v));
        };
        let Some(d) = m.get(DIRECTIVE) else {
            plain.push(v);
            continue;
        };
        match d.as_str() {
            Some("delete") => {
                let Some(val) = m.get(key) else {
                    return Err(gofmt::no_merge_key(m, key));
                };
                base.retain(|e| e.get(key) != Some(val));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(SmpError::bad(
                    "merging lists cannot yet be specified in the patch",
                ))
            }
            _ => return Err(gofmt::bad_patch_type(d, m)),
        }
    }
    if replace {
        Ok((plain.into_iter().filter_map(fresh).collect(), Vec::new()))
    } else {
        Ok((base, plain))
    }
}

/// Splits maps into those whose merge key value appears in `by` and the rest
/// (upstream's `partitionMapsByPresentInList`).
fn partition_maps(
    merged: Vec<Value>,
    by: &[Value],
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut present = Vec::with_capacity(merged.len());
    let mut absent = Vec::new();
    for v in merged {
        let Value::Object(m) = &v else {
            return Err(gofmt::bad_arg_type(GO_MAP, &v));
        };
        let Some(val) = m.get(key) else {
            return Err(gofmt::no_merge_key(m, key));
        };
        if contains_key_value(by, key, val)? {
            present.push(v);
        } else {
            absent.push(v);
        }
    }
    Ok((present, absent))
}

/// Whether a map of `list` has `key` equal to `val`; a non-map met first is an error.
fn contains_key_value(list: &[Value], key: &str, val: &Value) -> Result<bool, SmpError> {
    for (i, e) in list.iter().enumerate() {
        let Value::Object(m) = e else {
            return Err(SmpError::bad(format!("value for key {i} is not a map")));
        };
        if m.get(key) == Some(val) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Orders a merged list (upstream's `normalizeElementOrder`): `in_patch` sorted by
/// `patch_order`, `server_only` sorted by `server_order`, then interleaved.
fn normalize(
    in_patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    id: Ident<'_>,
) -> Result<Vec<Value>, SmpError> {
    let in_patch = sort_by_order(in_patch, patch_order, id)?;
    let server_only = sort_by_order(server_only, server_order, id)?;
    Ok(merge_sorted(server_only, in_patch, server_order, id))
}

/// Stable-sorts `to_sort` by position in `order` (elements `order` lacks go last); for
/// maps, elements marked `$patch: delete` go after all others.
fn sort_by_order(
    to_sort: Vec<Value>,
    order: &[Value],
    id: Ident<'_>,
) -> Result<Vec<Value>, SmpError> {
    let (keep, deleted): (Vec<Value>, Vec<Value>) = match id.key {
        Some(k) => {
            require_merge_key(k, &to_sort)?;
            require_merge_key(k, order)?;
            to_sort
                .into_iter()
                .partition(|v| v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
        }
        None => (to_sort, Vec::new()),
    };
    let mut keyed: Vec<(usize, Value)> = keep
        .into_iter()
        .map(|v| (id.index(order, &v).unwrap_or(usize::MAX), v))
        .collect();
    keyed.sort_by_key(|(i, _)| *i);
    let mut out: Vec<Value> = keyed.into_iter().map(|(_, v)| v).collect();
    out.extend(deleted);
    Ok(out)
}

/// Every element of `list` is a map with `key` (upstream's `validateMergeKeyInLists`).
fn require_merge_key(key: &str, list: &[Value]) -> Result<(), SmpError> {
    for v in list {
        let Value::Object(m) = v else {
            return Err(gofmt::bad_arg_type(GO_MAP, v));
        };
        if !m.contains_key(key) {
            return Err(gofmt::no_merge_key(m, key));
        }
    }
    Ok(())
}

/// Interleaves the sorted `left` (server-only) into the sorted `right` (patch) elements
/// (upstream's `mergeSortedSlice`): a left element goes first only when both are in
/// `order` and it comes earlier there.
fn merge_sorted(left: Vec<Value>, right: Vec<Value>, order: &[Value], id: Ident<'_>) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (id.index(order, l), id.index(order, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

impl<'a> Cx<'a> {
    /// Processes every `$setElementOrder/<list>` directive of `patch` (upstream's
    /// `mergePatchIntoOriginal`): merges the list with its patch list, if any, and orders
    /// the result. Both directives and the merged patch lists leave `patch`.
    pub(super) fn set_element_orders(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        ty: Sch<'a>,
    ) -> Result<(), SmpError> {
        let keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ORDER))
            .cloned()
            .collect();
        for key in keys {
            let order = match patch.remove(&key) {
                Some(Value::Array(order)) => order,
                Some(other) => return Err(gofmt::bad_arg_type(GO_LIST, &other)),
                None => continue,
            };
            let field = match key
                .strip_prefix(SET_ORDER)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(f) if !f.is_empty() => f.to_owned(),
                _ => return Err(SmpError::bad(BAD_SET_ORDER)),
            };
            let orig_list = match original.get(&field) {
                None => None,
                Some(Value::Array(a)) => Some(a.clone()),
                Some(other) => return Err(gofmt::bad_arg_type(GO_LIST, other)),
            };
            let patch_list = match patch.remove(&field) {
                None => None,
                Some(Value::Array(a)) => Some(a),
                Some(other) => return Err(gofmt::bad_arg_type(GO_LIST, &other)),
            };
            let (sub, meta) = self.field(ty, &field);
            let items = self.items(sub);
            validate_order(patch_list.as_deref().unwrap_or(&[]), &order, meta.key)?;
            let kind = element_kind(&[
                orig_list.as_deref().unwrap_or(&[]),
                patch_list.as_deref().unwrap_or(&[]),
            ])?;
            let server_order = orig_list.clone().unwrap_or_default();
            let merged = match (orig_list, patch_list) {
                (None, None) => continue,
                (Some(o), None) => o,
                (None, Some(p)) => p.into_iter().filter_map(fresh).collect(),
                (Some(o), Some(p)) => self.merge_list(o, p, items, meta, false)?,
            };
            let ordered = if kind.is_none() {
                merged
            } else {
                let (in_order, server_only): (Vec<Value>, Vec<Value>) = match meta.key {
                    Some(k) => partition_maps(merged, &order, k)?,
                    None => merged.into_iter().partition(|v| order.contains(v)),
                };
                let id = Ident { key: meta.key };
                normalize(in_order, server_only, &order, &server_order, id)?
            };
            original.insert(field, Value::Array(ordered));
        }
        Ok(())
    }
}

/// Checks that the patch list's elements appear in the `$setElementOrder` list in the same
/// relative order (upstream's `validatePatchWithSetOrderList`; deletions are ignored).
fn validate_order(
    patch_list: &[Value],
    order: &[Value],
    key: Option<&str>,
) -> Result<(), SmpError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut kept: Vec<&Value> = Vec::with_capacity(patch_list.len());
    for e in patch_list {
        if key.is_some() {
            let Value::Object(m) = e else {
                return Err(gofmt::bad_arg_type(GO_MAP, e));
            };
            if m.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        kept.push(e);
    }
    let (mut pi, mut oi) = (0, 0);
    while let (Some(p), Some(o)) = (kept.get(pi), order.get(oi)) {
        if p.as_object().is_some_and(|m| m.contains_key(DIRECTIVE)) {
            pi += 1;
            continue;
        }
        if key_equal(p, o, key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < kept.len() {
        return Err(SmpError::bad(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER} list:\n{}\n",
            gofmt::go_list(patch_list),
            gofmt::go_list(order)
        )));
    }
    Ok(())
}

/// Whether two list elements are the same one: equal merge key values, or equal values.
fn key_equal(left: &Value, right: &Value, key: Option<&str>) -> Result<bool, SmpError> {
    let Some(key) = key else {
        return Ok(left == right);
    };
    let (Value::Object(l), Value::Object(r)) = (left, right) else {
        let bad = if left.is_object() { right } else { left };
        return Err(gofmt::bad_arg_type(GO_MAP, bad));
    };
    let Some(lv) = l.get(key) else {
        return Err(gofmt::no_merge_key(l, key));
    };
    let Some(rv) = r.get(key) else {
        return Err(gofmt::no_merge_key(r, key));
    };
    Ok(lv == rv)
}

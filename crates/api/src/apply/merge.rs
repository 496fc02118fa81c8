//! Changing values by their schema type: merging an applied configuration into the live
//! object (granular objects key by key, associative lists item by item, leaves replaced),
//! removing the items of a field set, and pruning what an applier stopped applying.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::fieldset::FieldSet;
use super::path::{path_string, PathElement};
use super::typed::{
    ensure_named_fields, field_ty, item_pe, shape_of, ObjType, SetBuilder, Shape, TyRef,
};
use crate::schema::Schemas;

/// Merges `config` into `live` at type `ty`. Errors are `path: message`.
pub(crate) fn merge(
    schemas: &Schemas,
    live: &Value,
    config: &Value,
    ty: TyRef<'_>,
) -> Result<Value, String> {
    let mut m = Merger {
        schemas,
        path: Vec::new(),
    };
    Ok(m.merge(Some(live), Some(config), ty)?
        .unwrap_or_else(|| Value::Object(Map::new())))
}

struct Merger<'s> {
    schemas: &'s Schemas,
    path: Vec<PathElement>,
}

impl<'s> Merger<'s> {
    fn err(&self, msg: String) -> String {
        let p = path_string(&self.path);
        if p.is_empty() {
            msg
        } else {
            format!("{p}: {msg}")
        }
    }

    fn merge(
        &mut self,
        l: Option<&Value>,
        r: Option<&Value>,
        ty: TyRef<'s>,
    ) -> Result<Option<Value>, String> {
        let r = match (l, r) {
            (_, Some(r)) => r,
            (Some(l), None) => return Ok(Some(l.clone())),
            (None, None) => return Ok(None),
        };
        let empty_map = Map::new();
        let sl = l.map(|l| shape_of(self.schemas, ty, l));
        match (shape_of(self.schemas, ty, r), r) {
            (Shape::Object(obj), Value::Object(rm)) => {
                let lm = match (l, sl) {
                    (None, _) => &empty_map,
                    (Some(Value::Object(lm)), Some(Shape::Object(_))) => lm,
                    _ => return Ok(Some(r.clone())),
                };
                if lm.is_empty() && rm.is_empty() {
                    return Ok(Some(r.clone()));
                }
                self.merge_object(obj, lm, rm)
            }
            (Shape::List(items, keys), Value::Array(rl)) => {
                let ll: &[Value] = match (l, sl) {
                    (None, _) => &[],
                    (Some(Value::Array(ll)), Some(Shape::List(..))) => ll,
                    _ => return Ok(Some(r.clone())),
                };
                if ll.is_empty() && rl.is_empty() {
                    return Ok(Some(r.clone()));
                }
                self.merge_list(items, keys, ll, rl)
            }
            _ => Ok(Some(r.clone())),
        }
    }

    fn merge_object(
        &mut self,
        obj: ObjType<'s>,
        l: &Map<String, Value>,
        r: &Map<String, Value>,
    ) -> Result<Option<Value>, String> {
        let mut out = Map::new();
        let keys: BTreeSet<&String> = l.keys().chain(r.keys()).collect();
        for k in keys {
            let (cty, _) = field_ty(obj, k);
            self.path.push(PathElement::Field(k.clone()));
            let merged = self.merge(l.get(k), r.get(k), cty);
            self.path.pop();
            match merged? {
                // An explicit null in a struct field clears it, as decoding into the typed
                // object does upstream.
                Some(Value::Null) if matches!(obj, ObjType::Struct(_)) && r.contains_key(k) => {}
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => {}
            }
        }
        Ok((!out.is_empty()).then_some(Value::Object(out)))
    }

    fn merge_list(
        &mut self,
        items: TyRef<'s>,
        keys: Option<&[String]>,
        l: &[Value],
        r: &[Value],
    ) -> Result<Option<Value>, String> {
        let mut rpes = Vec::with_capacity(r.len());
        let mut observed_r: BTreeMap<PathElement, &Value> = BTreeMap::new();
        for (i, item) in r.iter().enumerate() {
            let pe = item_pe(keys, item).map_err(|e| self.err(format!("element {i}: {e}")))?;
            if observed_r.insert(pe.clone(), item).is_some() {
                return Err(self.err(format!("duplicate entries for key {pe}")));
            }
            rpes.push(pe);
        }
        // Live items: duplicates are allowed (and merge as absent); an item that has no
        // path element keeps its place and never matches.
        let mut lpes = Vec::with_capacity(l.len());
        let mut observed_l: BTreeMap<PathElement, Option<&Value>> = BTreeMap::new();
        for (i, item) in l.iter().enumerate() {
            let pe = item_pe(keys, item).unwrap_or(PathElement::Index(i as i64));
            observed_l
                .entry(pe.clone())
                .and_modify(|v| *v = None)
                .or_insert(Some(item));
            lpes.push(pe);
        }
        let mut shared = rpes.iter().filter(|pe| observed_l.contains_key(*pe));
        let mut next_shared = shared.next();
        let mut merged_r: BTreeSet<&PathElement> = BTreeSet::new();
        let mut out = Vec::with_capacity(l.len().max(r.len()));
        let (mut li, mut ri) = (0, 0);
        while li < lpes.len() || ri < rpes.len() {
            if li < lpes.len() && ri < rpes.len() {
                let pe = &lpes[li];
                if *pe == rpes[ri] {
                    merged_r.insert(pe);
                    let lv = observed_l.get(pe).copied().flatten();
                    out.extend(self.item(items, pe, lv, observed_r.get(pe).copied())?);
                    li += 1;
                    ri += 1;
                    next_shared = shared.next();
                    continue;
                }
                if observed_r.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                    li += 1;
                    continue;
                }
            }
            if li < lpes.len() {
                let pe = &lpes[li];
                if !observed_r.contains_key(pe) {
                    out.extend(self.item(items, pe, Some(&l[li]), None)?);
                    li += 1;
                    continue;
                } else if merged_r.contains(pe) {
                    li += 1;
                }
            }
            if ri < rpes.len() {
                let pe = &rpes[ri];
                merged_r.insert(pe);
                let lv = observed_l.get(pe).copied().flatten();
                out.extend(self.item(items, pe, lv, observed_r.get(pe).copied())?);
                ri += 1;
                if next_shared == Some(pe) {
                    next_shared = shared.next();
                }
            }
        }
        Ok((!out.is_empty()).then_some(Value::Array(out)))
    }

    fn item(
        &mut self,
        items: TyRef<'s>,
        pe: &PathElement,
        l: Option<&Value>,
        r: Option<&Value>,
    ) -> Result<Option<Value>, String> {
        self.path.push(pe.clone());
        let out = self.merge(l, r, items);
        self.path.pop();
        out
    }
}

/// `v` without the members of `set` (a member goes with everything below it). Objects and
/// lists emptied by the removal go too (`None`).
pub(crate) fn remove_items(
    schemas: &Schemas,
    v: &Value,
    set: &FieldSet,
    ty: TyRef<'_>,
) -> Option<Value> {
    if set.is_empty() {
        return Some(v.clone());
    }
    match (shape_of(schemas, ty, v), v) {
        (Shape::Object(obj), Value::Object(m)) if !m.is_empty() => {
            let mut out = Map::new();
            for (k, child) in m {
                let pe = PathElement::Field(k.clone());
                if set.has_member(&pe) {
                    continue;
                }
                let kept = match set.child(&pe) {
                    Some(sub) => remove_items(schemas, child, sub, field_ty(obj, k).0),
                    None => Some(child.clone()),
                };
                if let Some(kept) = kept {
                    out.insert(k.clone(), kept);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (Shape::List(items, keys), Value::Array(list)) if !list.is_empty() => {
            let mut out = Vec::with_capacity(list.len());
            for item in list {
                let Ok(pe) = item_pe(keys, item) else {
                    out.push(item.clone());
                    continue;
                };
                if set.has_member(&pe) {
                    continue;
                }
                let kept = match set.child(&pe) {
                    Some(sub) => remove_items(schemas, item, sub, items),
                    None => Some(item.clone()),
                };
                out.extend(kept);
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => Some(v.clone()),
    }
}

fn remove_root(schemas: &Schemas, v: &Value, set: &FieldSet, ty: TyRef<'_>) -> Value {
    remove_items(schemas, v, set, ty).unwrap_or_else(|| Value::Object(Map::new()))
}

/// Removes from `merged` what the applier owned before (`last`) and no manager owns now
/// (`owned`: every manager's set, the applier's new one included), as upstream's prune:
/// remove all of `last`, add back whatever is owned, then remove only what came from
/// `last`.
pub(crate) fn prune(
    schemas: &Schemas,
    merged: &Value,
    last: &FieldSet,
    owned: &FieldSet,
    ty: TyRef<'_>,
) -> Value {
    if last.is_empty() {
        return merged.clone();
    }
    let ensure = |s: &FieldSet| ensure_named_fields(schemas, s, ty);
    let set_of = |v: &Value| ensure(&SetBuilder::lenient(schemas).field_set(v, ty));
    let last = ensure(last);
    let merged_set = set_of(merged);
    let pruned = remove_root(schemas, merged, &last, ty);
    let keep = set_of(&pruned).union(&ensure(owned));
    let pruned = remove_root(schemas, merged, &merged_set.difference(&keep), ty);
    let dangling = merged_set.difference(&set_of(&pruned)).intersection(&last);
    remove_root(schemas, merged, &dangling, ty)
}

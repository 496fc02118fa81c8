//! Patches applied to JSON objects: RFC 7386 JSON merge patch and RFC 6902 JSON patch
//! (`test` of a missing path against null passes, as upstream's library and kube-runtime's
//! finalizer helper expect). Strategic merge and apply patches come with the declarative
//! API.

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Why a JSON patch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is not a list of operations.
    #[error("invalid JSON patch: {0}")]
    Malformed(String),
    /// An operation could not be applied.
    #[error("{0}")]
    Failed(String),
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PatchError::Malformed(format!(
            "path {path:?} must start with '/'"
        )));
    };
    Ok(rest.split('/').map(unescape).collect())
}

fn index(token: &str, len: usize, allow_end: bool) -> Result<usize, PatchError> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let i: usize = token
        .parse()
        .map_err(|_| PatchError::Failed(format!("invalid array index {token:?}")))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(PatchError::Failed(format!(
            "array index {i} out of bounds (length {len})"
        )));
    }
    Ok(i)
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in path {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn parent_mut<'a>(doc: &'a mut Value, path: &[String]) -> Result<&'a mut Value, PatchError> {
    let mut cur = doc;
    for t in path {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| PatchError::Failed(format!("missing path element {t:?}")))?,
            Value::Array(a) => {
                let i = index(t, a.len(), false)?;
                &mut a[i]
            }
            _ => return Err(PatchError::Failed(format!("cannot descend into {t:?}"))),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), PatchError> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = index(last, a.len(), true)?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(PatchError::Failed(format!("cannot add at {last:?}"))),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, PatchError> {
    let Some((last, parent)) = path.split_last() else {
        return Err(PatchError::Failed(
            "cannot remove the whole document".into(),
        ));
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| PatchError::Failed(format!("unable to remove nonexistent key: {last}"))),
        Value::Array(a) => {
            let i = index(last, a.len(), false)?;
            Ok(a.remove(i))
        }
        _ => Err(PatchError::Failed(format!("cannot remove {last:?}"))),
    }
}

/// RFC 6902: applies every operation in order; the document is unchanged on failure.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::Malformed(
            "the patch must be a JSON array".into(),
        ));
    };
    let mut work = doc.clone();
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed("an operation has no \"op\"".into()))?;
        let path = split_pointer(
            op.get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| PatchError::Malformed(format!("{name}: missing \"path\"")))?,
        )?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::Malformed(format!("{name}: missing \"value\"")))
        };
        let from = || -> Result<Vec<String>, PatchError> {
            split_pointer(
                op.get("from")
                    .and_then(Value::as_str)
                    .ok_or_else(|| PatchError::Malformed(format!("{name}: missing \"from\"")))?,
            )
        };
        match name {
            "add" => add(&mut work, &path, value()?)?,
            "remove" => {
                remove(&mut work, &path)?;
            }
            "replace" => {
                if get(&work, &path).is_none() {
                    return Err(PatchError::Failed(format!(
                        "replace operation does not apply: doc is missing key: {}",
                        path.join("/")
                    )));
                }
                if path.is_empty() {
                    work = value()?;
                } else {
                    remove(&mut work, &path)?;
                    add(&mut work, &path, value()?)?;
                }
            }
            "move" => {
                let v = remove(&mut work, &from()?)?;
                add(&mut work, &path, v)?;
            }
            "copy" => {
                let v = get(&work, &from()?)
                    .cloned()
                    .ok_or_else(|| PatchError::Failed("copy: from path is missing".into()))?;
                add(&mut work, &path, v)?;
            }
            "test" => {
                let want = value()?;
                let got = get(&work, &path).unwrap_or(&Value::Null);
                if *got != want {
                    return Err(PatchError::Failed(format!(
                        "testing value /{} failed",
                        path.join("/")
                    )));
                }
            }
            other => {
                return Err(PatchError::Malformed(format!(
                    "unknown operation {other:?}"
                )));
            }
        }
    }
    *doc = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2, 3]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
                {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
                {"op": "remove", "path": "/list/0"},
                {"op": "add", "path": "/list/-", "value": 9},
                {"op": "copy", "from": "/list/0", "path": "/first"},
                {"op": "move", "from": "/first", "path": "/moved"},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"labels": {"a": "2"}, "finalizers": ["x"]}, "list": [2, 3, 9], "moved": 2})
        );
        let before = doc.clone();
        assert!(json_patch(
            &mut doc,
            &json!([{"op": "test", "path": "/moved", "value": 3}])
        )
        .is_err());
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&mut doc, &json!({"op": "add"})).is_err());
        assert!(json_patch(&mut doc, &json!([{"op": "jump", "path": "/a"}])).is_err());
        assert_eq!(doc, before);
    }
}

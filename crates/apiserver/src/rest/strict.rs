//! Duplicate fields in a JSON body: `serde_json` keeps the last of two equal keys silently,
//! so bodies are parsed here with a check for them when `fieldValidation` asks (Strict →
//! 400, Warn → a warning each), with upstream's wording: `duplicate field "spec.replicas"`.
//! The check is part of the one parse that builds the body's value.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses a JSON body as `serde_json::from_slice` does (same value, same errors), with the
/// dotted paths of keys that appear twice in one object, in document order.
pub fn parse_with_duplicates(body: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Build {
        at: None,
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, found))
}

/// The dotted paths of keys that appear twice in one object, in document order (none for
/// a body that is not JSON: it fails elsewhere with a better message).
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    parse_with_duplicates(body)
        .map(|(_, found)| found)
        .unwrap_or_default()
}

/// One step from the root: a key or a list index.
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// Where the scan is, as a chain of steps back to the root: only written out as a path
/// for a duplicate, so clean bodies cost no string building.
struct At<'p> {
    parent: Option<&'p At<'p>>,
    step: Step<'p>,
}

fn path_of(at: &At<'_>) -> String {
    let mut steps = vec![&at.step];
    let mut cur = at.parent;
    while let Some(a) = cur {
        steps.push(&a.step);
        cur = a.parent;
    }
    let mut out = String::new();
    for step in steps.into_iter().rev() {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

struct Build<'f, 'p> {
    at: Option<&'p At<'p>>,
    found: &'f mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Build<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let found = self.found;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let here = At {
                parent: self.at,
                step: Step::Key(&key),
            };
            if out.contains_key(&key) {
                found.push(path_of(&here));
            }
            let value = map.next_value_seed(Build {
                at: Some(&here),
                found: &mut *found,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let found = self.found;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let here = At {
                parent: self.at,
                step: Step::Index(out.len()),
            };
            let next = seq.next_element_seed(Build {
                at: Some(&here),
                found: &mut *found,
            })?;
            match next {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicates_with_their_paths() {
        let body = br#"{"a":1,"spec":{"replicas":1,"replicas":2,"list":[{"x":1,"x":2}]},"a":3}"#;
        assert_eq!(
            duplicate_fields(body),
            ["spec.replicas", "spec.list[0].x", "a"]
        );
        assert!(duplicate_fields(br#"{"a":{"b":1},"c":{"b":2}}"#).is_empty());
        assert!(duplicate_fields(b"not json").is_empty());
        // Reported where the second key starts, before what is inside its value.
        assert_eq!(
            duplicate_fields(br#"{"s":{},"s":{"x":1,"x":2}}"#),
            ["s", "s.x"]
        );
    }

    #[test]
    fn parses_as_serde_json_does() {
        let body = br#" {"a":[1,-2,3.5,1e300,true,null,"\u00e9x",{}],"b":{"c":18446744073709551615},"b":0} "#;
        let (value, dups) = parse_with_duplicates(body).unwrap();
        let plain: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(value, plain);
        assert_eq!(dups, ["b"]);
        for bad in [&b"{"[..], b"{} x", b"[1,]", b"", b"[1e400]"] {
            let ours = parse_with_duplicates(bad).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<Value>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(ours, theirs);
        }
    }
}

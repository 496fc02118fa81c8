//! Duplicate fields in a JSON body: `serde_json` keeps the last of two equal keys silently,
//! so bodies are scanned once more for them when `fieldValidation` asks (Strict → 400, Warn
//! → a warning each), with upstream's wording: `duplicate field "spec.replicas"`.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The dotted paths of keys that appear twice in one object, in document order.
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    // A body that is not JSON fails elsewhere with a better message.
    let _ = Scan {
        at: None,
        found: &mut found,
    }
    .deserialize(&mut de);
    found
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

struct Scan<'f, 'p> {
    at: Option<&'p At<'p>>,
    found: &'f mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Scan<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let found = self.found;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let here = At {
                parent: self.at,
                step: Step::Key(&key),
            };
            if seen.contains(&key) {
                found.push(path_of(&here));
            }
            map.next_value_seed(Scan {
                at: Some(&here),
                found: &mut *found,
            })?;
            seen.insert(key);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let found = self.found;
        let mut i = 0;
        loop {
            let here = At {
                parent: self.at,
                step: Step::Index(i),
            };
            let next = seq.next_element_seed(Scan {
                at: Some(&here),
                found: &mut *found,
            })?;
            if next.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
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
    }
}

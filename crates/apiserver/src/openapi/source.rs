//! The documents' source: upstream's OpenAPI v2 document, embedded in `tug_api::schema`.
//!
//! It is never held parsed as a whole. [`read`] goes through it once, handing each entry of
//! `paths` and `definitions` to a [`Visit`]or (which may skip it unparsed) and dropping it
//! before the next: a document is built with little more memory than its own bytes (a
//! parsed copy of the swagger would cost tens of MiB, which the allocator keeps). What
//! stays resident between builds is only [`builtin`]'s summary: the group-versions the
//! document has paths for and a digest of its bytes.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::OnceLock;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::custom::CustomKind;

/// The two large sections of the document, read entry by entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// `paths`: path → path item.
    Paths,
    /// `definitions`: name → schema.
    Definitions,
}

/// What to do with the document's parts while it is read.
pub(crate) trait Visit {
    /// A section starts.
    fn begin(&mut self, _section: Section) {}
    /// Whether to parse this entry (or skip it without keeping anything).
    fn want(&mut self, _section: Section, _name: &str) -> bool {
        true
    }
    /// An entry that was wanted.
    fn entry(&mut self, section: Section, name: String, value: Value);
    /// A section ends.
    fn end(&mut self, _section: Section) {}
    /// Any other top-level key (`info`, `parameters`, `security`…).
    fn other(&mut self, _key: String, _value: Value) {}
}

/// Reads an OpenAPI v2 document (JSON) into `visit`.
pub(crate) fn read(json: &[u8], visit: &mut dyn Visit) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    de.deserialize_map(TopLevel(visit))?;
    de.end()
}

struct TopLevel<'a>(&'a mut dyn Visit);

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OpenAPI v2 document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let section = match key.as_str() {
                "paths" => Section::Paths,
                "definitions" => Section::Definitions,
                _ => {
                    let value: Value = map.next_value()?;
                    self.0.other(key, value);
                    continue;
                }
            };
            map.next_value_seed(Entries {
                visit: &mut *self.0,
                section,
            })?;
        }
        Ok(())
    }
}

struct Entries<'a> {
    visit: &'a mut dyn Visit,
    section: Section,
}

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.visit.begin(self.section);
        while let Some(name) = map.next_key::<String>()? {
            if self.visit.want(self.section, &name) {
                let value: Value = map.next_value()?;
                self.visit.entry(self.section, name, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        self.visit.end(self.section);
        Ok(())
    }
}

/// The names a schema (or any part of a document) refers to with `#/definitions/<name>`.
pub(crate) fn refs_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(obj) => {
            for (key, value) in obj {
                match (key.as_str(), value) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/definitions/") {
                            out.push(name.to_owned());
                        }
                    }
                    _ => refs_in(value, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// The group-version a path belongs to, as the v3 index names it: `api/v1` for `/api/v1/…`,
/// `apis/<g>/<v>` for `/apis/<g>/<v>/…`; `None` for paths outside any group-version
/// (`/api/`, `/apis/<g>/`, `/version/`…).
pub(crate) fn group_version_of(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    match parts.next()? {
        "api" => {
            let version = parts.next().filter(|v| !v.is_empty())?;
            Some(format!("api/{version}"))
        }
        "apis" => {
            let group = parts.next().filter(|g| !g.is_empty())?;
            let version = parts.next().filter(|v| !v.is_empty())?;
            Some(format!("apis/{group}/{version}"))
        }
        _ => None,
    }
}

/// What is kept of the built-in document between requests.
#[derive(Debug, Default)]
pub(crate) struct Builtin {
    /// The group-versions it has paths for (`api/v1`, `apis/apps/v1`…).
    pub group_versions: BTreeSet<String>,
    /// A digest of its bytes: part of every document's version hash.
    pub digest: u64,
}

impl Visit for Builtin {
    fn want(&mut self, section: Section, name: &str) -> bool {
        if section == Section::Paths {
            self.group_versions.extend(group_version_of(name));
        }
        false
    }

    fn entry(&mut self, _: Section, _: String, _: Value) {}
}

impl Builtin {
    /// Reads the group-versions of a document's paths, keeping nothing else.
    pub fn scan(json: &[u8]) -> Result<Builtin, serde_json::Error> {
        let mut out = Builtin::default();
        read(json, &mut out)?;
        let mut hasher = DefaultHasher::new();
        json.hash(&mut hasher);
        out.digest = hasher.finish();
        Ok(out)
    }
}

/// The summary of the embedded document, read once.
pub(crate) fn builtin() -> &'static Builtin {
    static BUILTIN: OnceLock<Builtin> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        Builtin::scan(&tug_api::schema::swagger_json()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the embedded OpenAPI document does not parse");
            Builtin::default()
        })
    })
}

/// A version hash: changes whenever what it is computed from changes.
pub(crate) fn version_hash(digest: u64, gv: Option<&str>, kinds: &[&CustomKind]) -> String {
    let mut h = DefaultHasher::new();
    digest.hash(&mut h);
    gv.hash(&mut h);
    for k in kinds {
        (&k.group, &k.version, &k.kind, &k.list_kind, &k.plural).hash(&mut h);
        (k.namespaced, k.status, k.scale).hash(&mut h);
        k.schema.to_string().hash(&mut h);
    }
    format!("{:016X}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_group_versions() {
        assert_eq!(group_version_of("/api/v1/").as_deref(), Some("api/v1"));
        assert_eq!(
            group_version_of("/api/v1/namespaces/{namespace}/pods").as_deref(),
            Some("api/v1")
        );
        assert_eq!(
            group_version_of("/apis/apps/v1/deployments").as_deref(),
            Some("apis/apps/v1")
        );
        assert_eq!(
            group_version_of("/apis/apps/v1").as_deref(),
            Some("apis/apps/v1")
        );
        for outside in [
            "/api/",
            "/apis/",
            "/apis/apps/",
            "/version/",
            "/logs/{path}",
            "",
        ] {
            assert_eq!(group_version_of(outside), None, "{outside}");
        }
    }

    #[test]
    fn the_builtin_document_has_the_usual_group_versions() {
        let b = builtin();
        for gv in [
            "api/v1",
            "apis/apps/v1",
            "apis/batch/v1",
            "apis/apiextensions.k8s.io/v1",
        ] {
            assert!(b.group_versions.contains(gv), "{gv}");
        }
        assert!(!b.group_versions.contains("apis/apps"));
        assert_ne!(b.digest, 0);
    }

    #[derive(Default)]
    struct Record(Vec<String>);

    impl Visit for Record {
        fn begin(&mut self, s: Section) {
            self.0.push(format!("begin {s:?}"));
        }
        fn want(&mut self, _: Section, name: &str) -> bool {
            name != "skip"
        }
        fn entry(&mut self, s: Section, name: String, value: Value) {
            self.0.push(format!("{s:?} {name}={value}"));
        }
        fn end(&mut self, s: Section) {
            self.0.push(format!("end {s:?}"));
        }
        fn other(&mut self, key: String, value: Value) {
            self.0.push(format!("{key}={value}"));
        }
    }

    #[test]
    fn read_hands_over_entries_in_order() {
        let mut r = Record::default();
        read(
            br#"{"info": {"title": "t"}, "definitions": {"A": {"type": "string"}, "skip": [1, {"x": 2}]},
                 "paths": {"/p": {}}}"#,
            &mut r,
        )
        .unwrap();
        assert_eq!(
            r.0,
            [
                r#"info={"title":"t"}"#,
                "begin Definitions",
                r#"Definitions A={"type":"string"}"#,
                "end Definitions",
                "begin Paths",
                "Paths /p={}",
                "end Paths",
            ]
        );
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            &b"{"[..],
            b"{\"paths\": []}",
            b"[1]",
            b"{} trailing",
            b"{\"definitions\": {\"A\": }}",
        ] {
            assert!(read(bad, &mut Record::default()).is_err());
        }
        assert!(Builtin::scan(b"[1]").is_err());
        assert!(Builtin::scan(b"{}").unwrap().group_versions.is_empty());
    }

    #[test]
    fn refs_are_found_anywhere() {
        let mut refs = Vec::new();
        refs_in(
            &serde_json::json!({
                "properties": { "a": { "$ref": "#/definitions/A" },
                                "b": { "items": { "$ref": "#/definitions/B" } } },
                "allOf": [{ "$ref": "#/definitions/C" }, { "$ref": "#/parameters/D" }],
                "$ref": 3,
            }),
            &mut refs,
        );
        refs.sort();
        assert_eq!(refs, ["A", "B", "C"]);
    }

    #[test]
    fn version_hashes_follow_custom_kinds() {
        let a = super::super::custom::tests::crontab();
        let mut b = a.clone();
        let base = version_hash(1, Some("apis/x/v1"), &[&a]);
        assert_eq!(base, version_hash(1, Some("apis/x/v1"), &[&a]));
        b.scale = false;
        assert_ne!(base, version_hash(1, Some("apis/x/v1"), &[&b]));
        assert_ne!(base, version_hash(2, Some("apis/x/v1"), &[&a]));
        assert_ne!(base, version_hash(1, Some("apis/x/v1"), &[]));
    }
}

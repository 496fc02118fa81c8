//! The OpenAPI v2 document as JSON with the custom kinds' paths and definitions merged in,
//! written while the built-in document is read (see [`super::source`]): nothing but the
//! output is ever held whole.

use serde_json::Value;

use super::custom::{self, CustomKind, Flavor};
use super::source::{self, Section, Visit};

/// The built-in document `json` with `custom` added (their v2 flavour).
pub(crate) fn write(json: &[u8], custom: &[CustomKind]) -> Result<Vec<u8>, serde_json::Error> {
    let mut w = Writer {
        out: Vec::with_capacity(json.len() + 64 * 1024),
        first_key: true,
        first_entry: true,
        paths: Vec::new(),
        definitions: Vec::new(),
        seen: Vec::new(),
        error: None,
    };
    for kind in custom {
        w.paths.extend(custom::paths(kind));
        w.definitions.extend(custom::definitions(kind, Flavor::V2));
    }
    w.out.push(b'{');
    source::read(json, &mut w)?;
    for section in [Section::Paths, Section::Definitions] {
        if !w.seen.contains(&section) {
            w.begin(section);
            w.end(section);
        }
    }
    w.out.push(b'}');
    match w.error {
        Some(e) => Err(e),
        None => Ok(w.out),
    }
}

struct Writer {
    out: Vec<u8>,
    first_key: bool,
    first_entry: bool,
    /// Custom entries, written at the end of their section.
    paths: Vec<(String, Value)>,
    definitions: Vec<(String, Value)>,
    seen: Vec<Section>,
    /// The first failure to write (writing to memory does not fail in practice).
    error: Option<serde_json::Error>,
}

impl Writer {
    fn json(&mut self, v: &impl serde::Serialize) {
        if let Err(e) = serde_json::to_writer(&mut self.out, v) {
            self.error.get_or_insert(e);
        }
    }

    fn key(&mut self, key: &str) {
        if !std::mem::take(&mut self.first_key) {
            self.out.push(b',');
        }
        self.json(&key);
        self.out.push(b':');
    }

    fn entry_of(&mut self, name: &str, value: &Value) {
        if !std::mem::take(&mut self.first_entry) {
            self.out.push(b',');
        }
        self.json(&name);
        self.out.push(b':');
        self.json(value);
    }

    fn custom(&self, section: Section) -> &[(String, Value)] {
        match section {
            Section::Paths => &self.paths,
            Section::Definitions => &self.definitions,
        }
    }
}

impl Visit for Writer {
    fn begin(&mut self, section: Section) {
        self.key(match section {
            Section::Paths => "paths",
            Section::Definitions => "definitions",
        });
        self.out.push(b'{');
        self.first_entry = true;
    }

    fn want(&mut self, section: Section, name: &str) -> bool {
        // A custom entry of the same name replaces the built-in one.
        !self.custom(section).iter().any(|(n, _)| n == name)
    }

    fn entry(&mut self, _: Section, name: String, value: Value) {
        self.entry_of(&name, &value);
    }

    fn end(&mut self, section: Section) {
        let entries = match section {
            Section::Paths => std::mem::take(&mut self.paths),
            Section::Definitions => std::mem::take(&mut self.definitions),
        };
        for (name, value) in &entries {
            self.entry_of(name, value);
        }
        self.out.push(b'}');
        self.seen.push(section);
    }

    fn other(&mut self, key: String, value: Value) {
        self.key(&key);
        self.json(&value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::custom::tests::crontab;

    #[test]
    fn custom_kinds_are_merged_into_the_builtin_document() {
        let json = tug_api::schema::swagger_json();
        let out = write(&json, &[crontab()]).unwrap();
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        assert!(doc["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
        assert!(doc["definitions"]["com.example.stable.v1.CronTab"].is_object());
        assert!(doc["paths"]["/apis/apps/v1/deployments"].is_object());
        assert!(doc["paths"]["/apis/stable.example.com/v1/crontabs"].is_object());
        assert!(doc["parameters"]["pretty-tJGM1-ng"].is_object());
        let unchanged: Value = serde_json::from_slice(&write(&json, &[]).unwrap()).unwrap();
        let original: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(unchanged, original);
    }

    #[test]
    fn missing_sections_and_replaced_entries() {
        let out = write(br#"{"info": {}}"#, &[crontab()]).unwrap();
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["paths"].as_object().unwrap().len(), 5);
        assert_eq!(doc["definitions"].as_object().unwrap().len(), 2);
        let out = write(
            br#"{"definitions": {"com.example.stable.v1.CronTab": {"old": true}}}"#,
            &[crontab()],
        )
        .unwrap();
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert!(doc["definitions"]["com.example.stable.v1.CronTab"]["old"].is_null());
        assert!(write(b"{\"paths\": 1}", &[]).is_err());
    }
}

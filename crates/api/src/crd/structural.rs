//! A version's `openAPIV3Schema` compiled for use on objects: upstream's structural schema
//! (types, properties, items, additionalProperties and the `x-kubernetes-*` extensions) plus
//! the value validations kube-openapi checks (bounds, lengths, patterns, enums, the logical
//! junctors `allOf`/`anyOf`/`oneOf`/`not`), with patterns compiled once.
//!
//! [`Structural`] is the public face; the algorithms live in `validate.rs`, `defaults.rs`,
//! `prune.rs` and `listtype.rs`.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use regex::Regex;
use serde_json::Value;

use super::formats::{go_regex, kept_format};
use crate::strategy::FieldError;

/// Why a schema cannot be compiled (upstream's `NewStructural` errors, plus patterns this
/// implementation cannot compile).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A JSON-schema keyword CRDs do not support (`id`, `$schema`, `$ref`,
    /// `patternProperties`, `dependencies`, `additionalItems`, `definitions`).
    #[error("OpenAPIV3Schema '{0}' is not supported")]
    Unsupported(&'static str),
    /// `items` given as an array of schemas.
    #[error("OpenAPIV3Schema 'items' must be a schema, but is an array")]
    ItemsArray,
    /// `x-kubernetes-preserve-unknown-fields: false`.
    #[error("internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined")]
    PreserveUnknownFalse,
    /// A `pattern` that is not a valid regular expression.
    #[error("invalid pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's complaint.
        reason: String,
    },
}

/// A compiled `pattern`: the source (for messages) and the regex.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    pub source: String,
    pub re: Regex,
}

/// `additionalProperties`: a bare boolean or a schema.
#[derive(Clone, Debug)]
pub(crate) enum Additional {
    Allows(bool),
    Schema(Box<Schema>),
}

/// One schema node. Logical junctors hold nodes of the same type (kube-openapi validates
/// them as full schemas too).
#[derive(Clone, Debug, Default)]
pub(crate) struct Schema {
    pub ty: String,
    pub nullable: bool,
    /// The format as kube-openapi keeps it (unsupported formats are dropped), or empty.
    pub format: String,
    pub default: Option<Value>,
    pub properties: BTreeMap<String, Schema>,
    pub additional: Option<Additional>,
    pub items: Option<Box<Schema>>,
    pub preserve_unknown: bool,
    pub int_or_string: bool,
    pub embedded: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub multiple_of: Option<f64>,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub pattern: Option<Pattern>,
    pub unique_items: bool,
    pub enum_: Vec<Value>,
    pub required: Vec<String>,
    pub all_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
}

/// The first unsupported keyword of a node, as upstream's `validateUnsupportedFields`.
pub(crate) fn unsupported_field(p: &JSONSchemaProps) -> Option<SchemaError> {
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    let unsupported = if set(&p.id) {
        "id"
    } else if set(&p.schema) {
        "schema"
    } else if set(&p.ref_path) {
        "$ref"
    } else if p.pattern_properties.as_ref().is_some_and(|m| !m.is_empty()) {
        "patternProperties"
    } else if p.dependencies.as_ref().is_some_and(|m| !m.is_empty()) {
        "dependencies"
    } else if p.additional_items.is_some() {
        "additionalItems"
    } else if p.definitions.as_ref().is_some_and(|m| !m.is_empty()) {
        "definitions"
    } else {
        return None;
    };
    Some(SchemaError::Unsupported(unsupported))
}

/// Compiles a pattern with Go's (RE2) meaning of the Perl classes.
pub(crate) fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    Regex::new(&go_regex(pattern)).map_err(|e| e.to_string())
}

impl Schema {
    /// Compiles one node and everything below it.
    pub(crate) fn compile(p: &JSONSchemaProps) -> Result<Schema, SchemaError> {
        if let Some(e) = unsupported_field(p) {
            return Err(e);
        }
        if p.x_kubernetes_preserve_unknown_fields == Some(false) {
            return Err(SchemaError::PreserveUnknownFalse);
        }
        let ty = p.type_.clone().unwrap_or_default();
        let int_or_string = p.x_kubernetes_int_or_string.unwrap_or(false);
        let pattern = match p.pattern.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(src) => Some(Pattern {
                source: src.to_owned(),
                re: compile_pattern(src).map_err(|reason| SchemaError::Pattern {
                    pattern: src.to_owned(),
                    reason,
                })?,
            }),
        };
        let items = match &p.items {
            None => None,
            Some(JSONSchemaPropsOrArray::Schemas(_)) => return Err(SchemaError::ItemsArray),
            Some(JSONSchemaPropsOrArray::Schema(s)) => Some(Box::new(Schema::compile(s)?)),
        };
        let additional = match &p.additional_properties {
            None => None,
            Some(JSONSchemaPropsOrBool::Bool(b)) => Some(Additional::Allows(*b)),
            Some(JSONSchemaPropsOrBool::Schema(s)) => {
                Some(Additional::Schema(Box::new(Schema::compile(s)?)))
            }
        };
        let mut properties = BTreeMap::new();
        for (name, prop) in p.properties.iter().flatten() {
            properties.insert(name.clone(), Schema::compile(prop)?);
        }
        let list = |v: &Option<Vec<JSONSchemaProps>>| -> Result<Vec<Schema>, SchemaError> {
            v.iter().flatten().map(Schema::compile).collect()
        };
        Ok(Schema {
            format: kept_format(&ty, int_or_string, p.format.as_deref().unwrap_or("")),
            ty,
            nullable: p.nullable.unwrap_or(false),
            default: p
                .default
                .as_ref()
                .map(|d| d.0.clone())
                .filter(|d| !d.is_null()),
            properties,
            additional,
            items,
            preserve_unknown: p.x_kubernetes_preserve_unknown_fields == Some(true),
            int_or_string,
            embedded: p.x_kubernetes_embedded_resource.unwrap_or(false),
            list_type: p.x_kubernetes_list_type.clone(),
            list_map_keys: p.x_kubernetes_list_map_keys.clone().unwrap_or_default(),
            maximum: p.maximum,
            exclusive_maximum: p.exclusive_maximum.unwrap_or(false),
            minimum: p.minimum,
            exclusive_minimum: p.exclusive_minimum.unwrap_or(false),
            multiple_of: p.multiple_of,
            max_length: p.max_length,
            min_length: p.min_length,
            max_items: p.max_items,
            min_items: p.min_items,
            max_properties: p.max_properties,
            min_properties: p.min_properties,
            pattern,
            unique_items: p.unique_items.unwrap_or(false),
            enum_: p.enum_.iter().flatten().map(|e| e.0.clone()).collect(),
            required: p.required.clone().unwrap_or_default(),
            all_of: list(&p.all_of)?,
            any_of: list(&p.any_of)?,
            one_of: list(&p.one_of)?,
            not: match &p.not {
                Some(n) => Some(Box::new(Schema::compile(n)?)),
                None => None,
            },
        })
    }

    /// The schema of `additionalProperties`, when it is one.
    pub(crate) fn additional_schema(&self) -> Option<&Schema> {
        match &self.additional {
            Some(Additional::Schema(s)) => Some(s),
            _ => None,
        }
    }

    /// The schema that applies to the field `k` of an object of this schema, if any.
    pub(crate) fn field_schema(&self, k: &str) -> Option<&Schema> {
        self.properties.get(k).or_else(|| self.additional_schema())
    }
}

/// One version's schema (`spec.versions[*].schema.openAPIV3Schema`), compiled.
///
/// Build it once per CRD version with [`Structural::new`]; it then validates, defaults and
/// prunes custom resources of that version.
#[derive(Clone, Debug)]
pub struct Structural {
    pub(crate) root: Schema,
}

impl Structural {
    /// Compiles a version's `openAPIV3Schema`. Fails on keywords CRDs do not support and on
    /// patterns that do not compile; [`super::validate_crd`] reports both (and everything
    /// else that makes a schema non-structural) with upstream's messages.
    pub fn new(props: &JSONSchemaProps) -> Result<Structural, SchemaError> {
        Ok(Structural {
            root: Schema::compile(props)?,
        })
    }

    /// Validates a custom resource (JSON as stored or sent: apiVersion, kind, metadata,
    /// spec...) as upstream's custom resource strategy does on create and update:
    /// `metadata.name`/`generateName` as DNS subdomains, the schema (kube-openapi's checks
    /// and messages), embedded resources' type and object meta, and the uniqueness of
    /// `x-kubernetes-list-type: set`/`map` lists. Empty when valid.
    ///
    /// Namespace, labels and the other `ObjectMeta` rules are left to
    /// [`crate::strategy::validate`]; CEL rules are not evaluated.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = super::objectmeta::validate_root_name(obj);
        errs.extend(super::validate::validate_value(&self.root, "", obj));
        errs.extend(super::objectmeta::validate_embedded(
            &self.root, "", obj, false,
        ));
        errs.extend(super::listtype::validate_lists(&self.root, "", obj));
        errs
    }

    /// Fills `default`s into an object (upstream applies this when decoding a request and
    /// when reading from storage): a missing field, or a null one that is not nullable, of a
    /// present object gets a copy of its schema's default; never creates missing parents.
    pub fn default(&self, obj: &mut Value) {
        super::defaults::apply_defaults(&self.root, obj);
    }

    /// Drops what the schema does not know, as upstream does before defaulting a request:
    /// fields not in the schema (unless `x-kubernetes-preserve-unknown-fields`; at the root
    /// and in embedded resources `apiVersion`, `kind` and `metadata` stay), nulls of
    /// non-nullable fields without a default, and `metadata` fields `ObjectMeta` does not
    /// have (or that are malformed). Returns the paths of the dropped unknown fields, sorted
    /// (`spec.foo`, `metadata.bar`), for `fieldValidation` warnings.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        super::prune::prune_object(&self.root, obj)
    }
}

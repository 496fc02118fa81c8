//! Validation of a value against a compiled schema, as kube-openapi's `SchemaValidator` does
//! it for custom resources, with its messages turned into field errors as upstream's
//! `kubeOpenAPIResultToFieldErrors` turns them: `Required value`, `Unsupported value`,
//! `Too long`, `Too many`, a type error as `Invalid value: "string": spec.replicas in body
//! must be of type integer: "string"`, everything else as `Invalid value` with kube-openapi's
//! text (`spec.size in body should be less than or equal to 10`).
//!
//! Per node the checks run in kube-openapi's order: type, logical junctors, string
//! (maxLength, minLength, pattern: the first failure only), format, number, array, enum,
//! object. Messages name the value by its path below the validated value (`spec.replicas`),
//! which is also the field path, below `base` when one is given.

use serde_json::{Map, Value};

use super::child;
use super::formats::{format_ok, go_float, is_json_integer};
use super::structural::{Additional, Schema};
use crate::strategy::{go_quote, not_supported, too_long, too_many, ErrorType, FieldError};

/// Validates `data` against `s`. `base` is the field path the value sits at ("" for a whole
/// object: upstream's nil path, printed `<nil>` where an error names no field).
pub(crate) fn validate_value(s: &Schema, base: &str, data: &Value) -> Vec<FieldError> {
    let mut out = Vec::new();
    Validator { base }.node(s, "", data, &mut out);
    out
}

/// A number as Go's JSON decoding produces it: int64 when it fits, float64 otherwise.
#[derive(Clone, Copy, Debug)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(n: &serde_json::Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Whether a number fits the node's type and format, as kube-openapi's
/// `IsValueValidAgainstRange` (integers must be integral and within int32/int64, float
/// numbers within float32).
fn in_range(n: Num, type_name: &str, format: &str) -> bool {
    const I64: f64 = 9_223_372_036_854_775_808.0;
    match (type_name, n) {
        ("integer", Num::Int(i)) => format != "int32" || i32::try_from(i).is_ok(),
        ("integer", Num::Float(f)) => {
            let (lo, hi) = if format == "int32" {
                (f64::from(i32::MIN), f64::from(i32::MAX))
            } else {
                (-I64, I64 - 1.0)
            };
            f.fract() == 0.0 && f >= lo && f <= hi
        }
        (_, n) if format == "float" => n.as_f64().abs() <= f64::from(f32::MAX),
        _ => true,
    }
}

struct Validator<'a> {
    base: &'a str,
}

impl Validator<'_> {
    /// The field path of an error kube-openapi reports for `name`.
    fn path(&self, name: &str) -> String {
        if name.is_empty() || name == "." {
            self.plain_path()
        } else {
            child(self.base, name.strip_prefix('.').unwrap_or(name))
        }
    }

    /// The field path of errors that are not field validations (upstream: the base path,
    /// `<nil>` when there is none).
    fn plain_path(&self) -> String {
        if self.base.is_empty() {
            "<nil>".to_owned()
        } else {
            self.base.to_owned()
        }
    }

    fn invalid(&self, name: &str, bad: Value, detail: String) -> FieldError {
        FieldError {
            kind: ErrorType::Invalid,
            field: self.path(name),
            bad_value: Some(bad),
            detail,
        }
    }

    /// A non-validation error (junctors, range checks): `field.Invalid(base, "", msg)`.
    fn plain(&self, detail: String) -> FieldError {
        FieldError {
            kind: ErrorType::Invalid,
            field: self.plain_path(),
            bad_value: Some(Value::from("")),
            detail,
        }
    }

    /// kube-openapi's `InvalidType`: `<name> in body must be of type <t>: "<found>"`.
    fn type_error(&self, name: &str, expected: &str, found: &str) -> FieldError {
        FieldError {
            kind: ErrorType::TypeInvalid,
            field: self.path(name),
            bad_value: Some(Value::from(found)),
            detail: format!(
                "{name} in body must be of type {expected}: {}",
                go_quote(found)
            ),
        }
    }

    fn node(&self, s: &Schema, name: &str, data: &Value, out: &mut Vec<FieldError>) {
        if data.is_null() {
            self.check_type(s, name, data, out);
            self.check_enum(s, name, data, out);
            return;
        }
        self.check_type(s, name, data, out);
        self.junctors(s, name, data, out);
        match data {
            Value::String(text) => {
                self.check_string(s, name, text, out);
                if !s.format.is_empty() && !format_ok(&s.format, text) {
                    out.push(FieldError {
                        kind: ErrorType::TypeInvalid,
                        field: self.path(name),
                        bad_value: Some(data.clone()),
                        detail: format!(
                            "{name} in body must be of type {}: {}",
                            s.format,
                            go_quote(text)
                        ),
                    });
                }
            }
            Value::Number(n) => self.check_number(s, name, Num::of(n), data, out),
            Value::Array(items) => self.check_array(s, name, items, out),
            _ => {}
        }
        self.check_enum(s, name, data, out);
        if let Value::Object(map) = data {
            self.check_object(s, name, map, out);
        }
    }

    fn check_type(&self, s: &Schema, name: &str, data: &Value, out: &mut Vec<FieldError>) {
        let single = [s.ty.as_str()];
        let types: &[&str] = if s.int_or_string {
            &["integer", "string"]
        } else if s.ty.is_empty() {
            &[]
        } else {
            &single
        };
        if types.is_empty() && s.format.is_empty() {
            return;
        }
        let joined = types.join(",");
        let (found, found_format) = match data {
            Value::Null => {
                if !types.is_empty() && !s.nullable {
                    out.push(self.type_error(name, &joined, "null"));
                }
                return;
            }
            Value::Bool(_) => ("boolean", ""),
            Value::String(_) => ("string", ""),
            Value::Number(n) => match Num::of(n) {
                Num::Int(_) => ("integer", "int64"),
                Num::Float(_) => ("number", "float64"),
            },
            Value::Array(_) => ("array", ""),
            Value::Object(_) => ("object", ""),
        };
        let has = |t: &str| types.contains(&t);
        let float_int =
            found == "number" && data.as_f64().is_some_and(is_json_integer) && has("integer");
        let int_float = found == "integer" && has("number");
        let text_like = data.is_string() || data.is_array();
        let format_fits = has(found) || found_format == s.format || float_int || int_float;
        if !(text_like || s.format.is_empty() || format_fits) {
            out.push(self.type_error(name, &s.format, found_format));
            return;
        }
        if text_like && !(has("number") || has("integer") || s.format.is_empty()) {
            return;
        }
        if !(has(found) || float_int || int_float) {
            out.push(self.type_error(name, &joined, found));
        }
    }

    fn check_string(&self, s: &Schema, name: &str, text: &str, out: &mut Vec<FieldError>) {
        let len = text.chars().count() as i64;
        if let Some(max) = s.max_length.filter(|&m| len > m) {
            out.push(too_long(self.path(name), usize::try_from(max).unwrap_or(0)));
        } else if let Some(min) = s.min_length.filter(|&m| len < m) {
            out.push(self.invalid(
                name,
                Value::from(text),
                format!("{name} in body should be at least {min} chars long"),
            ));
        } else if let Some(p) = s.pattern.as_ref().filter(|p| !p.re.is_match(text)) {
            out.push(self.invalid(
                name,
                Value::from(text),
                format!("{name} in body should match '{}'", p.source),
            ));
        }
    }

    fn check_number(
        &self,
        s: &Schema,
        name: &str,
        n: Num,
        data: &Value,
        out: &mut Vec<FieldError>,
    ) {
        let (type_name, format) = match (s.int_or_string, s.ty.as_str()) {
            (false, "integer") => (
                "integer",
                if matches!(s.format.as_str(), "int32" | "int64") {
                    s.format.as_str()
                } else {
                    ""
                },
            ),
            (false, "number") => (
                "number",
                if matches!(s.format.as_str(), "float" | "double") {
                    s.format.as_str()
                } else {
                    ""
                },
            ),
            _ => ("", ""),
        };
        if !in_range(n, type_name, format) {
            let kind = if format.is_empty() {
                format!("{type_name} (default format)")
            } else {
                format!("{type_name} with format {format}")
            };
            out.push(self.plain(format!("Checked value must be of type {kind} in {name}")));
        }
        // Bounds that fit the type compare natively (an int64 value against the bound cut to
        // an integer); others compare as floats.
        let native = |bound: f64| in_range(Num::Float(bound), type_name, format);
        if let Some(factor) = s.multiple_of {
            match (native(factor), n) {
                (true, Num::Int(v)) => {
                    let f = factor as i64;
                    if f <= 0 {
                        out.push(self.invalid(
                            name,
                            Value::from(f),
                            format!("factor MultipleOf declared for {name} must be positive: {f}"),
                        ));
                    } else if v % f != 0 {
                        out.push(self.invalid(
                            name,
                            data.clone(),
                            format!("{name} in body should be a multiple of {f}"),
                        ));
                    }
                }
                (_, n) => {
                    let v = n.as_f64();
                    if factor <= 0.0 {
                        out.push(self.invalid(
                            name,
                            Value::from(factor),
                            format!(
                                "factor MultipleOf declared for {name} must be positive: {}",
                                go_float(factor)
                            ),
                        ));
                    } else {
                        let mult = if factor < 1.0 {
                            1.0 / factor * v
                        } else {
                            v / factor
                        };
                        if !is_json_integer(mult) {
                            out.push(self.invalid(
                                name,
                                data.clone(),
                                format!(
                                    "{name} in body should be a multiple of {}",
                                    go_float(factor)
                                ),
                            ));
                        }
                    }
                }
            }
        }
        let bound = |b: f64, above: bool, exclusive: bool| -> Option<String> {
            let (fails, shown) = match (native(b), n) {
                (true, Num::Int(v)) => {
                    let b = b as i64;
                    let fails = match (above, exclusive) {
                        (true, false) => v > b,
                        (true, true) => v >= b,
                        (false, false) => v < b,
                        (false, true) => v <= b,
                    };
                    (fails, b.to_string())
                }
                (_, n) => {
                    let v = n.as_f64();
                    let fails = match (above, exclusive) {
                        (true, false) => v > b,
                        (true, true) => v >= b,
                        (false, false) => v < b,
                        (false, true) => v <= b,
                    };
                    (fails, go_float(b))
                }
            };
            let words = match (above, exclusive) {
                (true, false) => "less than or equal to",
                (true, true) => "less than",
                (false, false) => "greater than or equal to",
                (false, true) => "greater than",
            };
            fails.then(|| format!("{name} in body should be {words} {shown}"))
        };
        if let Some(msg) = s.minimum.and_then(|b| bound(b, false, s.exclusive_minimum)) {
            out.push(self.invalid(name, data.clone(), msg));
        }
        if let Some(msg) = s.maximum.and_then(|b| bound(b, true, s.exclusive_maximum)) {
            out.push(self.invalid(name, data.clone(), msg));
        }
    }

    fn check_array(&self, s: &Schema, name: &str, items: &[Value], out: &mut Vec<FieldError>) {
        if let Some(item_schema) = &s.items {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, &format!("{name}[{i}]"), item, out);
            }
        }
        let size = items.len() as i64;
        if let Some(min) = s.min_items.filter(|&m| size < m) {
            out.push(self.invalid(
                name,
                Value::from(size),
                format!("{name} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = s.max_items.filter(|&m| size > m) {
            out.push(too_many(
                self.path(name),
                items.len(),
                usize::try_from(max).unwrap_or(0),
            ));
        }
        if s.unique_items
            && items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].iter().any(|b| b == a))
        {
            out.push(self.invalid(
                name,
                Value::from(""),
                format!("{name} in body shouldn't contain duplicates"),
            ));
        }
    }

    fn check_enum(&self, s: &Schema, name: &str, data: &Value, out: &mut Vec<FieldError>) {
        if s.enum_.is_empty() || s.enum_.iter().any(|e| enum_matches(e, data)) {
            return;
        }
        let allowed: Vec<String> = s
            .enum_
            .iter()
            .map(|e| match e {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect();
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        out.push(not_supported(self.path(name), data.clone(), &allowed));
    }

    fn check_object(
        &self,
        s: &Schema,
        name: &str,
        map: &Map<String, Value>,
        out: &mut Vec<FieldError>,
    ) {
        let size = map.len() as i64;
        if let Some(min) = s.min_properties.filter(|&m| size < m) {
            out.push(self.invalid(
                name,
                Value::from(size),
                format!("{name} in body should have at least {min} properties"),
            ));
        }
        if let Some(max) = s.max_properties.filter(|&m| size > m) {
            out.push(too_many(
                self.path(name),
                map.len(),
                usize::try_from(max).unwrap_or(0),
            ));
        }
        match &s.additional {
            Some(Additional::Allows(false)) => {
                for k in map.keys().filter(|k| !s.properties.contains_key(*k)) {
                    out.push(self.invalid(
                        name,
                        Value::from(k.as_str()),
                        format!("{name}.{k} in body is a forbidden property"),
                    ));
                }
            }
            Some(Additional::Schema(extra)) => {
                for (k, v) in map.iter().filter(|(k, _)| !s.properties.contains_key(*k)) {
                    self.node(extra, &format!("{name}.{k}"), v, out);
                }
            }
            _ => {}
        }
        for (prop, prop_schema) in &s.properties {
            if let Some(v) = map.get(prop) {
                self.node(prop_schema, &child(name, prop), v, out);
            }
        }
        for k in s.required.iter().filter(|k| !map.contains_key(*k)) {
            out.push(FieldError {
                kind: ErrorType::Required,
                field: self.path(&format!("{name}.{k}")),
                bad_value: None,
                detail: String::new(),
            });
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`. Where upstream keeps the failures of the
    /// alternative that matched best, this keeps those of the one with the fewest errors.
    fn junctors(&self, s: &Schema, name: &str, data: &Value, out: &mut Vec<FieldError>) {
        let quoted = go_quote(name);
        let run = |alt: &Schema| {
            let mut errs = Vec::new();
            self.node(alt, name, data, &mut errs);
            errs
        };
        let fewest = |results: Vec<Vec<FieldError>>| results.into_iter().min_by_key(Vec::len);
        if !s.any_of.is_empty() {
            let results: Vec<Vec<FieldError>> = s.any_of.iter().map(run).collect();
            if !results.iter().any(Vec::is_empty) {
                out.push(self.plain(format!(
                    "{quoted} must validate at least one schema (anyOf)"
                )));
                out.extend(fewest(results).unwrap_or_default());
            }
        }
        if !s.one_of.is_empty() {
            let results: Vec<Vec<FieldError>> = s.one_of.iter().map(run).collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            if valid != 1 {
                let found = if valid == 0 {
                    "Found none valid".to_owned()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                out.push(self.plain(format!(
                    "{quoted} must validate one and only one schema (oneOf). {found}"
                )));
                if valid == 0 {
                    out.extend(fewest(results).unwrap_or_default());
                }
            }
        }
        if !s.all_of.is_empty() {
            let mut valid = 0;
            for alt in &s.all_of {
                let errs = run(alt);
                valid += usize::from(errs.is_empty());
                out.extend(errs);
            }
            if valid != s.all_of.len() {
                let extra = if valid == 0 { ". None validated" } else { "" };
                out.push(self.plain(format!(
                    "{quoted} must validate all the schemas (allOf){extra}"
                )));
            }
        }
        if let Some(not) = &s.not {
            if run(not).is_empty() {
                out.push(self.plain(format!("{quoted} must not validate the schema (not)")));
            }
        }
    }
}

/// Whether a value equals an enum member: the same JSON, or numbers of equal value.
fn enum_matches(member: &Value, data: &Value) -> bool {
    match (member, data) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        _ => member == data,
    }
}

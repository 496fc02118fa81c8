//! Label and field selectors as upstream's apimachinery parses and matches them
//! (`k8s.io/apimachinery/pkg/labels` and `pkg/fields`), with upstream's error texts, plus
//! the per-kind field sets the API server's registries let field selectors use.
//!
//! [`LabelSelector`] parses the `labelSelector=` query parameter (and converts a
//! `metav1.LabelSelector` as `LabelSelectorAsSelector` does); [`FieldSelector`] parses
//! `fieldSelector=`, checks its fields against the kind ([`supported_fields`]) and matches
//! objects as served, reading their values with [`field_value`].

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

use crate::strategy::{go_quote, is_valid_label_value, qualified_name_errors};

mod fields;

pub use fields::{field_value, supported_fields, FieldSelector};

/// Why a selector string was refused; Display gives upstream's message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector (string or `metav1.LabelSelector`) that does not parse or validate;
    /// the text is upstream's, e.g. `unable to parse requirement: found '', expected: …`.
    #[error("{0}")]
    Label(String),
    /// A field selector string that does not parse, e.g.
    /// `invalid selector: 'a'; can't understand 'a'`.
    #[error("{0}")]
    Field(String),
    /// A field the kind does not accept, for kinds with a field set of their own (pods,
    /// nodes, events…) and for custom resources.
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
    /// A field a kind with only the default field set (`metadata.name`,
    /// `metadata.namespace`) does not accept; upstream's `DefaultMetaV1FieldSelectorConversion`
    /// words it differently.
    #[error(
        "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
        go_quote(.0)
    )]
    UnknownField(String),
    /// A field batch/v1 Jobs do not accept (their conversion has its own wording).
    #[error("field label {} not supported for Job", go_quote(.0))]
    FieldLabelNotSupportedForJob(String),
}

/// Go's `%#v` for a `[]string` (a nil one when empty, as the callers here pass).
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_owned();
    }
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Upstream's `field.Invalid(path, value, detail).Error()`; `value` is already rendered.
fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value}: {detail}")
}

/// Upstream's aggregate of errors: duplicates dropped, several in brackets.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    if seen.len() == 1 {
        seen.concat()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

/// A label key's errors: those of a qualified name, the message calling it "a valid label key".
fn label_key_errors(key: &str) -> Vec<String> {
    qualified_name_errors(key, "a valid label key")
}

/// A requirement's operator (upstream's `selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One requirement: a key, an operator and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    /// Upstream's `NewRequirement`, with its validation and messages (no field path).
    fn new(key: &str, op: Op, values: Vec<String>) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", &go_quote(key), &key_errs.join("; ")));
        }
        let vals = go_string_slice(&values);
        match op {
            Op::In | Op::NotIn if values.is_empty() => errs.push(invalid(
                "values",
                &vals,
                "for 'in', 'notin' operators, values set can't be empty",
            )),
            Op::Equals | Op::DoubleEquals | Op::NotEquals if values.len() != 1 => {
                errs.push(invalid(
                    "values",
                    &vals,
                    "exact-match compatibility requires one single value",
                ))
            }
            Op::Exists | Op::DoesNotExist if !values.is_empty() => errs.push(invalid(
                "values",
                &vals,
                "values set must be empty for exists and does not exist",
            )),
            Op::Gt | Op::Lt => {
                if values.len() != 1 {
                    errs.push(invalid(
                        "values",
                        &vals,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            &go_quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    &go_quote(v),
                    &value_errs.join("; "),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key: key.to_owned(),
                op,
                values,
            })
        } else {
            Err(SelectorError::Label(aggregate(errs)))
        }
    }

    fn matches<'v>(&self, get: &impl Fn(&str) -> Option<&'v str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Op::In | Op::Equals | Op::DoubleEquals => get(&self.key).is_some_and(has),
            Op::NotIn | Op::NotEquals => !get(&self.key).is_some_and(has),
            Op::Exists => get(&self.key).is_some(),
            Op::DoesNotExist => get(&self.key).is_none(),
            Op::Gt | Op::Lt => {
                let (Some(have), [want]) = (get(&self.key), self.values.as_slice()) else {
                    return false;
                };
                match (have.parse::<i64>(), want.parse::<i64>()) {
                    (Ok(have), Ok(want)) if self.op == Op::Gt => have > want,
                    (Ok(have), Ok(want)) => have < want,
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Op::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            Op::Exists | Op::DoesNotExist => return Ok(()),
            Op::Equals => "=",
            Op::DoubleEquals => "==",
            Op::NotEquals => "!=",
            Op::In => " in ",
            Op::NotIn => " notin ",
            Op::Gt => ">",
            Op::Lt => "<",
        };
        let mut values = self.values.clone();
        values.sort();
        let set = matches!(self.op, Op::In | Op::NotIn);
        let (open, close) = if set { ("(", ")") } else { ("", "") };
        write!(f, "{op}{open}{}{close}", values.join(","))
    }
}

/// A parsed label selector (`labelSelector=` query parameter).
///
/// Display gives upstream's `String()` form (requirements sorted by key, values sorted),
/// as `metav1.FormatLabelSelector` and a scale subresource's `status.selector` show it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses upstream's syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`,
    /// `!a`, comma-separated, whitespace tolerant; also `a>3`/`a<3` (Gt/Lt, integer values)
    /// as upstream. Empty string = everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            items: lex(s),
            pos: 0,
        };
        let mut requirements = parser.parse().map_err(SelectorError::Label)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// From a metav1.LabelSelector (matchLabels + matchExpressions with
    /// In/NotIn/Exists/DoesNotExist), validating it as upstream's LabelSelectorAsSelector
    /// does.
    pub fn from_k8s(sel: &metav1::LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(k, Op::Equals, vec![v.clone()])?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => {
                    return Err(SelectorError::Label(format!(
                        "{} is not a valid label selector operator",
                        go_quote(other)
                    )))
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expr.key, op, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether labels (looked up by key) match.
    ///
    /// The looked-up values may borrow from anything that outlives the call (a label map
    /// captured by the closure), not only from the key.
    pub fn matches<'v>(&self, get: impl Fn(&str) -> Option<&'v str>) -> bool {
        self.requirements.iter().all(|r| r.matches(&get))
    }

    /// Convenience: matches a JSON object's `metadata.labels` map (a missing map = no
    /// labels).
    pub fn matches_object(&self, obj: &serde_json::Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(|l| l.as_object());
        self.matches(|k| labels.and_then(|l| l.get(k)).and_then(|v| v.as_str()))
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// A token of upstream's label selector lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    Gt,
    Ident,
    In,
    Lt,
    NotEquals,
    NotIn,
    OpenPar,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a selector into tokens as upstream's lexer does (a NUL byte ends the input).
fn lex(s: &str) -> Vec<(Tok, &str)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] == 0 {
            out.push((Tok::End, ""));
            return out;
        }
        let start = i;
        if is_special(b[i]) {
            let tok = match (b[i], b.get(i + 1)) {
                (b'=', Some(b'=')) => Tok::DoubleEquals,
                (b'!', Some(b'=')) => Tok::NotEquals,
                (b'=', _) => Tok::Equals,
                (b'!', _) => Tok::DoesNotExist,
                (b'(', _) => Tok::OpenPar,
                (b')', _) => Tok::ClosedPar,
                (b',', _) => Tok::Comma,
                (b'>', _) => Tok::Gt,
                _ => Tok::Lt,
            };
            i += if matches!(tok, Tok::DoubleEquals | Tok::NotEquals) {
                2
            } else {
                1
            };
            out.push((tok, &s[start..i]));
        } else {
            while i < b.len() && b[i] != 0 && !is_special(b[i]) && !is_ws(b[i]) {
                i += 1;
            }
            let lit = &s[start..i];
            if i < b.len() && b[i] == 0 {
                i += 1; // upstream consumes the NUL that ends an identifier
            }
            let tok = match lit {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            out.push((tok, lit));
        }
    }
}

/// Upstream's recursive-descent parser over the scanned tokens.
struct Parser<'a> {
    items: Vec<(Tok, &'a str)>,
    pos: usize,
}

/// Expected operators, as upstream lists them.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl<'a> Parser<'a> {
    /// The current token; `values` reads the keywords `in`/`notin` as identifiers.
    fn peek(&self, values: bool) -> (Tok, &'a str) {
        let (tok, lit) = self.items.get(self.pos).copied().unwrap_or((Tok::End, ""));
        match tok {
            Tok::In | Tok::NotIn if values => (Tok::Ident, lit),
            _ => (tok, lit),
        }
    }

    fn next(&mut self, values: bool) -> (Tok, &'a str) {
        let item = self.peek(values);
        self.pos += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            match self.peek(true) {
                (Tok::Ident | Tok::DoesNotExist, _) => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    match self.next(true) {
                        (Tok::End, _) => return Ok(reqs),
                        (Tok::Comma, _) => {
                            let (t, l) = self.peek(true);
                            if t != Tok::Ident && t != Tok::DoesNotExist {
                                return Err(format!("found '{l}', expected: identifier after ','"));
                            }
                        }
                        (_, l) => {
                            return Err(format!("found '{l}', expected: ',' or 'end of string'"))
                        }
                    }
                }
                (Tok::End, _) => return Ok(reqs),
                (_, l) => {
                    return Err(format!(
                        "found '{l}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut negated = false;
        let (mut tok, mut key) = self.next(true);
        if tok == Tok::DoesNotExist {
            negated = true;
            (tok, key) = self.next(true);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{key}', expected: identifier"));
        }
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            return Err(invalid("<nil>", &go_quote(key), &key_errs.join("; ")));
        }
        let at_end = matches!(self.peek(true).0, Tok::End | Tok::Comma);
        if negated || at_end {
            let op = if negated {
                Op::DoesNotExist
            } else {
                Op::Exists
            };
            return Requirement::new(key, op, Vec::new()).map_err(|e| e.to_string());
        }
        let op = match self.next(false) {
            (Tok::In, _) => Op::In,
            (Tok::Equals, _) => Op::Equals,
            (Tok::DoubleEquals, _) => Op::DoubleEquals,
            (Tok::Gt, _) => Op::Gt,
            (Tok::Lt, _) => Op::Lt,
            (Tok::NotIn, _) => Op::NotIn,
            (Tok::NotEquals, _) => Op::NotEquals,
            (_, l) => return Err(format!("found '{l}', expected: {BINARY_OPERATORS}")),
        };
        let mut values = if matches!(op, Op::In | Op::NotIn) {
            self.value_set()?
        } else {
            self.exact_value()?
        };
        values.sort();
        values.dedup();
        Requirement::new(key, op, values).map_err(|e| e.to_string())
    }

    /// `( v1, v2, … )`; empty members are the empty string.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next(true);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        match self.peek(true) {
            (Tok::Ident | Tok::Comma, _) => {
                let set = self.identifiers()?;
                self.pos += 1; // the ')' that ended the list
                Ok(set)
            }
            (Tok::ClosedPar, _) => {
                self.pos += 1;
                Ok(vec![String::new()])
            }
            (_, l) => Err(format!("found '{l}', expected: ',', ')' or identifier")),
        }
    }

    /// A comma-separated list of (possibly empty) identifiers, up to a `)`.
    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        loop {
            match self.next(true) {
                (Tok::Ident, lit) => {
                    set.push(lit.to_owned());
                    match self.peek(true) {
                        (Tok::Comma, _) => continue,
                        (Tok::ClosedPar, _) => return Ok(set),
                        (_, l) => return Err(format!("found '{l}', expected: ',' or ')'")),
                    }
                }
                (Tok::Comma, _) => {
                    if set.is_empty() {
                        set.push(String::new());
                    }
                    match self.peek(true).0 {
                        Tok::ClosedPar => {
                            set.push(String::new());
                            return Ok(set);
                        }
                        Tok::Comma => set.push(String::new()),
                        _ => {}
                    }
                }
                (_, l) => return Err(format!("found '{l}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<` (empty when none follows).
    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.peek(true).0, Tok::End | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.next(true) {
            (Tok::Ident, lit) => Ok(vec![lit.to_owned()]),
            (_, l) => Err(format!("found '{l}', expected: identifier")),
        }
    }
}

#[cfg(test)]
mod tests;

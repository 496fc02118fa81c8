//! A subset of client-go's JSONPath, enough for printer columns and the scale subresource:
//! `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[1:3]`, `[*]`, `.*`, `..name`, unions `['a','b']` /
//! `[0,2]`, and filters `[?(@.type=="Ready")]` (`==`, `!=`, `<`, `<=`, `>`, `>=` against a
//! string, number or boolean literal, or `[?(@.x)]` for presence). The path may be wrapped
//! in one pair of braces and may start with `$`. Missing keys and out-of-range indexes yield
//! no result (client-go's `AllowMissingKeys`).

use serde_json::Value;

/// A JSONPath that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?}: {reason}")]
pub struct JsonPathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed JSONPath.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Fields(Vec<String>),
    Wildcard,
    Indexes(Vec<i64>),
    Slice(Option<i64>, Option<i64>, i64),
    Descend,
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Path(JsonPath),
    Literal(Value),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    left: Operand,
    op: Option<(String, Operand)>,
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    /// Steps until the end of input, or (inside a filter) an operator or `)`.
    fn steps(&mut self, nested: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            let rest = self.rest();
            if rest.is_empty() || (nested && rest.starts_with([' ', ')', '=', '!', '<', '>'])) {
                return Ok(steps);
            }
            if self.eat("..") {
                steps.push(Step::Descend);
                if self.rest().starts_with('[') {
                    continue;
                }
                steps.push(self.field()?);
            } else if self.eat(".") {
                if self.rest().is_empty() {
                    // A lone `.` (or a trailing one) selects the current value.
                    return Ok(steps);
                }
                steps.push(self.field()?);
            } else if self.eat("[") {
                steps.push(self.bracket()?);
            } else {
                return fail(format!(
                    "unexpected {:?}",
                    rest.chars().next().unwrap_or(' ')
                ));
            }
        }
    }

    fn field(&mut self) -> Result<Step, String> {
        if self.eat("*") {
            return Ok(Step::Wildcard);
        }
        let mut name = String::new();
        let mut chars = self.rest().char_indices().peekable();
        let mut end = self.rest().len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, n)) => name.push(n),
                    None => return fail("dangling escape"),
                },
                '.' | '[' | ' ' | ')' | '=' | '!' | '<' | '>' => {
                    end = i;
                    break;
                }
                c => name.push(c),
            }
        }
        if name.is_empty() {
            return fail("empty field name");
        }
        self.pos += end;
        Ok(Step::Fields(vec![name]))
    }

    fn bracket(&mut self) -> Result<Step, String> {
        self.skip_spaces();
        if self.eat("?(") {
            let filter = self.filter()?;
            self.skip_spaces();
            if !self.eat(")") {
                return fail("unclosed filter");
            }
            self.skip_spaces();
            if !self.eat("]") {
                return fail("unclosed bracket");
            }
            return Ok(Step::Filter(filter));
        }
        let Some(close) = self.rest().find(']') else {
            return fail("unclosed bracket");
        };
        let inner = self.rest()[..close].trim().to_owned();
        self.pos += close + 1;
        if inner == "*" {
            return Ok(Step::Wildcard);
        }
        if inner.starts_with(['\'', '"']) {
            let names = inner
                .split(',')
                .map(|part| unquote(part.trim()).ok_or_else(|| format!("bad key {part:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Step::Fields(names));
        }
        if inner.contains(':') {
            let parts: Vec<&str> = inner.split(':').map(str::trim).collect();
            if parts.len() > 3 {
                return fail(format!("bad slice {inner:?}"));
            }
            let num = |s: &str| -> Result<Option<i64>, String> {
                if s.is_empty() {
                    Ok(None)
                } else {
                    s.parse()
                        .map(Some)
                        .map_err(|_| format!("bad slice {inner:?}"))
                }
            };
            let step = num(parts.get(2).copied().unwrap_or(""))?.unwrap_or(1);
            if step <= 0 {
                return fail("slice step must be positive");
            }
            return Ok(Step::Slice(
                num(parts[0])?,
                num(parts.get(1).copied().unwrap_or(""))?,
                step,
            ));
        }
        let indexes = inner
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("bad index {p:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Step::Indexes(indexes))
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.skip_spaces();
        let left = self.operand()?;
        self.skip_spaces();
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat(op) {
                self.skip_spaces();
                let right = self.operand()?;
                return Ok(Filter {
                    left,
                    op: Some((op.to_owned(), right)),
                });
            }
        }
        Ok(Filter { left, op: None })
    }

    fn operand(&mut self) -> Result<Operand, String> {
        if self.eat("@") {
            return Ok(Operand::Path(JsonPath {
                steps: self.steps(true)?,
            }));
        }
        let rest = self.rest();
        if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let Some(end) = rest[1..].find(q) else {
                return fail("unterminated string");
            };
            let text = rest[1..=end].to_owned();
            self.pos += end + 2;
            return Ok(Operand::Literal(Value::String(text)));
        }
        let end = rest.find([' ', ')']).unwrap_or(rest.len());
        let word = &rest[..end];
        let literal = match word {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "nil" | "null" => Value::Null,
            w => match serde_json::from_str::<serde_json::Number>(w) {
                Ok(n) => Value::Number(n),
                Err(_) => return fail(format!("unrecognized operand {w:?}")),
            },
        };
        self.pos += end;
        Ok(Operand::Literal(literal))
    }
}

fn fail<T>(reason: impl Into<String>) -> Result<T, String> {
    Err(reason.into())
}

fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    Some(inner.to_owned())
}

impl JsonPath {
    /// Parses a path such as `.status.conditions[?(@.type=="Ready")].status`, with or
    /// without surrounding braces.
    pub fn parse(path: &str) -> Result<JsonPath, JsonPathError> {
        let error = |reason: String| JsonPathError {
            path: path.to_owned(),
            reason,
        };
        let mut body = path.trim();
        if let Some(inner) = body.strip_prefix('{') {
            body = inner
                .strip_suffix('}')
                .ok_or_else(|| error("unclosed action".into()))?
                .trim();
        }
        if body.contains(['{', '}']) {
            return Err(error("only one action is supported".into()));
        }
        let body = body.strip_prefix('$').unwrap_or(body);
        if !(body.is_empty() || body.starts_with(['.', '['])) {
            return Err(error("must start with '.'".into()));
        }
        let mut parser = Parser { src: body, pos: 0 };
        let steps = parser.steps(false).map_err(error)?;
        Ok(JsonPath { steps })
    }

    /// Every value the path selects, in order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.steps {
            current = apply(step, current);
            if current.is_empty() {
                break;
            }
        }
        current
    }

    /// The first value the path selects (what a printer column shows).
    pub fn first<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        self.find(root).into_iter().next()
    }
}

fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

fn apply<'a>(step: &Step, current: Vec<&'a Value>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for v in current {
        match (step, v) {
            (Step::Fields(names), Value::Object(m)) => {
                out.extend(names.iter().filter_map(|n| m.get(n)));
            }
            (Step::Wildcard, Value::Object(m)) => out.extend(m.values()),
            (Step::Wildcard, Value::Array(a)) => out.extend(a.iter()),
            (Step::Indexes(idx), Value::Array(a)) => {
                out.extend(
                    idx.iter()
                        .filter_map(|&i| resolve_index(i, a.len()).map(|i| &a[i])),
                );
            }
            (Step::Slice(start, end, step), Value::Array(a)) => {
                let len = a.len() as i64;
                let clamp = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = clamp(start.unwrap_or(0));
                let e = clamp(end.unwrap_or(len));
                let mut i = s;
                while i < e {
                    out.push(&a[i as usize]);
                    i += step;
                }
            }
            (Step::Descend, v) => descend(v, &mut out),
            (Step::Filter(f), Value::Array(a)) => out.extend(a.iter().filter(|e| f.matches(e))),
            (Step::Filter(f), v @ Value::Object(_)) if f.matches(v) => out.push(v),
            _ => {}
        }
    }
    out
}

fn descend<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Object(m) => m.values().for_each(|c| descend(c, out)),
        Value::Array(a) => a.iter().for_each(|c| descend(c, out)),
        _ => {}
    }
}

impl Filter {
    fn matches(&self, v: &Value) -> bool {
        let value_of = |o: &Operand| -> Option<Value> {
            match o {
                Operand::Path(p) => p.first(v).cloned(),
                Operand::Literal(l) => Some(l.clone()),
            }
        };
        let Some(left) = value_of(&self.left) else {
            return false;
        };
        let Some((op, right)) = &self.op else {
            return true;
        };
        let Some(right) = value_of(right) else {
            return false;
        };
        let ordering = match (&left, &right) {
            (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (a, b) if a == b => Some(std::cmp::Ordering::Equal),
            _ => None,
        };
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (op.as_str(), ordering) {
            ("==", o) => o == Some(Equal),
            ("!=", o) => o != Some(Equal),
            ("<", o) => o == Some(Less),
            ("<=", o) => matches!(o, Some(Less | Equal)),
            (">", o) => o == Some(Greater),
            (">=", o) => matches!(o, Some(Greater | Equal)),
            _ => false,
        }
    }
}

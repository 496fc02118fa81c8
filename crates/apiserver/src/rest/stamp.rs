//! Giving stored bytes their resourceVersion without decoding them. Objects are stored
//! without `metadata.resourceVersion` (the store's revision is the resource version), so
//! every object the watch cache receives needs it added before it is served. Decoding the
//! object into a `serde_json::Value`, setting the field and encoding it again cost the cache
//! two full passes and an allocation per JSON node, for every write; [`stamp`] instead finds
//! where `metadata` opens with a small scanner and splices `"resourceVersion":"<rv>"` in.
//! Anything unusual (no `metadata` object, a key spelled with escapes, a resourceVersion
//! already present) answers `None`, and the caller takes the decoding path.

use bytes::Bytes;

/// `stored` with `"resourceVersion":"<rv>"` as the first member of its top-level
/// `metadata` object; `None` when that cannot be done by splicing. The result decodes to
/// the same value as `stored` with the field set (only the member order differs from what
/// encoding that value gives).
pub fn stamp(stored: &[u8], rv: i64) -> Option<Bytes> {
    let at = metadata_start(stored)?;
    let rv = rv.to_string();
    let mut out = Vec::with_capacity(stored.len() + rv.len() + 22);
    out.extend_from_slice(&stored[..at]);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rv.as_bytes());
    out.push(b'"');
    let rest = &stored[at..];
    let first = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    if rest[first] != b'}' {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Some(Bytes::from(out))
}

/// The offset just after the `{` that opens the top-level `metadata` object, if the bytes
/// are an object with one, whose own keys do not include `resourceVersion`.
fn metadata_start(b: &[u8]) -> Option<usize> {
    let mut s = Scanner { b, i: 0 };
    s.expect(b'{')?;
    if s.peek()? == b'}' {
        return None;
    }
    loop {
        let key = s.string()?;
        s.expect(b':')?;
        if key == b"metadata" {
            if s.peek()? != b'{' {
                return None;
            }
            s.i += 1;
            let at = s.i;
            if s.object_has_key(b"resourceVersion")? || s.later_key(b"metadata")? {
                return None;
            }
            return Some(at);
        }
        s.skip_value()?;
        match s.next()? {
            b',' => {}
            _ => return None,
        }
    }
}

/// A cursor over JSON text that understands just enough to step over values.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    /// The next non-blank byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.i).copied()
    }

    /// The next non-blank byte, consumed.
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A string's raw contents (escapes left as they are).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(&self.b[start..self.i - 1]);
                }
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
    }

    /// Steps over one value of any kind.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let len = self.b[self.i..]
                    .iter()
                    .position(|c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())
                    .unwrap_or(self.b.len() - self.i);
                (len > 0).then(|| self.i += len)
            }
        }
    }

    /// Whether the object whose `{` was just consumed has `key` among its own keys (any
    /// escaped key counts as a match, so the caller falls back to decoding). Consumes it.
    fn object_has_key(&mut self, key: &[u8]) -> Option<bool> {
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(false);
        }
        self.keys_until_end(key)
    }

    /// After a member of an object: whether a later member is called `key` (or has an
    /// escaped name). Consumes the rest of the object.
    fn later_key(&mut self, key: &[u8]) -> Option<bool> {
        match self.next()? {
            b'}' => Some(false),
            b',' => self.keys_until_end(key),
            _ => None,
        }
    }

    fn keys_until_end(&mut self, key: &[u8]) -> Option<bool> {
        let mut found = false;
        loop {
            let k = self.string()?;
            found |= k == key || k.contains(&b'\\');
            self.expect(b':')?;
            self.skip_value()?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(found),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn decoded(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
    }

    #[test]
    fn the_stamped_bytes_decode_to_the_object_with_its_version() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "aaa": {"metadata": {"x": "}{\"]"}, "l": [1, {"a": [true, null, -1.5e3]}]},
            "metadata": {"name": "p", "labels": {"a\"b": "c"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "c"}]},
            "status": {}
        });
        let stored = serde_json::to_vec(&obj).unwrap_or_default();
        let stamped = stamp(&stored, 42).unwrap_or_default();
        let mut want = obj;
        want["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(decoded(&stamped), want);
    }

    #[test]
    fn empty_metadata_and_blanks_are_stamped() {
        let stamped = stamp(b" { \"kind\" : 1 , \"metadata\" : { } } ", 7).unwrap_or_default();
        assert_eq!(
            decoded(&stamped),
            json!({"kind": 1, "metadata": {"resourceVersion": "7"}})
        );
    }

    #[test]
    fn unusual_objects_are_left_to_decoding() {
        for bad in [
            &b"[]"[..],
            b"{}",
            b"{\"kind\":\"x\"}",
            b"{\"metadata\":null}",
            b"{\"metadata\":{\"resourceVersion\":\"3\"}}",
            b"{\"metadata\":{\"resource\\u0056ersion\":\"3\"}}",
            b"{\"meta\\u0064ata\":{}}",
            b"{\"a\":tru",
            b"{\"a\":\"unterminated",
            b"{\"metadata\":{},\"metadata\":{}}",
            b"{\"metadata\":{},\"x\":1",
        ] {
            assert!(stamp(bad, 1).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}

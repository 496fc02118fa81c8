//! Giving stored bytes their resourceVersion without decoding them. Objects are stored
//! without `metadata.resourceVersion` (the store's revision is the resource version), so
//! every object the watch cache receives needs it added before it is served. Decoding the
//! object into a `serde_json::Value`, setting the field and encoding it again cost the cache
//! two full passes and an allocation per JSON node, for every write; [`stamp`] instead finds
//! where `metadata` opens with a small scanner and splices `"resourceVersion":"<rv>"` in.
//! Anything unusual (no `metadata` object, a key spelled with escapes, a resourceVersion
//! already present) answers `None`, and the caller takes the decoding path.
//!
//! [`bind`] does the same for the scheduler's most frequent write, `pods/binding`: from the
//! cached bytes it makes the stored bytes of the bound pod (resourceVersion out, `nodeName`
//! and the PodScheduled condition in) without decoding the pod, when the pod plainly has no
//! node, no deletion and no conditions yet.

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

/// The stored form of the pod whose cached bytes (stamped by [`stamp`] with `rv`) are
/// `cached`, bound: `metadata.resourceVersion` removed, `node` (a JSON string) spliced in as
/// `spec.nodeName` and `condition` (a JSON object) as the only `status.conditions` entry.
/// `None` unless the pod has a `spec` without `nodeName` or `schedulingGates`, `metadata`
/// without `deletionTimestamp`, starting with the stamp and whose `uid` is `uid` (when the
/// binding names one), and a `status` (or none) without `conditions` or
/// `nominatedNodeName`; the caller then decodes, and so also answers every refusal.
pub fn bind(
    cached: &[u8],
    rv: i64,
    uid: Option<&str>,
    node: &[u8],
    condition: &[u8],
) -> Option<Bytes> {
    let mut s = Scanner { b: cached, i: 0 };
    s.expect(b'{')?;
    let (mut meta, mut spec, mut status) = (None, None, None);
    let mut found_uid = None;
    let end = loop {
        let key = s.string()?;
        s.expect(b':')?;
        let (slot, refused): (&mut Option<usize>, &[&[u8]]) = match key {
            b"metadata" => (&mut meta, &[b"deletionTimestamp"]),
            b"spec" => (&mut spec, &[b"nodeName", b"schedulingGates"]),
            b"status" => (&mut status, &[b"conditions", b"nominatedNodeName"]),
            k if k.contains(&b'\\') => return None,
            _ => {
                s.skip_value()?;
                match s.next()? {
                    b',' => continue,
                    b'}' => break s.i - 1,
                    _ => return None,
                }
            }
        };
        if slot.is_some() || s.next()? != b'{' {
            return None;
        }
        *slot = Some(s.i);
        let (refuse, uid) = s.members(refused, b"uid")?;
        if refuse {
            return None;
        }
        if key == b"metadata" {
            found_uid = uid;
        }
        match s.next()? {
            b',' => {}
            b'}' => break s.i - 1,
            _ => return None,
        }
    };
    if uid.is_some_and(|u| found_uid != Some(u.as_bytes())) {
        return None;
    }
    if !cached[end + 1..].iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let (meta, spec) = (meta?, spec?);
    let stamp = format!("\"resourceVersion\":\"{rv}\"");
    if !cached[meta..].starts_with(stamp.as_bytes()) {
        return None;
    }
    let mut stamp_end = meta + stamp.len();
    if cached.get(stamp_end) == Some(&b',') {
        stamp_end += 1;
    }
    let member = |name: &[u8], value: &[u8], at: usize| {
        let empty = cached[at..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
        let mut m = [&b"\""[..], name, b"\":", value].concat();
        if !empty {
            m.push(b',');
        }
        m
    };
    let conditions = [&b"["[..], condition, b"]"].concat();
    let mut edits: Vec<(usize, usize, Vec<u8>)> = vec![
        (meta, stamp_end, Vec::new()),
        (spec, spec, member(b"nodeName", node, spec)),
    ];
    edits.push(match status {
        Some(at) => (at, at, member(b"conditions", &conditions, at)),
        None => {
            let whole = [&b",\"status\":{\"conditions\":"[..], &conditions, b"}"].concat();
            (end, end, whole)
        }
    });
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(cached.len() + node.len() + condition.len() + 64);
    let mut from = 0;
    for (start, stop, insert) in edits {
        out.extend_from_slice(&cached[from..start]);
        out.extend_from_slice(&insert);
        from = stop;
    }
    out.extend_from_slice(&cached[from..]);
    Some(Bytes::from(out))
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
        Some(self.members(&[key], b"")?.0)
    }

    /// After a member of an object: whether a later member is called `key` (or has an
    /// escaped name). Consumes the rest of the object.
    fn later_key(&mut self, key: &[u8]) -> Option<bool> {
        match self.next()? {
            b'}' => Some(false),
            b',' => Some(self.members_from_key(&[key], b"")?.0),
            _ => None,
        }
    }

    /// The members of the object whose `{` was just consumed: whether any is called one of
    /// `refused` (or has an escaped name), and the raw value of the string member `wanted`
    /// (`None` if absent, not a string or escaped). Consumes the object.
    fn members(&mut self, refused: &[&[u8]], wanted: &[u8]) -> Option<(bool, Option<&'a [u8]>)> {
        if self.peek()? == b'}' {
            self.i += 1;
            return Some((false, None));
        }
        self.members_from_key(refused, wanted)
    }

    /// [`members`](Self::members) from a member's key to the object's end.
    fn members_from_key(
        &mut self,
        refused: &[&[u8]],
        wanted: &[u8],
    ) -> Option<(bool, Option<&'a [u8]>)> {
        let (mut refuse, mut value) = (false, None);
        loop {
            let k = self.string()?;
            refuse |= refused.contains(&k) || k.contains(&b'\\');
            self.expect(b':')?;
            if !wanted.is_empty() && k == wanted && self.peek()? == b'"' {
                value = self.string().filter(|v| !v.contains(&b'\\'));
            } else {
                self.skip_value()?;
            }
            match self.next()? {
                b',' => {}
                b'}' => return Some((refuse, value)),
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

    fn bound_by_decoding(cached: &[u8], node: &str, condition: &Value) -> Value {
        let mut pod = decoded(cached);
        pod["spec"]["nodeName"] = json!(node);
        pod["status"]["conditions"] = json!([condition]);
        if let Some(m) = pod["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        pod
    }

    #[test]
    fn a_spliced_binding_decodes_as_the_decoded_one() {
        let condition = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null});
        let cond = serde_json::to_vec(&condition).unwrap_or_default();
        for obj in [
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "uid": "u-1", "labels": {"a": "}"}},
                   "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Pending"}}),
            json!({"metadata": {"name": "p"}, "spec": {}}),
            json!({"spec": {"x": [1, {"nodeName": "inner"}]}, "status": {}, "metadata": {}}),
        ] {
            let stored = serde_json::to_vec(&obj).unwrap_or_default();
            let cached = stamp(&stored, 9).unwrap_or_default();
            let uid = obj["metadata"]["uid"].as_str();
            let bound = bind(&cached, 9, uid, b"\"n\\\"1\"", &cond);
            let bound = bound.unwrap_or_else(|| panic!("not spliced: {obj}"));
            assert_eq!(
                decoded(&bound),
                bound_by_decoding(&cached, "n\"1", &condition)
            );
        }
    }

    #[test]
    fn bindings_the_splice_cannot_prove_are_left_to_decoding() {
        let cond = b"{}";
        for (obj, rv) in [
            (json!({"metadata": {}, "spec": {"nodeName": ""}}), 9),
            (
                json!({"metadata": {"deletionTimestamp": "t"}, "spec": {}}),
                9,
            ),
            (
                json!({"metadata": {}, "spec": {}, "status": {"conditions": []}}),
                9,
            ),
            (json!({"metadata": {}, "spec": null}), 9),
            (json!({"metadata": {}}), 9),
            (json!({"metadata": {}, "spec": {}}), 8),
            (
                json!({"metadata": {}, "spec": {"schedulingGates": [{"name": "g"}]}}),
                9,
            ),
            (
                json!({"metadata": {}, "spec": {}, "status": {"nominatedNodeName": "n"}}),
                9,
            ),
        ] {
            let stored = serde_json::to_vec(&obj).unwrap_or_default();
            let cached = stamp(&stored, 9).unwrap_or_default();
            assert!(
                bind(&cached, rv, None, b"\"n\"", cond).is_none(),
                "{obj} at {rv}"
            );
        }
        // A binding for another incarnation of the pod (its uid differs), or naming a uid
        // when the cached pod shows none.
        for obj in [
            json!({"metadata": {"uid": "old"}, "spec": {}}),
            json!({"metadata": {}, "spec": {}}),
        ] {
            let stored = serde_json::to_vec(&obj).unwrap_or_default();
            let cached = stamp(&stored, 9).unwrap_or_default();
            assert!(
                bind(&cached, 9, Some("new"), b"\"n\"", cond).is_none(),
                "{obj}"
            );
        }
        for bad in [
            &b"{\"metadata\":{\"resourceVersion\":\"9\"},\"spec\":{},\"spec\":{}}"[..],
            b"{\"metadata\":{\"resourceVersion\":\"9\"},\"sp\\u0065c\":{\"nodeName\":\"x\"}}",
            b"{\"metadata\":{\"resourceVersion\":\"9\"},\"spec\":{}} x",
            b"{\"metadata\":{\"resourceVersion\":\"9\"},\"spec\":{}",
            b"{\"metadata\":{\"name\":\"p\",\"resourceVersion\":\"9\"},\"spec\":{}}",
        ] {
            assert!(
                bind(bad, 9, None, b"\"n\"", cond).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! The Go details schema validation depends on: which `format`s the API server keeps (it
//! strips the ones it does not support), how those formats are checked (loosely for the
//! rarely used ones), how Go prints a float (`%v`), and the RE2 meaning of `\d`, `\w`, `\s`
//! and `\b` (ASCII only) translated for the `regex` crate.

use crate::validation::{is_dns1123_label, is_dns1123_subdomain};

/// String formats the API server keeps (upstream's supported formats, `-` removed).
const STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

/// The format kube-openapi validates with, given the node's type: upstream's
/// `StripUnsupportedFormatsPostProcessor` (integers keep int32/int64, numbers float/double,
/// strings and typeless nodes the supported string formats; everything else is dropped).
pub(crate) fn kept_format(ty: &str, int_or_string: bool, format: &str) -> String {
    if format.is_empty() {
        return String::new();
    }
    let ty = if int_or_string { "" } else { ty };
    let keep = match ty {
        "" | "string" => STRING_FORMATS.contains(&format.replace('-', "").as_str()),
        "integer" => matches!(format, "int32" | "int64"),
        "number" => matches!(format, "float" | "double"),
        _ => false,
    };
    if keep {
        format.to_owned()
    } else {
        String::new()
    }
}

/// Whether `s` is valid for a (kept) string format. Formats checked exactly: date,
/// date-time, byte, uuid*, ipv4, ipv6, cidr, mac, hexcolor, bsonobjectid, ssn,
/// k8s-short-name, k8s-long-name; loosely: hostname, email, uri, duration, rgbcolor;
/// isbn*, creditcard and password accept anything.
pub(crate) fn format_ok(format: &str, s: &str) -> bool {
    match format.replace('-', "").as_str() {
        "date" => is_date(s),
        "datetime" => is_date_time(s),
        "byte" => is_base64(s),
        "uuid" => is_uuid(s, None),
        "uuid3" => is_uuid(s, Some(b'3')),
        "uuid4" => is_uuid(s, Some(b'4')),
        "uuid5" => is_uuid(s, Some(b'5')),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "hexcolor" => is_hex_color(s),
        "rgbcolor" => s.starts_with("rgb(") && s.ends_with(')'),
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "ssn" => is_ssn(s),
        "hostname" => is_hostname(s),
        "email" => s
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty()),
        "uri" => {
            s.split_once(':')
                .is_some_and(|(scheme, _)| valid_scheme(scheme))
                || s.starts_with('/')
        }
        "duration" => !s.trim().is_empty(),
        "k8sshortname" => is_dns1123_label(s).is_empty(),
        "k8slongname" => is_dns1123_subdomain(s).is_empty(),
        _ => true,
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

/// `2006-01-02` with a real day of the month (Go's `time.Parse`).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (s.get(0..4), s.get(5..7), s.get(8..10)) else {
        return false;
    };
    if !(digits(y) && digits(m) && digits(d)) {
        return false;
    }
    let (y, m, d): (u32, u32, u32) = match (y.parse(), m.parse(), d.parse()) {
        (Ok(y), Ok(m), Ok(d)) => (y, m, d),
        _ => return false,
    };
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// strfmt's `IsDateTime`: a date, `t`, then `hh:mm:ss(.frac)?(z|±hh:mm)` (case-insensitive).
fn is_date_time(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if s.len() < 4 || !is_date(date) {
        return false;
    }
    let b = time.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(mi), Some(sec)) = (time.get(0..2), time.get(3..5), time.get(6..8)) else {
        return false;
    };
    if !(digits(h) && digits(mi) && digits(sec)) || h > "23" || mi > "59" || sec > "59" {
        return false;
    }
    let mut rest = &time[8..];
    if rest.len() > 1 && !rest.starts_with('z') && !rest.starts_with(['+', '-']) {
        // Any one character, then digits (the regex's unescaped `.`).
        let first = rest.chars().next().map_or(0, char::len_utf8);
        let digits_part = &rest[first..];
        let n = digits_part.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &digits_part[n..];
    }
    match rest.as_bytes() {
        [b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    pad <= 2
        && b[..b.len() - pad]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

fn is_uuid(s: &str, version: Option<u8>) -> bool {
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    let grouping_ok = groups == [32]
        || groups == [8, 4, 4, 4, 12]
        || (groups.iter().sum::<usize>() == 32 && s.len() <= 36);
    if hex.len() != 32 || !grouping_ok || !hex.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    match version {
        None => true,
        Some(v) => {
            hex[12] == v
                && (v == b'3' || matches!(hex[16].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b'))
        }
    }
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let max = if ip.parse::<std::net::Ipv4Addr>().is_ok() {
        32
    } else if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        128
    } else {
        return false;
    };
    digits(bits) && bits.parse::<u32>().is_ok_and(|b| b <= max)
}

fn is_mac(s: &str) -> bool {
    let groups: Vec<&str> = s.split([':', '-']).collect();
    let dotted: Vec<&str> = s.split('.').collect();
    let hex = |g: &&str| g.bytes().all(|b| b.is_ascii_hexdigit());
    (matches!(groups.len(), 6 | 8 | 20) && groups.iter().all(|g| g.len() == 2 && hex(g)))
        || (matches!(dotted.len(), 3 | 4 | 10) && dotted.iter().all(|g| g.len() == 4 && hex(g)))
}

fn is_hex_color(s: &str) -> bool {
    let h = s.strip_prefix('#').unwrap_or(s);
    matches!(h.len(), 3 | 6) && h.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_ssn(s: &str) -> bool {
    let d: String = s.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
    d.len() == 9 && digits(&d) && s.len() <= 11
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && !l.contains(['_', ' ', '/', ':'])
        })
}

fn valid_scheme(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits that
/// round-trip, in exponent form (`1e+06`, `1e-05`) when the decimal exponent is below -4 or
/// at least 6.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Shortest round-trip digits and decimal exponent from Rust's `{:e}`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if neg { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    if exp >= n - 1 {
        let zeros = "0".repeat((exp - (n - 1)) as usize);
        format!("{sign}{digits}{zeros}")
    } else if exp >= 0 {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{sign}{int}.{frac}")
    } else {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("{sign}0.{zeros}{digits}")
    }
}

/// swag's `IsFloat64AJSONInteger`: finite, within ±2^53, and integral up to a relative error
/// of 1e-9.
pub(crate) fn is_json_integer(f: f64) -> bool {
    const LIMIT: f64 = 9_007_199_254_740_992.0;
    if !f.is_finite() || !(-LIMIT..=LIMIT).contains(&f) {
        return false;
    }
    let g = f.trunc();
    if f == g {
        return true;
    }
    let diff = (f - g).abs();
    if g == 0.0 {
        return false;
    }
    diff / (f.abs() + g.abs()) < 1e-9
}

/// An RE2 pattern with Go's ASCII-only Perl classes and word boundary spelled for the
/// `regex` crate (whose `\d`, `\w`, `\s`, `\b` are Unicode-aware).
pub(crate) fn go_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let class_body = match n {
                    'd' => Some("0-9"),
                    'w' => Some("0-9A-Za-z_"),
                    's' => Some("\\t\\n\\x0C\\r "),
                    _ => None,
                };
                let negated_body = match n {
                    'D' => Some("0-9"),
                    'W' => Some("0-9A-Za-z_"),
                    'S' => Some("\\t\\n\\x0C\\r "),
                    _ => None,
                };
                match (class_body, negated_body, in_class) {
                    (Some(body), _, true) => out.push_str(body),
                    (Some(body), _, false) => {
                        out.push('[');
                        out.push_str(body);
                        out.push(']');
                    }
                    (_, Some(body), false) => {
                        out.push_str("[^");
                        out.push_str(body);
                        out.push(']');
                    }
                    _ if n == 'b' && !in_class => out.push_str("(?-u:\\b)"),
                    _ if n == 'B' && !in_class => out.push_str("(?-u:\\B)"),
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                class_start = false;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push(c);
                continue;
            }
            '[' if in_class => {
                // A POSIX class such as `[:alpha:]` inside a class.
                out.push(c);
                if chars.as_str().starts_with(':') {
                    if let Some(end) = chars.as_str().find(":]") {
                        out.push_str(&chars.as_str()[..end + 2]);
                        chars = chars.as_str()[end + 2..].chars();
                    }
                }
            }
            ']' if in_class && !class_start => in_class = false,
            '^' if class_start => {
                out.push(c);
                continue;
            }
            _ => {}
        }
        if c != '[' {
            out.push(c);
        }
        class_start = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(10.0), "10");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(-0.25), "-0.25");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e22), "1.5e+22");
    }

    #[test]
    fn formats() {
        assert!(format_ok("date", "2024-02-29"));
        assert!(!format_ok("date", "2023-02-29"));
        assert!(!format_ok("date", "2023-2-1"));
        assert!(format_ok("date-time", "2024-01-02T03:04:05Z"));
        assert!(format_ok("date-time", "2024-01-02t03:04:05.123+02:00"));
        assert!(!format_ok("date-time", "2024-01-02T25:04:05Z"));
        assert!(!format_ok("date-time", "2024-01-02"));
        // The fraction's separator is the regex's `.`: any character, multi-byte included.
        assert!(format_ok("date-time", "2024-01-02T03:04:05\u{e9}5z"));
        assert!(!format_ok("date", "2024-\u{e9}-02"));
        assert!(format_ok("byte", "aGVsbG8="));
        assert!(!format_ok("byte", "aGVsbG8"));
        assert!(format_ok("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(!format_ok("uuid", "xyz"));
        assert!(format_ok("ipv4", "10.0.0.1"));
        assert!(format_ok("cidr", "10.0.0.0/8"));
        assert!(!format_ok("cidr", "10.0.0.0/33"));
        assert_eq!(kept_format("string", false, "date-time"), "date-time");
        assert_eq!(kept_format("string", false, "int32"), "");
        assert_eq!(kept_format("integer", false, "int32"), "int32");
        assert_eq!(kept_format("boolean", false, "date"), "");
        assert_eq!(kept_format("integer", true, "int32"), "");
    }

    #[test]
    fn go_regex_classes() {
        assert_eq!(go_regex(r"^\d+$"), "^[0-9]+$");
        assert_eq!(go_regex(r"[\d.]"), "[0-9.]");
        assert_eq!(go_regex(r"\W"), "[^0-9A-Za-z_]");
        assert_eq!(go_regex(r"a\.b"), r"a\.b");
        assert_eq!(go_regex(r"[]a]"), "[]a]");
        assert_eq!(go_regex(r"[^]a]\b"), r"[^]a](?-u:\b)");
        assert_eq!(go_regex(r"[[:alpha:]\d]"), "[[:alpha:]0-9]");
        for pattern in [
            r"^\w+\s\S$",
            r"^\/api\-v\.1$",
            r"^[\w\-\.]+@example\.com$",
            r"(?i)^abc$",
            r"^\p{Greek}+$",
            r"^[[:^alpha:]]$",
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        ] {
            assert!(regex::Regex::new(&go_regex(pattern)).is_ok(), "{pattern}");
        }
        assert!(is_json_integer(3.0));
        assert!(!is_json_integer(3.5));
        assert!(!is_json_integer(f64::NAN));
    }
}

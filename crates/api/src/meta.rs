//! Object metadata the server assigns: uids, creation timestamps and names from
//! `generateName`, as upstream makes them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Characters of generated name suffixes: upstream's alphabet, without vowels (no accidental
/// words) and without easily confused characters.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of a generated suffix.
const SUFFIX_LEN: usize = 5;
/// Longest prefix kept from `generateName`, so the result fits a 63-character name.
const MAX_PREFIX: usize = 63 - SUFFIX_LEN;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source does not fail on Linux once the system is up; if it ever did, the
    // zeroed buffer still makes a well-formed (if not unique) value, and the store's
    // create-if-absent check turns a collision into AlreadyExists, never an overwrite.
    let _ = getrandom::getrandom(&mut buf);
    buf
}

/// A random (version 4) UUID, lower-case hyphenated, as upstream's `metadata.uid`.
pub fn new_uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(x >> 4)]));
        out.push(char::from(HEX[usize::from(x & 0x0f)]));
    }
    out
}

/// A name from `generateName`: the prefix (cut to 58 characters) and 5 random characters.
pub fn generate_name(prefix: &str) -> String {
    let cut = prefix
        .char_indices()
        .nth(MAX_PREFIX)
        .map_or(prefix, |(i, _)| &prefix[..i]);
    let suffix: String = random_bytes::<SUFFIX_LEN>()
        .iter()
        .map(|b| char::from(SUFFIX_ALPHABET[usize::from(*b) % SUFFIX_ALPHABET.len()]))
        .collect();
    format!("{cut}{suffix}")
}

/// The current time, truncated to whole seconds as `metadata.creationTimestamp` is.
pub fn now() -> Time {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    Time(
        k8s_openapi::jiff::Timestamp::from_second(seconds)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// A Unix time in seconds as upstream writes timestamps: RFC 3339, UTC, whole seconds
/// (`2026-11-23T10:00:00Z`).
pub fn timestamp(unix_seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix_seconds)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_v4_and_distinct() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]));
    }

    #[test]
    fn generated_names_fit_and_validate() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
        let long = generate_name(&"a".repeat(100));
        assert_eq!(long.len(), 63);
        assert!(crate::validation::is_dns1123_subdomain(&long).is_empty());
    }

    #[test]
    fn timestamps_print_as_upstream() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn timestamps_are_whole_seconds() {
        assert_eq!(now().0.subsec_nanosecond(), 0);
    }
}

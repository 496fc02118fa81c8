//! Resource quantities as `k8s.io/apimachinery/pkg/api/resource` parses and prints them:
//! the accepted syntax (decimal and binary SI suffixes, exponents), values for comparison,
//! and the canonical text upstream's defaulting and serialization produce (`0.5` → `500m`).

/// The message of a quantity that does not parse.
pub(crate) const QUANTITY_FORMAT_ERR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// How a quantity was written, which decides how it prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QtyFormat {
    /// `Ki`, `Mi`, …
    BinarySI,
    /// `m`, `k`, `M`, … or none.
    DecimalSI,
    /// `e3`, `E6`, …
    DecimalExponent,
}

/// A parsed quantity, in billionths (saturating when far out of range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Qty {
    /// The value × 10⁹, rounded up.
    pub(crate) nano: i128,
    /// How it was written.
    pub(crate) format: QtyFormat,
    /// Whether `nano` saturated.
    pub(crate) overflow: bool,
}

impl Qty {
    /// Whether the value is a whole number.
    pub(crate) fn is_integer(&self) -> bool {
        self.nano % 1_000_000_000 == 0
    }
}

/// `resource.ParseQuantity`.
pub(crate) fn parse_quantity(s: &str) -> Result<Qty, &'static str> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = body
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(num_end);
    if number.is_empty() || number.matches('.').count() > 1 || number == "." {
        return Err(QUANTITY_FORMAT_ERR);
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let (exp10, pow2, format): (i32, u32, QtyFormat) = match suffix {
        "" => (0, 0, QtyFormat::DecimalSI),
        "n" => (-9, 0, QtyFormat::DecimalSI),
        "u" => (-6, 0, QtyFormat::DecimalSI),
        "m" => (-3, 0, QtyFormat::DecimalSI),
        "k" => (3, 0, QtyFormat::DecimalSI),
        "M" => (6, 0, QtyFormat::DecimalSI),
        "G" => (9, 0, QtyFormat::DecimalSI),
        "T" => (12, 0, QtyFormat::DecimalSI),
        "P" => (15, 0, QtyFormat::DecimalSI),
        "E" => (18, 0, QtyFormat::DecimalSI),
        "Ki" => (0, 10, QtyFormat::BinarySI),
        "Mi" => (0, 20, QtyFormat::BinarySI),
        "Gi" => (0, 30, QtyFormat::BinarySI),
        "Ti" => (0, 40, QtyFormat::BinarySI),
        "Pi" => (0, 50, QtyFormat::BinarySI),
        "Ei" => (0, 60, QtyFormat::BinarySI),
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or(QUANTITY_FORMAT_ERR)?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(QUANTITY_FORMAT_ERR);
            }
            let e: i32 = exp.parse().map_err(|_| QUANTITY_FORMAT_ERR)?;
            (e, 0, QtyFormat::DecimalExponent)
        }
    };
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let scale = exp10 + 9 - i32::try_from(frac_part.len()).unwrap_or(i32::MAX);
    let mut overflow = false;
    let mut nano: i128 = 0;
    for d in digits.bytes() {
        match nano
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(d - b'0')))
        {
            Some(v) => nano = v,
            None => overflow = true,
        }
    }
    if scale >= 0 {
        for _ in 0..scale {
            nano = nano.checked_mul(10).unwrap_or_else(|| {
                overflow = true;
                i128::MAX
            });
        }
    } else {
        let div = 10i128
            .checked_pow(scale.unsigned_abs())
            .unwrap_or(i128::MAX);
        nano = if nano == 0 { 0 } else { (nano - 1) / div + 1 };
    }
    for _ in 0..pow2 {
        nano = nano.checked_mul(2).unwrap_or_else(|| {
            overflow = true;
            i128::MAX
        });
    }
    if overflow {
        nano = i128::MAX;
    }
    Ok(Qty {
        nano: if neg { -nano } else { nano },
        format,
        overflow,
    })
}

/// The canonical text of a quantity after upstream's defaulting (rounded up to thousandths)
/// and serialization: `0.5` → `500m`, `1024Mi` → `1Gi`, `1.5Gi` → `1536Mi`. `None` when it
/// does not parse or is out of range (left as written).
pub(crate) fn canonical_quantity(s: &str) -> Option<String> {
    let q = parse_quantity(s).ok()?;
    if q.overflow {
        return None;
    }
    const MILLI: i128 = 1_000_000;
    let mut n = q.nano;
    if n % MILLI != 0 {
        n = (n / MILLI + n.signum()) * MILLI;
    }
    if n == 0 {
        return Some("0".to_owned());
    }
    let sign = if n < 0 { "-" } else { "" };
    let abs = n.abs();
    const UNIT: i128 = 1_000_000_000;
    if q.format == QtyFormat::BinarySI && abs >= 1024 * UNIT && abs % UNIT == 0 {
        let mut v = abs / UNIT;
        let mut e = 0usize;
        while v % 1024 == 0 && e < 6 {
            v /= 1024;
            e += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][e];
        return Some(format!("{sign}{v}{suffix}"));
    }
    let mut m = abs;
    let mut e: i32 = -9;
    while m % 1000 == 0 && e < 18 {
        m /= 1000;
        e += 3;
    }
    let suffix = if q.format == QtyFormat::DecimalExponent {
        if e == 0 {
            String::new()
        } else {
            format!("e{e}")
        }
    } else {
        match e {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => "",
        }
        .to_owned()
    };
    Some(format!("{sign}{m}{suffix}"))
}

/// A quantity's text as upstream prints it in messages (`Quantity.String()`).
pub(crate) fn quantity_string(s: &str) -> String {
    canonical_quantity(s).unwrap_or_else(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let q = |s| parse_quantity(s).map(|q| q.nano);
        assert_eq!(q("1"), Ok(1_000_000_000));
        assert_eq!(q("500m"), Ok(500_000_000));
        assert_eq!(q("1Ki"), Ok(1024 * 1_000_000_000));
        assert_eq!(q("1e3"), Ok(1_000_000_000_000));
        assert_eq!(q("0.5"), q("500m"));
        assert!(parse_quantity("abc").is_err());
        assert!(parse_quantity("1Gb").is_err());
        assert!(parse_quantity("").is_err());
        let c = |s| canonical_quantity(s).unwrap_or_default();
        assert_eq!(c("0.5"), "500m");
        assert_eq!(c("1000m"), "1");
        assert_eq!(c("1024Mi"), "1Gi");
        assert_eq!(c("1.5Gi"), "1536Mi");
        assert_eq!(c("512"), "512");
        assert_eq!(c("1500"), "1500");
        assert_eq!(c("2000"), "2k");
        assert_eq!(c("12e6"), "12e6");
        assert_eq!(c("0.0001"), "1m");
        assert_eq!(c("100Mi"), "100Mi");
    }
}

//! Resource quantities for usage sums: parse `500m`, `1.5Gi`, `2e3`, add them exactly (in
//! nano-units), and print the total in the canonical form upstream's `resource.Quantity`
//! would (`1500m`, `3Gi`, `2k`).

/// A quantity in nano-units, and whether it was written with binary suffixes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantity {
    /// The value times 10^9.
    pub nanos: i128,
    /// Whether the binary-SI format (Ki, Mi…) is the one to print in.
    pub binary: bool,
}

const NANO: i128 = 1_000_000_000;

impl Quantity {
    /// Parses a Kubernetes quantity.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (num, suffix) = s.split_at(split);
        let (neg, num) = match num.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, num.strip_prefix('+').unwrap_or(num)),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        // Keep nine fractional digits (finer than nano is rounded away, as upstream rounds up
        // to the nearest nano).
        let mut frac_n: i128 = 0;
        for (i, d) in frac.chars().enumerate() {
            let d = i128::from(d.to_digit(10)?);
            if i < 9 {
                frac_n += d * 10i128.pow(8 - u32::try_from(i).ok()?);
            }
        }
        let base = int * NANO + frac_n;
        let (mul, div, binary): (i128, i128, bool) = match suffix {
            "" => (1, 1, false),
            "n" => (1, NANO, false),
            "u" => (1, 1_000_000, false),
            "m" => (1, 1000, false),
            "k" => (1000, 1, false),
            "M" => (1_000_000, 1, false),
            "G" => (NANO, 1, false),
            "T" => (1_000_000_000_000, 1, false),
            "P" => (1_000_000_000_000_000, 1, false),
            "E" => (1_000_000_000_000_000_000, 1, false),
            "Ki" => (1 << 10, 1, true),
            "Mi" => (1 << 20, 1, true),
            "Gi" => (1 << 30, 1, true),
            "Ti" => (1 << 40, 1, true),
            "Pi" => (1 << 50, 1, true),
            "Ei" => (1 << 60, 1, true),
            e if e.starts_with('e') || e.starts_with('E') => {
                let exp: i32 = e[1..].parse().ok()?;
                if exp >= 0 {
                    (10i128.checked_pow(u32::try_from(exp).ok()?)?, 1, false)
                } else {
                    (1, 10i128.checked_pow(u32::try_from(-exp).ok()?)?, false)
                }
            }
            _ => return None,
        };
        let nanos = base.checked_mul(mul)? / div;
        Some(Self {
            nanos: if neg { -nanos } else { nanos },
            binary,
        })
    }

    /// The sum (printed in the format of the first non-zero operand).
    pub fn plus(self, other: Self) -> Self {
        Self {
            nanos: self.nanos + other.nanos,
            binary: if self.nanos == 0 {
                other.binary
            } else {
                self.binary
            },
        }
    }

    /// The larger of two.
    pub fn max(self, other: Self) -> Self {
        if other.nanos > self.nanos {
            other
        } else {
            self
        }
    }

    /// A whole count.
    pub fn count(n: usize) -> Self {
        Self {
            nanos: i128::try_from(n).unwrap_or(0) * NANO,
            binary: false,
        }
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.nanos;
        if n == 0 {
            return write!(f, "0");
        }
        if n % NANO != 0 {
            for (unit, suffix) in [(1_000_000, "m"), (1000, "u"), (1, "n")] {
                if n % unit == 0 {
                    return write!(f, "{}{suffix}", n / unit);
                }
            }
        }
        let v = n / NANO;
        if self.binary {
            for (shift, suffix) in [
                (60, "Ei"),
                (50, "Pi"),
                (40, "Ti"),
                (30, "Gi"),
                (20, "Mi"),
                (10, "Ki"),
            ] {
                let unit = 1i128 << shift;
                if v % unit == 0 {
                    return write!(f, "{}{suffix}", v / unit);
                }
            }
            return write!(f, "{v}");
        }
        for (exp, suffix) in [
            (18, "E"),
            (15, "P"),
            (12, "T"),
            (9, "G"),
            (6, "M"),
            (3, "k"),
        ] {
            let unit = 10i128.pow(exp);
            if v % unit == 0 {
                return write!(f, "{}{suffix}", v / unit);
            }
        }
        write!(f, "{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("parse {s}"))
    }

    #[test]
    fn sums_print_canonically() {
        assert_eq!(q("500m").plus(q("1")).to_string(), "1500m");
        assert_eq!(q("0.5").plus(q("0.5")).to_string(), "1");
        assert_eq!(q("1Gi").plus(q("1Gi")).to_string(), "2Gi");
        assert_eq!(q("512Mi").plus(q("512Mi")).to_string(), "1Gi");
        assert_eq!(q("1k").plus(q("1000")).to_string(), "2k");
        assert_eq!(q("100").to_string(), "100");
        assert_eq!(q("1e3").to_string(), "1k");
        assert_eq!(Quantity::count(3).to_string(), "3");
        assert!(Quantity::parse("1Qi").is_none());
    }
}

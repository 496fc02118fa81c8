//! CronJob schedules and time zones: robfig/cron's standard parser (five fields or an `@`
//! descriptor, with its own error texts) as `validateScheduleFormat` uses it, and the IANA
//! naming rules of `validateTimeZone` (without a time zone database).

use super::{invalid, Errs};

/// `validateTimeZone`, without a time zone database: the IANA naming rules only.
pub(crate) fn validate_time_zone(tz: &str, errs: &mut Errs) {
    if tz.is_empty() {
        errs.push(invalid(
            "spec.timeZone",
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'))
    };
    if !tz.split('/').all(part_ok) {
        errs.push(invalid(
            "spec.timeZone",
            tz,
            &format!("unknown time zone {tz}"),
        ));
        return;
    }
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(invalid(
            "spec.timeZone",
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
}

/// robfig/cron's `ParseStandard`: five fields or a descriptor; the error text is its own.
pub(crate) fn parse_cron(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("empty spec string".to_owned());
    }
    let mut spec = spec;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        spec = spec.split_once(' ').map_or("", |(_, rest)| rest.trim());
    }
    if let Some(descriptor) = spec.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d.starts_with("every ") => {
                let dur = &d["every ".len()..];
                if go_duration_ok(dur) {
                    Ok(())
                } else {
                    Err(format!(
                        "failed to parse duration {spec}: time: invalid duration {}",
                        super::go_quote(dur)
                    ))
                }
            }
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u64, u64, &[&str], u64); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, base)) in fields.iter().zip(bounds) {
        for expr in field.split(',').filter(|e| !e.is_empty()) {
            cron_range(expr, min, max, names, base)?;
        }
    }
    Ok(())
}

fn cron_int(expr: &str) -> Result<u64, String> {
    expr.parse::<i64>()
        .map_err(|_| {
            format!(
                "failed to parse int from {expr}: strconv.Atoi: parsing {}: invalid syntax",
                super::go_quote(expr)
            )
        })
        .and_then(|n| {
            u64::try_from(n).map_err(|_| format!("negative number ({n}) not allowed: {n}"))
        })
}

fn cron_range(expr: &str, min: u64, max: u64, names: &[&str], base: u64) -> Result<(), String> {
    let range_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_step[0].split('-').collect();
    let value = |s: &str| match names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        Some(i) => Ok(i as u64 + base),
        None => cron_int(s),
    };
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        (min, max)
    } else {
        let start = value(low_high[0])?;
        match low_high.len() {
            1 => (start, start),
            2 => (start, value(low_high[1])?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_step.len() {
        1 => 1,
        2 => {
            let step = cron_int(range_step[1])?;
            if low_high.len() == 1 {
                end = max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

/// Go's `time.ParseDuration` syntax: signed, one or more `<number><unit>`.
fn go_duration_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if n == 0 || rest[..n] == *"." {
            return false;
        }
        rest = &rest[n..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("0 9 * JAN-MAR mon-fri").is_ok());
        assert!(parse_cron("@hourly").is_ok());
        assert!(parse_cron("@every 1h30m").is_ok());
        assert_eq!(
            parse_cron("* * *"),
            Err("expected exactly 5 fields, found 3: [* * *]".to_owned())
        );
        assert_eq!(
            parse_cron("61 * * * *"),
            Err("end of range (61) above maximum (59): 61".to_owned())
        );
        assert_eq!(
            parse_cron("x * * * *"),
            Err(
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
                    .to_owned()
            )
        );
        let mut errs = Vec::new();
        validate_time_zone("Europe/Paris", &mut errs);
        validate_time_zone("Local", &mut errs);
        assert_eq!(errs.len(), 1);
    }
}

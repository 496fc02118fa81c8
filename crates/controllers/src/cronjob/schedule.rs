//! Cron schedules as upstream's CronJob understands them (robfig/cron's standard parser):
//! five fields (minute, hour, day of month, month, day of week) of `*`/`?`, numbers, names
//! (`JAN`–`DEC`, `SUN`–`SAT`), ranges, steps and lists; the macros `@yearly`/`@annually`,
//! `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly` and `@every <duration>`. As in
//! robfig, when both day fields are restricted a day matching either one counts. Times are
//! computed in an IANA time zone read from the system's zoneinfo.

use std::str::FromStr;
use std::time::Duration;

use k8s_openapi::jiff::civil::DateTime;
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Span, Timestamp};

/// Why a schedule or time zone was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The schedule does not parse.
    #[error("{0}")]
    Parse(String),
    /// The time zone is unknown.
    #[error("unknown time zone {0}")]
    UnknownTimeZone(String),
}

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// A five-field cron expression, each field a bitset.
    Cron {
        /// Minutes 0–59.
        minutes: u64,
        /// Hours 0–23.
        hours: u64,
        /// Days of month 1–31.
        days: u64,
        /// Months 1–12.
        months: u64,
        /// Days of week 0–6 (Sunday 0).
        weekdays: u64,
        /// Whether the day-of-month field was `*` or `?`.
        days_star: bool,
        /// Whether the day-of-week field was `*` or `?`.
        weekdays_star: bool,
    },
    /// `@every <duration>`.
    Every(Duration),
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u32) -> Result<u32, Error> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(u32::try_from(i).unwrap_or(0) + offset);
    }
    s.parse()
        .map_err(|_| Error::Parse(format!("failed to parse int from {s}")))
}

/// Parses one field into a bitset; whether it started with `*` or `?`.
fn field(s: &str, min: u32, max: u32, names: &[&str], offset: u32) -> Result<(u64, bool), Error> {
    let mut bits = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let st: u32 = st
                    .parse()
                    .map_err(|_| Error::Parse(format!("failed to parse int from {st}")))?;
                (r, Some(st))
            }
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, offset)?, value(b, names, offset)?)
        } else {
            let v = value(range, names, offset)?;
            // "a/n" runs from a to the end, as robfig.
            (v, if step.is_some() { max } else { v })
        };
        if lo < min {
            return Err(Error::Parse(format!(
                "beginning of range ({lo}) below minimum ({min}): {part}"
            )));
        }
        if hi > max {
            return Err(Error::Parse(format!(
                "end of range ({hi}) above maximum ({max}): {part}"
            )));
        }
        if lo > hi {
            return Err(Error::Parse(format!(
                "beginning of range ({lo}) beyond end of range ({hi}): {part}"
            )));
        }
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(Error::Parse(format!(
                "step of range should be a positive number: {part}"
            )));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, s.starts_with('*') || s.starts_with('?')))
}

/// Parses a Go-style duration (`1h30m`, `90s`, `2h`).
fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_len);
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * secs;
        rest = tail;
    }
    Some(Duration::from_secs_f64(total))
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
            return Err(Error::Parse(
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into(),
            ));
        }
        let expr = match s {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            _ => s,
        };
        if let Some(d) = expr.strip_prefix("@every ") {
            let d = go_duration(d.trim())
                .ok_or_else(|| Error::Parse(format!("failed to parse duration {s}")))?;
            // robfig rounds to at least a second.
            return Ok(Schedule::Every(d.max(Duration::from_secs(1))));
        }
        if expr.starts_with('@') {
            return Err(Error::Parse(format!("unrecognized descriptor: {s}")));
        }
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(Error::Parse(format!(
                "expected exactly 5 fields, found {}: {s}",
                fields.len()
            )));
        }
        let (minutes, _) = field(fields[0], 0, 59, &[], 0)?;
        let (hours, _) = field(fields[1], 0, 23, &[], 0)?;
        let (days, days_star) = field(fields[2], 1, 31, &[], 0)?;
        let (months, _) = field(fields[3], 1, 12, &MONTHS, 1)?;
        let (weekdays, weekdays_star) = field(fields[4], 0, 6, &WEEKDAYS, 0)?;
        Ok(Schedule::Cron {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star,
            weekdays_star,
        })
    }
}

fn has(bits: u64, v: impl TryInto<u32>) -> bool {
    v.try_into()
        .ok()
        .is_some_and(|v: u32| v < 64 && bits & (1 << v) != 0)
}

impl Schedule {
    /// The first activation strictly after `after`, in `tz` (None past five years).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let Schedule::Cron {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star,
            weekdays_star,
        } = self
        else {
            let Schedule::Every(d) = self else {
                return None;
            };
            let whole = Timestamp::from_second(after.as_second()).ok()?;
            return whole
                .checked_add(Span::new().seconds(i64::try_from(d.as_secs()).ok()?))
                .ok();
        };
        let local = tz.to_datetime(after);
        let mut dt = DateTime::new(
            local.year(),
            local.month(),
            local.day(),
            local.hour(),
            local.minute(),
            0,
            0,
        )
        .ok()?
        .checked_add(Span::new().minutes(1))
        .ok()?;
        let limit = local.year() + 5;
        let day_ok = |dt: &DateTime| {
            let dom = has(*days, dt.day());
            let dow = has(*weekdays, dt.weekday().to_sunday_zero_offset());
            if *days_star || *weekdays_star {
                dom && dow
            } else {
                dom || dow
            }
        };
        loop {
            if dt.year() > limit {
                return None;
            }
            if !has(*months, dt.month()) {
                let first = dt.date().first_of_month();
                dt = first
                    .checked_add(Span::new().months(1))
                    .ok()?
                    .to_datetime(Default::default());
                continue;
            }
            if !day_ok(&dt) {
                dt = dt.date().tomorrow().ok()?.to_datetime(Default::default());
                continue;
            }
            if !has(*hours, dt.hour()) {
                dt = DateTime::new(dt.year(), dt.month(), dt.day(), dt.hour(), 0, 0, 0)
                    .ok()?
                    .checked_add(Span::new().hours(1))
                    .ok()?;
                continue;
            }
            if !has(*minutes, dt.minute()) {
                dt = dt.checked_add(Span::new().minutes(1)).ok()?;
                continue;
            }
            let ts = tz.to_timestamp(dt).ok()?;
            if ts > after {
                return Some(ts);
            }
            dt = dt.checked_add(Span::new().minutes(1)).ok()?;
        }
    }
}

/// The time zone named `name` (IANA), read from the system's zoneinfo (`$ZONEINFO` or
/// `/usr/share/zoneinfo`).
pub fn time_zone(name: &str) -> Result<TimeZone, Error> {
    if name == "UTC" || name == "Etc/UTC" {
        return Ok(TimeZone::UTC);
    }
    let bad = || Error::UnknownTimeZone(name.to_owned());
    if name.is_empty() || name.contains("..") || name.starts_with('/') {
        return Err(bad());
    }
    let dirs = std::env::var("ZONEINFO").ok().into_iter().chain([
        "/usr/share/zoneinfo".to_owned(),
        "/usr/lib/zoneinfo".to_owned(),
    ]);
    for dir in dirs {
        if let Ok(data) = std::fs::read(std::path::Path::new(&dir).join(name)) {
            return TimeZone::tzif(name, &data).map_err(|_| bad());
        }
    }
    Err(bad())
}

/// The process's local time zone (`$TZ`, else `/etc/localtime`, else UTC), used when a
/// CronJob sets no timeZone, as upstream.
pub fn local_time_zone() -> TimeZone {
    if let Ok(tz) = std::env::var("TZ") {
        if let Ok(z) = time_zone(tz.trim_start_matches(':')) {
            return z;
        }
    }
    std::fs::read("/etc/localtime")
        .ok()
        .and_then(|d| TimeZone::tzif("Local", &d).ok())
        .unwrap_or(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn next(expr: &str, after: &str) -> String {
        let s: Schedule = expr.parse().unwrap_or_else(|e| panic!("{expr}: {e}"));
        s.next_after(ts(after), &TimeZone::UTC)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn standard_fields_ranges_steps_lists_and_names() {
        assert_eq!(
            next("* * * * *", "2024-01-01T00:00:30Z"),
            "2024-01-01T00:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T00:01:00Z"),
            "2024-01-01T00:15:00Z"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2024-01-01T10:00:00Z"),
            "2024-01-01T13:00:00Z"
        );
        assert_eq!(
            next("30 2 1,15 * *", "2024-01-02T00:00:00Z"),
            "2024-01-15T02:30:00Z"
        );
        assert_eq!(
            next("0 0 * FEB MON", "2024-01-01T00:00:00Z"),
            "2024-02-05T00:00:00Z"
        );
        assert_eq!(
            next("@hourly", "2024-01-01T00:00:00Z"),
            "2024-01-01T01:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2024-03-01T00:00:00Z"),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("@every 90s", "2024-01-01T00:00:00.5Z"),
            "2024-01-01T00:01:30Z"
        );
    }

    #[test]
    fn both_day_fields_restricted_match_either() {
        // The 13th, or any Friday: 2024-01-05 is a Friday.
        assert_eq!(
            next("0 0 13 * 5", "2024-01-01T00:00:00Z"),
            "2024-01-05T00:00:00Z"
        );
        // Day-of-week star: only the 13th.
        assert_eq!(
            next("0 0 13 * *", "2024-01-01T00:00:00Z"),
            "2024-01-13T00:00:00Z"
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* * * * 7",
            "5-1 * * * *",
            "@fortnightly",
            "CRON_TZ=UTC * * * * *",
            "*/0 * * * *",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        let Ok(tz) = time_zone("America/New_York") else {
            return; // no zoneinfo on this machine
        };
        let s: Schedule = "0 9 * * *".parse().unwrap_or_else(|e| panic!("{e}"));
        let got = s.next_after(ts("2024-01-01T00:00:00Z"), &tz);
        assert_eq!(got, Some(ts("2024-01-01T14:00:00Z")));
        assert!(time_zone("Not/AZone").is_err());
    }
}

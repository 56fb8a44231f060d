//! Times as keys and spend logs carry them: Unix seconds inside, ISO 8601
//! (UTC) in JSON, as LiteLLM writes them, and LiteLLM's durations
//! (`30s`, `10m`, `1h`, `7d`, `2w`, `1mo`).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}

/// `2026-12-07T16:30:00Z`.
pub fn iso8601(secs: i64) -> String {
    let (date, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(date);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-12-07T16:30:00.123Z`.
pub fn iso8601_ms(ms: i64) -> String {
    let s = iso8601(ms.div_euclid(1000));
    format!("{}.{:03}Z", &s[..s.len() - 1], ms.rem_euclid(1000))
}

/// A LiteLLM duration in seconds: a number and a unit (`s`, `m`, `h`, `d`,
/// `w`, `mo` as 30 days), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "mo" => 30 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit_secs)
        .filter(|s| *s > 0 && *s <= MAX_DURATION)
}

/// The longest duration taken: a hundred years (so a time a duration on
/// from now never overflows).
pub const MAX_DURATION: i64 = 100 * 365 * 86_400;

/// When a budget period that ended at `at` resets next, seen at `now`: a
/// whole period on from `at`, or from `now` if several were missed.
pub fn next_reset(at: i64, every: i64, now: i64) -> i64 {
    let next = at.saturating_add(every);
    if next > now {
        next
    } else {
        now.saturating_add(every)
    }
}

/// `YYYY-MM-DD` (or an ISO 8601 time starting so) → Unix seconds at that
/// day's start, UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.get(..10)?;
    let mut parts = s.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400)
}

/// An ISO 8601 time (`2026-12-07T16:30:00`, with or without fractions of
/// a second and a `Z` or `+00:00`; a space for the `T` as PostgreSQL
/// writes it) → Unix seconds; a time without a zone is UTC.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let day = parse_date(s)?;
    let rest = s.get(10..)?;
    let rest = rest.strip_prefix(['T', ' ']).unwrap_or(rest);
    if rest.is_empty() {
        return Some(day);
    }
    let clock = rest.get(..8)?;
    let mut parts = clock.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: i64 = parts.next()?.parse().ok()?;
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // A zone other than UTC: its offset taken off.
    let zone = rest[8..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "" | "Z" => 0,
        z => {
            let sign = match z.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = z[1..].chars().filter(char::is_ascii_digit).collect();
            let zh: i64 = digits.get(..2)?.parse().ok()?;
            let zm: i64 = digits.get(2..4).map_or(Some(0), |d| d.parse().ok())?;
            sign * (zh * 3600 + zm * 60)
        }
    };
    Some(day + h * 3600 + m * 60 + sec - offset)
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_utc_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_796_661_045), "2026-12-07T16:30:45Z");
        assert_eq!(iso8601_ms(1_796_661_045_007), "2026-12-07T16:30:45.007Z");
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_date("2026-12-07T10:00:00Z"), Some(1_796_601_600));
        for day in [-1i64, 0, 59, 60, 10_957, 20_429, 1_000_000] {
            let s = iso8601(day * 86_400);
            assert_eq!(parse_date(&s), Some(day * 86_400), "{s}");
        }
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn reads_timestamps_as_postgresql_and_prisma_write_them() {
        let t = 1_796_661_045;
        for s in [
            "2026-12-07T16:30:45",
            "2026-12-07T16:30:45.123",
            "2026-12-07 16:30:45.5",
            "2026-12-07T16:30:45Z",
            "2026-12-07T16:30:45.000+00:00",
            "2026-12-07T18:30:45+02:00",
            "2026-12-07T15:00:45-0130",
        ] {
            assert_eq!(parse_timestamp(s), Some(t), "{s}");
        }
        assert_eq!(parse_timestamp("2026-12-07"), Some(1_796_601_600));
        for bad in [
            "2026-12-07T25:00:00",
            "2026-12-07Tnoon",
            "2026-12-07T16:30:45 CET",
            "",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_litellm_durations() {
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("30d"), Some(30 * 86_400));
        assert_eq!(parse_duration("2w"), Some(14 * 86_400));
        assert_eq!(parse_duration("1mo"), Some(30 * 86_400));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("36500d"), Some(MAX_DURATION));
        for bad in [
            "",
            "d",
            "0d",
            "1y",
            "-1d",
            "1.5h",
            "36501d",
            "99999999999999999w",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

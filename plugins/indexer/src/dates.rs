//! Times in UTC for `before:` / `after:` and for the answers: `YYYY[-MM[-DD[THH:MM[:SS]]]]`,
//! `today`, `yesterday`, and spans back from now (`12h`, `7d`, `2w`), read into milliseconds
//! since the epoch; and milliseconds written back as `YYYY-MM-DD HH:MM UTC`.

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (`civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    days_from_civil(
        if m == 12 { y + 1 } else { y },
        if m == 12 { 1 } else { m + 1 },
        1,
    ) - days_from_civil(y, m, 1)
}

/// `ms` since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn format(ms: u64) -> String {
    let ms = ms as i64;
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let in_day = ms.rem_euclid(DAY_MS) / 60_000;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        in_day / 60,
        in_day % 60
    )
}

fn number(s: &str, digits: usize) -> Option<i64> {
    (s.len() == digits && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// What a `before:` / `after:` value means, in ms since the epoch; `now_ms` anchors the
/// relative forms. `None` when it is none of the forms.
pub fn parse(value: &str, now_ms: u64) -> Option<u64> {
    let v = value.trim().to_ascii_lowercase();
    let now = now_ms as i64;
    let today = now.div_euclid(DAY_MS) * DAY_MS;
    match v.as_str() {
        "today" => return Some(today as u64),
        "yesterday" => return Some((today - DAY_MS).max(0) as u64),
        _ => {}
    }
    if let Some(unit) = v.chars().last().filter(|c| "hdw".contains(*c)) {
        if let Some(n) = number(&v[..v.len() - 1], v.len() - 1).filter(|n| *n <= 100_000) {
            let span = n * match unit {
                'h' => 3_600_000,
                'd' => DAY_MS,
                _ => 7 * DAY_MS,
            };
            return Some((now - span).max(0) as u64);
        }
    }
    let (date, time) = match v.split_once('t') {
        Some((d, t)) => (d, Some(t.trim_end_matches('z'))),
        None => (v.as_str(), None),
    };
    let mut parts = date.split('-');
    let y = number(parts.next()?, 4).filter(|y| (1970..=9999).contains(y))?;
    let m = match parts.next() {
        Some(p) => number(p, 2).filter(|m| (1..=12).contains(m))?,
        None => 1,
    };
    let d = match parts.next() {
        Some(p) => number(p, 2).filter(|d| *d >= 1 && *d <= days_in_month(y, m))?,
        None => 1,
    };
    if parts.next().is_some() {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * DAY_MS;
    if let Some(t) = time {
        let mut hms = t.split(':');
        let h = number(hms.next()?, 2).filter(|h| *h < 24)?;
        let min = number(hms.next()?, 2).filter(|m| *m < 60)?;
        let s = match hms.next() {
            Some(p) => number(p, 2).filter(|s| *s < 60)?,
            None => 0,
        };
        if hms.next().is_some() {
            return None;
        }
        ms += ((h * 60 + min) * 60 + s) * 1000;
    }
    Some(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000; // 2023-11-14 22:13:20 UTC

    #[test]
    fn dates_and_times_read_as_utc() {
        assert_eq!(parse("1970-01-01", NOW), Some(0));
        assert_eq!(parse("2023-11-14", NOW), Some(1_699_920_000_000));
        assert_eq!(parse("2023-11-14T22:13:20Z", NOW), Some(NOW));
        assert_eq!(parse("2023-11-14T22:13", NOW), Some(NOW - 20_000));
        assert_eq!(parse("2024-02-29", NOW), Some(1_709_164_800_000));
        assert_eq!(parse("2023-11", NOW), parse("2023-11-01", NOW));
        assert_eq!(parse("2023", NOW), parse("2023-01-01", NOW));
    }

    #[test]
    fn relative_forms_count_back_from_now() {
        assert_eq!(parse("today", NOW), Some(1_699_920_000_000));
        assert_eq!(
            parse("yesterday", NOW),
            Some(1_699_920_000_000 - DAY_MS as u64)
        );
        assert_eq!(parse("2d", NOW), Some(NOW - 2 * DAY_MS as u64));
        assert_eq!(parse("3h", NOW), Some(NOW - 3 * 3_600_000));
        assert_eq!(parse("1w", NOW), Some(NOW - 7 * DAY_MS as u64));
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "2023-13-01",
            "2023-02-30",
            "2023-1-1",
            "20231114",
            "1969-12-31",
            "soon",
            "2023-11-14T25:00",
            "2023-11-14T10",
            "12x",
            "-1d",
            "99999999999d",
        ] {
            assert_eq!(parse(bad, NOW), None, "{bad}");
        }
    }

    #[test]
    fn times_format_back() {
        assert_eq!(format(NOW), "2023-11-14 22:13 UTC");
        assert_eq!(format(0), "1970-01-01 00:00 UTC");
    }
}

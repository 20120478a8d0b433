//! Durations as people write and read them: `10m`, `30s`, `2h`, `1d` in commands, and
//! `1h 02m 03.250s` in answers.

/// The longest window `last` accepts: a year.
pub const MAX_WINDOW_MS: u64 = 365 * 86_400_000;

/// `10m`, `90s`, `2h` or `1d` in milliseconds; `None` for anything else, or for a window of
/// nothing or of more than [`MAX_WINDOW_MS`].
pub fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    // Eight digits of any unit already pass the cap; longer numbers are not parsed at all.
    if number.is_empty() || number.len() > 8 {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    let unit_ms = match unit {
        "s" | "sec" | "secs" => 1_000,
        "m" | "min" | "mins" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    let ms = n.checked_mul(unit_ms)?;
    (1..=MAX_WINDOW_MS).contains(&ms).then_some(ms)
}

/// `ms` for people: `3.250s`, `2m 05.000s`, `1h 02m 03.250s`, `3d 04h 05m 06.000s`.
pub fn format(ms: u64) -> String {
    let (days, rest) = (ms / 86_400_000, ms % 86_400_000);
    let (hours, rest) = (rest / 3_600_000, rest % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    if days > 0 {
        format!("{days}d {hours:02}h {minutes:02}m {seconds:02}.{millis:03}s")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m {seconds:02}.{millis:03}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}.{millis:03}s")
    } else {
        format!("{seconds}.{millis:03}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_in_each_unit() {
        assert_eq!(parse("10m"), Some(600_000));
        assert_eq!(parse(" 90s "), Some(90_000));
        assert_eq!(parse("2h"), Some(7_200_000));
        assert_eq!(parse("1d"), Some(86_400_000));
        assert_eq!(parse("5min"), Some(300_000));
        assert_eq!(parse("365d"), Some(MAX_WINDOW_MS));
    }

    #[test]
    fn nonsense_empty_and_huge_windows_are_refused() {
        for bad in [
            "",
            "m",
            "10",
            "10x",
            "-5m",
            "0m",
            "1.5h",
            "10 m",
            "366d",
            "99999999999999999999s",
            "1e3s",
            "１０m",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_read_from_the_largest_unit_down() {
        assert_eq!(format(0), "0.000s");
        assert_eq!(format(3_250), "3.250s");
        assert_eq!(format(125_000), "2m 05.000s");
        assert_eq!(format(3_723_250), "1h 02m 03.250s");
        assert_eq!(
            format(3 * 86_400_000 + 4 * 3_600_000 + 5 * 60_000 + 6_000),
            "3d 04h 05m 06.000s"
        );
    }
}

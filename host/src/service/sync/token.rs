//! Stream tokens. `/sync` hands out `s{stream}_{typing}`; pagination uses `t{stream}`. Both
//! name a point in the one global stream: "after every event with a position up to here".

use crate::service::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub stream: i64,
    pub typing: u64,
}

impl Position {
    pub fn sync_token(&self) -> String {
        format!("s{}_{}", self.stream, self.typing)
    }

    pub fn parse_sync(token: &str) -> Result<Position> {
        let bad = || Error::InvalidParam(format!("'{}' is not a valid sync token", shown(token)));
        let rest = token.strip_prefix('s').ok_or_else(bad)?;
        let (stream, typing) = rest.split_once('_').ok_or_else(bad)?;
        Ok(Position {
            stream: number(stream).ok_or_else(bad)?,
            typing: number(typing).ok_or_else(bad)?,
        })
    }
}

pub fn pagination_token(stream: i64) -> String {
    format!("t{stream}")
}

/// The stream position of a pagination or sync token.
pub fn parse_pagination(token: &str) -> Result<i64> {
    if let Some(rest) = token.strip_prefix('t') {
        // Backfilled history sits below position 0.
        let value = match rest.strip_prefix('-') {
            Some(digits) => number::<i64>(digits).filter(|n| *n > 0).map(|n| -n),
            None => number(rest),
        };
        return value.ok_or_else(|| {
            Error::InvalidParam(format!("'{}' is not a valid token", shown(token)))
        });
    }
    Position::parse_sync(token).map(|p| p.stream)
}

/// A position as tokens write it: decimal digits without a sign or a leading zero, so that a
/// token is read only in the one form the server writes (and prints back to itself).
fn number<T: std::str::FromStr>(digits: &str) -> Option<T> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// A token as an error quotes it: short and escaped.
fn shown(token: &str) -> String {
    token
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let p = Position {
            stream: 42,
            typing: 7,
        };
        assert_eq!(Position::parse_sync(&p.sync_token()).unwrap(), p);
        assert_eq!(parse_pagination("t41").unwrap(), 41);
        assert_eq!(parse_pagination("s42_7").unwrap(), 42);
    }

    #[test]
    fn refuses_garbage() {
        for t in [
            "", "s", "s1", "x1_2", "t-0", "t--1", "t-01", "t-", "tabc", "s1_x",
        ] {
            assert!(parse_pagination(t).is_err(), "{t}");
        }
    }

    #[test]
    fn backfilled_history_has_negative_pagination_tokens_that_read_back() {
        for n in [-1, -42, i64::MIN + 1] {
            assert_eq!(parse_pagination(&pagination_token(n)).ok(), Some(n));
        }
    }

    #[test]
    fn reads_only_the_form_it_writes() {
        for t in [
            "t+5",
            "t05",
            "t",
            "s+1_2",
            "s1_+2",
            "s01_2",
            "s1_02",
            "s-1_0",
            "s1_2_3",
            "t 1",
            "t9223372036854775808",
            "s1_18446744073709551616",
        ] {
            assert!(parse_pagination(t).is_err(), "{t}");
        }
        assert_eq!(parse_pagination("t0").unwrap(), 0);
        assert_eq!(
            Position::parse_sync("s0_18446744073709551615")
                .unwrap()
                .typing,
            u64::MAX
        );
    }
}

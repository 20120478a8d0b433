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
        let bad = || Error::InvalidParam(format!("'{token}' is not a valid sync token"));
        let rest = token.strip_prefix('s').ok_or_else(bad)?;
        let (stream, typing) = rest.split_once('_').ok_or_else(bad)?;
        Ok(Position {
            stream: stream.parse().map_err(|_| bad())?,
            typing: typing.parse().map_err(|_| bad())?,
        })
    }
}

pub fn pagination_token(stream: i64) -> String {
    format!("t{stream}")
}

/// The stream position of a pagination or sync token.
pub fn parse_pagination(token: &str) -> Result<i64> {
    if let Some(rest) = token.strip_prefix('t') {
        return rest
            .parse()
            .ok()
            .filter(|s: &i64| *s >= 0)
            .ok_or_else(|| Error::InvalidParam(format!("'{token}' is not a valid token")));
    }
    Position::parse_sync(token).map(|p| p.stream)
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
        for t in ["", "s", "s1", "x1_2", "t-1", "tabc", "s1_x"] {
            assert!(parse_pagination(t).is_err(), "{t}");
        }
    }
}

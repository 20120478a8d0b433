//! Sync and pagination tokens (`service/sync/token.rs`): a token that parses prints back to
//! itself (there is one spelling per position), a position's token parses back to it, and
//! nothing else panics or parses to a negative stream position, except pagination tokens
//! `t-N`, which name backfilled history below position 0.

use plugboard::service::sync::token::{pagination_token, parse_pagination, Position};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use crate::{text, Target};

pub const TARGET: Target = Target {
    name: "sync_token",
    check,
    dictionary: &[
        b"s",
        b"t",
        b"_",
        b"0",
        b"1",
        b"+",
        b"-",
        b"00",
        b"9223372036854775807",
        b"9223372036854775808",
        b"18446744073709551615",
        b"18446744073709551616",
        b" ",
        b"\x00",
        b"\xd9\xa3",
    ],
    generate: Some(generate),
};

/// Tokens the server writes, and strings close to them.
fn generate() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        (0..=i64::MAX, any::<u64>())
            .prop_map(|(stream, typing)| { Position { stream, typing }.sync_token().into_bytes() }),
        (0..=i64::MAX).prop_map(|s| pagination_token(s).into_bytes()),
        (i64::MIN + 1..0).prop_map(|s| pagination_token(s).into_bytes()),
        "[st][-+0-9_]{0,24}".prop_map(String::into_bytes),
    ]
    .boxed()
}

pub fn check(input: &[u8]) -> Result<(), String> {
    let Some(token) = text(input) else {
        return Ok(());
    };
    if let Ok(p) = Position::parse_sync(token) {
        if p.stream < 0 {
            return Err(format!(
                "{token:?} parsed to a negative stream {}",
                p.stream
            ));
        }
        let printed = p.sync_token();
        if printed != token {
            return Err(format!("{token:?} parsed, but prints as {printed:?}"));
        }
        let again = Position::parse_sync(&printed).map_err(|e| e.to_string())?;
        if again != p {
            return Err(format!("{printed:?} parses to {again:?}, not {p:?}"));
        }
    }
    if let Ok(stream) = parse_pagination(token) {
        // Backfilled history sits below 0, and only a pagination token names it.
        if stream < 0 && !token.starts_with('t') {
            return Err(format!("{token:?} parsed to a negative stream {stream}"));
        }
        if token.starts_with('t') && pagination_token(stream) != token {
            return Err(format!(
                "{token:?} parsed, but prints as {:?}",
                pagination_token(stream)
            ));
        }
    }
    Ok(())
}

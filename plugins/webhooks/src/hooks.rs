//! Incoming hooks in the plugin's store: a record per hook under its token's selector
//! (`hook/{selector}`: room, name, the verifier's hash) and a room's index of its hooks by
//! name (`room/{room}/hook/{name}`), so a token finds its hook in one read and a revocation
//! takes effect with the next request.

use plugboard_sdk::{kv, Error};
use serde::{Deserialize, Serialize};

use crate::fits;
use crate::token::{self, NewToken};
use crate::totals;

/// One incoming hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// The room it posts into.
    pub room: String,
    /// Its name: the virtual user is `@_webhook_{name}`.
    pub name: String,
    /// The SHA-256 of its token's secret part.
    pub hash: String,
    /// Who made it.
    pub by: String,
}

/// The longest hook name: the localpart `_webhook_{name}` stays short.
pub const MAX_NAME: usize = 32;

/// Whether `name` may name a hook: 1 to 32 of `a-z`, `0-9`, `-`, `_`, `.`, starting with a
/// letter or digit (it becomes part of a user id).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// The localpart of a hook's virtual user.
pub fn localpart(name: &str) -> String {
    format!("_webhook_{name}")
}

fn record_key(selector: &str) -> String {
    format!("hook/{selector}")
}

fn index_prefix(room: &str) -> String {
    format!("room/{room}/hook/")
}

fn index_key(room: &str, name: &str) -> String {
    format!("{}{name}", index_prefix(room))
}

/// The hook a request's token names, if the token is whole and right.
pub fn find(token_text: &str) -> Result<Option<Hook>, Error> {
    let Some((selector, verifier)) = token::split(token_text) else {
        return Ok(None);
    };
    let Some(hook) = kv::get_json::<Hook>(&record_key(selector))? else {
        return Ok(None);
    };
    Ok(token::verify(verifier, &hook.hash).then_some(hook))
}

/// The names of a room's hooks, in order.
pub fn names(room: &str) -> Result<Vec<String>, Error> {
    let prefix = index_prefix(room);
    Ok(kv::all_keys(&prefix)?
        .into_iter()
        .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
        .collect())
}

/// Whether the room has a hook of this name.
pub fn exists(room: &str, name: &str) -> Result<bool, Error> {
    Ok(kv::get(&index_key(room, name))?.is_some())
}

/// Stores a hook for `token` (made with [`token::generate`]); answers `false`, with nothing
/// stored, when the host refused (its quota).
pub fn create(token: &NewToken, room: &str, name: &str, by: &str) -> Result<bool, Error> {
    let hook = Hook {
        room: room.to_string(),
        name: name.to_string(),
        hash: token.hash.clone(),
        by: by.to_string(),
    };
    let record = record_key(&token.selector);
    let index = index_key(room, name);
    if !fits(kv::set_json(&record, &hook))? {
        return Ok(false);
    }
    // Deleting what this call wrote is never refused.
    if !fits(kv::set(&index, token.selector.as_bytes()))? {
        kv::delete(&record)?;
        return Ok(false);
    }
    if !fits(totals::add_hooks(1))? {
        kv::delete(&index)?;
        kv::delete(&record)?;
        return Ok(false);
    }
    Ok(true)
}

/// Forgets a room's hook; answers whether there was one.
pub fn revoke(room: &str, name: &str) -> Result<bool, Error> {
    let key = index_key(room, name);
    let Some(selector) = kv::get(&key)? else {
        return Ok(false);
    };
    kv::delete(&record_key(&String::from_utf8_lossy(&selector)))?;
    kv::delete(&key)?;
    crate::puppet::forget(room, name)?;
    totals::add_hooks(-1)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lower_case_and_user_id_safe() {
        for ok in ["ci", "deploy-bot", "a.b_c", "9lives", &"x".repeat(MAX_NAME)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "CI",
            "-ci",
            "ci bot",
            "ci:evil",
            "ci/x",
            "é",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}

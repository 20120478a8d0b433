//! `homeserver`: the calls that ask about many rooms or events at once.

use crate::errcode::TOO_LARGE;
use crate::Refusal;

/// Most rooms or events one `access-to-rooms` or `visible-events` call asks about: each costs
/// the server a few reads, and a longer list is a plugin's loop, not one question.
pub const MAX_IDS_PER_CALL: usize = 1000;

/// Refuses a list of `len` ids (`what`: "rooms", "event ids") past [`MAX_IDS_PER_CALL`].
pub fn check_ids(len: usize, what: &str) -> Result<(), Refusal> {
    if len > MAX_IDS_PER_CALL {
        return Err(Refusal::new(
            TOO_LARGE,
            format!("at most {MAX_IDS_PER_CALL} {what} a call; this one has {len}"),
        ));
    }
    Ok(())
}

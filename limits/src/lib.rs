//! The limits Plugboard puts on what a plugin asks of its host, and the errors it answers
//! past them: one copy, used by the host (`plugboard`) that enforces them and by the SDK
//! (`plugboard-sdk`), whose native test harness must refuse what the host refuses, in the
//! host's words. No dependencies, so that a plugin built for `wasm32-wasip2` pays nothing
//! for it.
//!
//! Each module is named after the WIT interface whose calls it limits; a [`Refusal`] is the
//! WIT `error` (errcode and message) a call gets back.

#![warn(missing_docs)]

pub mod errcode;
pub mod homeserver;
pub mod kv;
pub mod timers;

/// What a host call answers when it refuses: the WIT `error`'s errcode and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A Matrix errcode (see [`errcode`]).
    pub errcode: &'static str,
    /// What a person reads.
    pub message: String,
}

impl Refusal {
    /// A refusal with `errcode` and `message`.
    pub fn new(errcode: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            errcode,
            message: message.into(),
        }
    }
}

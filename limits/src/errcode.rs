//! The Matrix errcodes a plugin sees when the host refuses a call for one of its limits.

/// A parameter is malformed or out of range (an empty key, a timer too far ahead).
pub const INVALID_PARAM: &str = "M_INVALID_PARAM";
/// Something is larger than the host takes (a key, a value, a payload, a list of ids).
pub const TOO_LARGE: &str = "M_TOO_LARGE";
/// The plugin has used up what it may have (its store's quota, its timers, one call's writes).
pub const RESOURCE_LIMIT_EXCEEDED: &str = "M_RESOURCE_LIMIT_EXCEEDED";

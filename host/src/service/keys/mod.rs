//! The server's signing identity: its ed25519 key, canonical JSON, content hashes, reference
//! hashes (event ids) and signatures, as the room versions and the key server need them.

pub(crate) mod canonical_json;
pub mod redaction;
pub mod signing;

pub use canonical_json::to_canonical;
pub(crate) use signing::ServerKey;

//! Hook tokens: a public selector that names the hook in the store and a secret verifier of
//! 256 bits from WASI random (the SDK's `random`), written URL-safe. Only the verifier's SHA-256 is stored, and
//! it is compared in constant time (`subtle`), so neither the store nor the timing of a
//! refusal gives a token away.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use plugboard_sdk::random;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes of the selector: enough that two hooks never share one.
const SELECTOR_BYTES: usize = 9;
/// Random bytes of the secret part.
const VERIFIER_BYTES: usize = 32;
/// Characters of each part once base64url-encoded (no padding).
const SELECTOR_LEN: usize = SELECTOR_BYTES.div_ceil(3) * 4;
const VERIFIER_LEN: usize = (VERIFIER_BYTES * 4).div_ceil(3);
/// Characters of a whole token.
pub const TOKEN_LEN: usize = SELECTOR_LEN + VERIFIER_LEN;

/// A token just made: the text to hand out once, and what the store keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The whole token, for the hook's URL.
    pub token: String,
    /// The public part: the hook's key in the store.
    pub selector: String,
    /// The SHA-256 of the secret part, base64url.
    pub hash: String,
}

/// Makes a fresh token from the system's random source.
pub fn generate() -> NewToken {
    let bytes = random::bytes(SELECTOR_BYTES + VERIFIER_BYTES);
    let selector = URL_SAFE_NO_PAD.encode(&bytes[..SELECTOR_BYTES]);
    let verifier = URL_SAFE_NO_PAD.encode(&bytes[SELECTOR_BYTES..]);
    NewToken {
        hash: hash(&verifier),
        token: format!("{selector}{verifier}"),
        selector,
    }
}

/// The selector and verifier of something that has a token's shape; `None` for anything
/// else, before any lookup.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let well_formed = token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| token.split_at(SELECTOR_LEN))
}

/// Whether `verifier` is the one whose hash is `stored`, in time that does not depend on
/// where they differ.
pub fn verify(verifier: &str, stored: &str) -> bool {
    hash(verifier).as_bytes().ct_eq(stored.as_bytes()).into()
}

fn hash(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::testing::Harness;

    /// Random numbers come from the harness (natively there is no WASI).
    fn host() -> Harness<crate::Webhooks> {
        Harness::new(serde_json::json!({})).unwrap()
    }

    #[test]
    fn tokens_are_long_url_safe_and_different_each_time() {
        let _host = host();
        let a = generate();
        let b = generate();
        assert_eq!(a.token.len(), TOKEN_LEN);
        assert_eq!(TOKEN_LEN, 12 + 43);
        assert_ne!(a.token, b.token);
        assert_ne!(a.selector, b.selector);
        let (selector, verifier) = split(&a.token).unwrap();
        assert_eq!(selector, a.selector);
        assert!(verify(verifier, &a.hash));
        assert!(!a.hash.contains(verifier), "the store keeps no secret");
    }

    #[test]
    fn a_changed_or_misshapen_token_is_refused() {
        let _host = host();
        let t = generate();
        let (_, verifier) = split(&t.token).unwrap();
        let mut other = verifier.to_string();
        let last = if other.ends_with('A') { "B" } else { "A" };
        other.replace_range(other.len() - 1.., last);
        assert!(!verify(&other, &t.hash));
        assert!(split(&t.token[1..]).is_none());
        assert!(split(&format!("{}x", t.token)).is_none());
        assert!(split(&"a/".repeat(TOKEN_LEN / 2 + 1)[..TOKEN_LEN]).is_none());
        assert!(split("").is_none());
    }
}

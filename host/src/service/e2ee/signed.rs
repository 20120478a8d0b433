//! Checking a client's signature on a JSON object (device keys, cross-signing keys): ed25519
//! over the canonical JSON without `signatures` and `unsigned`, as the spec's "Signing JSON"
//! says.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;

use crate::service::keys::to_canonical;

/// Whether `object` carries a valid signature by `signer`'s key `key_id` (`ed25519:…`), whose
/// public key is `public_key` (unpadded base64).
pub(crate) fn verify(object: &Value, signer: &str, key_id: &str, public_key: &str) -> bool {
    let Some(signature) = object["signatures"][signer][key_id].as_str() else {
        return false;
    };
    let Some(key) = decode::<32>(public_key).and_then(|k| VerifyingKey::from_bytes(&k).ok()) else {
        return false;
    };
    let Some(signature) = decode::<64>(signature).map(|s| Signature::from_bytes(&s)) else {
        return false;
    };
    key.verify(to_canonical(&signed_part(object)).as_bytes(), &signature)
        .is_ok()
}

/// `object` without `signatures` and `unsigned`: what a signature covers.
pub(crate) fn signed_part(object: &Value) -> Value {
    let mut bare = object.clone();
    if let Some(map) = bare.as_object_mut() {
        map.remove("signatures");
        map.remove("unsigned");
    }
    bare
}

/// Unpadded base64 of exactly `N` bytes; padded input is accepted too.
fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    STANDARD_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()?
        .try_into()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    fn signed(key: &SigningKey, object: Value) -> Value {
        let sig = key.sign(to_canonical(&object).as_bytes());
        let mut out = object;
        out["signatures"] =
            json!({ "@a:x": { "ed25519:D": STANDARD_NO_PAD.encode(sig.to_bytes()) } });
        out["unsigned"] = json!({ "note": "not signed" });
        out
    }

    #[test]
    fn a_signature_over_the_canonical_json_verifies_and_a_changed_object_does_not() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = STANDARD_NO_PAD.encode(key.verifying_key().to_bytes());
        let object = signed(&key, json!({ "b": 1, "a": "x" }));
        assert!(verify(&object, "@a:x", "ed25519:D", &public));
        assert!(!verify(&object, "@a:x", "ed25519:E", &public));
        let mut changed = object.clone();
        changed["a"] = json!("y");
        assert!(!verify(&changed, "@a:x", "ed25519:D", &public));
        let other =
            STANDARD_NO_PAD.encode(SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes());
        assert!(!verify(&object, "@a:x", "ed25519:D", &other));
    }
}

//! The server's ed25519 signing key: made on first start (file mode 0600), used to sign events
//! and the key server's response, and to compute event ids and content hashes.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{redaction, to_canonical};
use crate::service::room_version::RoomVersion;

pub(crate) struct ServerKey {
    server_name: String,
    key_id: String,
    key: SigningKey,
}

impl ServerKey {
    /// Reads `path`, or makes a new key there. The file holds `ed25519 <version> <seed>`,
    /// the format Synapse uses, so keys can move between servers.
    pub(crate) fn load_or_create(path: &Path, server_name: &str) -> std::io::Result<ServerKey> {
        if path.exists() {
            let text = std::fs::read_to_string(path)?;
            let parts: Vec<&str> = text.split_whitespace().collect();
            let bad = || {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not an `ed25519 <id> <seed>` key file", path.display()),
                )
            };
            if parts.len() != 3 || parts[0] != "ed25519" {
                return Err(bad());
            }
            let seed = STANDARD_NO_PAD
                .decode(parts[2].trim_end_matches('='))
                .map_err(|_| bad())?;
            let seed: [u8; 32] = seed.try_into().map_err(|_| bad())?;
            return Ok(ServerKey {
                server_name: server_name.to_string(),
                key_id: format!("ed25519:{}", parts[1]),
                key: SigningKey::from_bytes(&seed),
            });
        }
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let version: String = random_alnum(6);
        let line = format!(
            "ed25519 {version} {}\n",
            STANDARD_NO_PAD.encode(key.to_bytes())
        );
        write_private_file(path, line.as_bytes())?;
        Ok(ServerKey {
            server_name: server_name.to_string(),
            key_id: format!("ed25519:{version}"),
            key,
        })
    }

    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    pub(crate) fn public_key_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.key.verifying_key().to_bytes())
    }

    /// Adds this server's signature to `value["signatures"]`, signing the canonical JSON of
    /// `value` without `signatures` and `unsigned`.
    pub(crate) fn sign_json(&self, value: &mut Value) {
        let sig = self.signature_of(value);
        self.insert_signature(value, sig);
    }

    fn signature_of(&self, value: &Value) -> String {
        let mut copy = value.clone();
        if let Some(obj) = copy.as_object_mut() {
            obj.remove("signatures");
            obj.remove("unsigned");
        }
        self.sign_bytes(to_canonical(&copy).as_bytes())
    }

    /// This key's signature of `bytes`, unpadded base64 (an `X-Matrix` request signature).
    pub(crate) fn sign_bytes(&self, bytes: &[u8]) -> String {
        STANDARD_NO_PAD.encode(self.key.sign(bytes).to_bytes())
    }

    fn insert_signature(&self, value: &mut Value, sig: String) {
        let Some(obj) = value.as_object_mut() else {
            return;
        };
        let sigs = obj
            .entry("signatures")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(sigs) = sigs.as_object_mut() {
            let ours = sigs
                .entry(self.server_name.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(ours) = ours.as_object_mut() {
                ours.insert(self.key_id.clone(), Value::String(sig));
            }
        }
    }

    /// Adds this server's signature to another server's PDU (an invite of one of our users),
    /// over the same bytes its event id hashes; its hashes stay as they are.
    pub(crate) fn countersign_event(&self, pdu: &mut Value, version: &RoomVersion) {
        let canonical = to_canonical(&reference_form(pdu, version));
        let sig = self.sign_bytes(canonical.as_bytes());
        self.insert_signature(pdu, sig);
    }

    /// Hashes and signs a PDU (without `event_id`) and returns its event id, the reference
    /// hash of room versions 4 and later. The signature and the reference hash cover the same
    /// bytes (the redacted event without `signatures` and `unsigned`), so they are encoded once.
    pub(crate) fn hash_and_sign_event(&self, pdu: &mut Value, version: &RoomVersion) -> String {
        let hash = content_hash(pdu);
        pdu["hashes"] = json!({ "sha256": hash });
        let canonical = to_canonical(&reference_form(pdu, version));
        let sig = self.sign_bytes(canonical.as_bytes());
        self.insert_signature(pdu, sig);
        format!(
            "${}",
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        )
    }
}

/// The redacted event without `signatures`, `unsigned` and `event_id`: what the event id
/// hashes and the server signs.
fn reference_form(pdu: &Value, version: &RoomVersion) -> Value {
    let mut redacted = redaction::redact(pdu, &version.redaction);
    if let Some(obj) = redacted.as_object_mut() {
        obj.remove("signatures");
        obj.remove("unsigned");
        obj.remove("event_id");
    }
    redacted
}

/// The sha256 of the event without `unsigned`, `signatures` and `hashes`, unpadded base64.
pub fn content_hash(pdu: &Value) -> String {
    let mut copy = pdu.clone();
    if let Some(obj) = copy.as_object_mut() {
        for k in ["unsigned", "signatures", "hashes", "event_id"] {
            obj.remove(k);
        }
    }
    STANDARD_NO_PAD.encode(Sha256::digest(to_canonical(&copy).as_bytes()))
}

/// `$` and the URL-safe unpadded base64 sha256 of the redacted event without `signatures`
/// and `unsigned`.
pub fn reference_event_id(pdu: &Value, version: &RoomVersion) -> String {
    format!(
        "${}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(
            to_canonical(&reference_form(pdu, version)).as_bytes()
        ))
    )
}

pub(crate) fn random_alnum(len: usize) -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Writes a new file readable by the owner only.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::room_version::V10;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn key_is_made_once_with_private_mode_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let a = ServerKey::load_or_create(&path, "x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = ServerKey::load_or_create(&path, "x").unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert_eq!(a.public_key_base64(), b.public_key_base64());
    }

    #[test]
    fn signature_verifies_over_canonical_json() {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::load_or_create(&dir.path().join("k"), "x").unwrap();
        let mut v = json!({"b": 2, "a": 1, "unsigned": {"age": 3}});
        key.sign_json(&mut v);
        let sig = v["signatures"]["x"][key.key_id()].as_str().unwrap();
        let sig = Signature::from_slice(&STANDARD_NO_PAD.decode(sig).unwrap()).unwrap();
        let pk: [u8; 32] = STANDARD_NO_PAD
            .decode(key.public_key_base64())
            .unwrap()
            .try_into()
            .unwrap();
        let vk = VerifyingKey::from_bytes(&pk).unwrap();
        vk.verify(br#"{"a":1,"b":2}"#, &sig).unwrap();
    }

    #[test]
    fn event_id_ignores_unsigned_and_non_essential_content() {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::load_or_create(&dir.path().join("k"), "x").unwrap();
        let mut a = json!({"type": "m.room.message", "room_id": "!r:x", "sender": "@a:x",
            "content": {"body": "hi"}, "depth": 3, "prev_events": [], "auth_events": [],
            "origin_server_ts": 1});
        let id = key.hash_and_sign_event(&mut a, &V10);
        assert!(id.starts_with('$') && id.len() == 44, "{id}");
        assert!(!id.contains('+') && !id.contains('/'));
        a["unsigned"] = json!({"age": 5});
        assert_eq!(reference_event_id(&a, &V10), id);
        // The content hash changes with the content, the reference hash covers that hash.
        let mut b = a.clone();
        b["content"]["body"] = json!("other");
        b.as_object_mut().unwrap().remove("hashes");
        assert_ne!(key.hash_and_sign_event(&mut b, &V10), id);
    }
}

//! Cross-signing: `/keys/device_signing/upload` (a user's master, self-signing and
//! user-signing keys, behind user-interactive auth unless nothing would change or the user has
//! no master key yet, as the spec allows) and `/keys/signatures/upload` (signatures of one's
//! own devices and master key, and of other users' master keys). Which key may sign what is
//! [`allowed_signer`]; every signature is checked before it is kept.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::signed;
use crate::service::users::Session;
use crate::service::{Error, Result, Services};
use crate::storage::e2ee_keys::{KeysWrite, SignedKey};
use crate::storage::writer::WriteOp;
use crate::storage::StorageError;

/// The three kinds, as stored and as `usage` names them.
pub(crate) const MASTER: &str = "master";
pub(crate) const SELF_SIGNING: &str = "self_signing";
pub(crate) const USER_SIGNING: &str = "user_signing";

/// The body of `POST /keys/device_signing/upload`.
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceSigningBody {
    #[serde(default)]
    pub(crate) master_key: Option<Value>,
    #[serde(default)]
    pub(crate) self_signing_key: Option<Value>,
    #[serde(default)]
    pub(crate) user_signing_key: Option<Value>,
    #[serde(default)]
    pub(crate) auth: Option<Value>,
}

/// The one ed25519 key of a cross-signing key: (key id, public key).
fn public_key(key: &Value) -> Option<(String, String)> {
    let keys = key["keys"].as_object()?;
    let mut ed = keys.iter().filter(|(id, _)| id.starts_with("ed25519:"));
    let (id, public) = ed.next()?;
    if ed.next().is_some() {
        return None;
    }
    Some((id.clone(), public.as_str()?.to_string()))
}

/// Checks a cross-signing key's shape: the user's, of its usage, with one ed25519 key.
fn check_key(user: &str, kind: &str, key: &Value) -> Result<()> {
    if key["user_id"].as_str() != Some(user) {
        return Err(Error::InvalidParam(format!(
            "the {kind} key's user_id must be the access token's user"
        )));
    }
    let usage = key["usage"].as_array();
    if !usage.is_some_and(|u| u.iter().any(|x| x.as_str() == Some(kind))) {
        return Err(Error::InvalidParam(format!(
            "the {kind} key's usage must include \"{kind}\""
        )));
    }
    if public_key(key).is_none() {
        return Err(Error::InvalidParam(format!(
            "the {kind} key must hold exactly one ed25519 key"
        )));
    }
    Ok(())
}

/// What a signature upload signs, seen from the signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    OwnDevice,
    OwnMaster,
    OthersMaster,
}

/// What signs, among the signer's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signer {
    Device,
    Master,
    SelfSigning,
    UserSigning,
}

/// The spec's chain of trust: a user's devices are signed by their self-signing key, their
/// master key by their devices (and itself), other users' master keys by their user-signing
/// key.
pub(crate) fn allowed_signer(target: Target, signer: Signer) -> bool {
    matches!(
        (target, signer),
        (Target::OwnDevice, Signer::SelfSigning)
            | (Target::OwnMaster, Signer::Device | Signer::Master)
            | (Target::OthersMaster, Signer::UserSigning)
    )
}

fn parse(json: &str) -> Result<Value> {
    serde_json::from_str(json).map_err(|e| Error::Storage(StorageError::from(e)))
}

impl Services {
    /// POST /keys/device_signing/upload.
    pub(crate) async fn upload_cross_signing(
        &self,
        session: &Session,
        body: DeviceSigningBody,
    ) -> Result<()> {
        let user = &session.user_id;
        let stored = self.storage.cross_signing_keys(user).await?;
        let given = [
            (MASTER, &body.master_key),
            (SELF_SIGNING, &body.self_signing_key),
            (USER_SIGNING, &body.user_signing_key),
        ];
        let unchanged = given.iter().all(|(kind, key)| match key {
            None => true,
            Some(k) => stored.get(*kind).map(|s| parse(s).ok()) == Some(Some(k.clone())),
        });
        if stored.contains_key(MASTER) && !unchanged && session.appservice.is_none() {
            self.users.password_auth(user, body.auth.as_ref()).await?;
        }
        if unchanged && stored.contains_key(MASTER) {
            return Ok(());
        }
        for (kind, key) in &given {
            if let Some(k) = key {
                check_key(user, kind, k)?;
            }
        }
        let master = match &body.master_key {
            Some(k) => Some(k.clone()),
            None => stored.get(MASTER).map(|s| parse(s)).transpose()?,
        };
        for (kind, key) in &given[1..] {
            let Some(k) = key else { continue };
            let Some((id, public)) = master.as_ref().and_then(public_key) else {
                return Err(Error::MissingParam(
                    "no master signing key is available to check the others against".into(),
                ));
            };
            if !signed::verify(k, user, &id, &public) {
                return Err(Error::InvalidSignature(format!(
                    "the {kind} key is not signed by the master key"
                )));
            }
        }
        let keys: Vec<(String, String)> = given
            .iter()
            .filter_map(|(kind, key)| key.as_ref().map(|k| (kind.to_string(), k.to_string())))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.writer
            .write(WriteOp::Keys(Box::new(KeysWrite::CrossSigning {
                user_id: user.to_string(),
                keys,
            })))
            .await?;
        Ok(())
    }

    /// POST /keys/signatures/upload: `body` is user id → key id → signed object. Answers the
    /// `failures`.
    pub(crate) async fn upload_signatures(
        &self,
        session: &Session,
        body: BTreeMap<String, Map<String, Value>>,
    ) -> Result<Value> {
        let me = session.user_id.as_str();
        let mine = self.storage.cross_signing_keys(me).await?;
        let my_devices = self.storage.device_keys(me).await?;
        // The signer's keys: key id → (public key, which).
        let mut signer_keys: BTreeMap<String, (String, Signer)> = BTreeMap::new();
        for (kind, which) in [
            (MASTER, Signer::Master),
            (SELF_SIGNING, Signer::SelfSigning),
            (USER_SIGNING, Signer::UserSigning),
        ] {
            if let Some(k) = mine.get(kind) {
                if let Some((id, public)) = public_key(&parse(k)?) {
                    signer_keys.insert(id, (public, which));
                }
            }
        }
        for (device, json) in &my_devices {
            let id = format!("ed25519:{device}");
            if let Some(public) = parse(json)?["keys"][&id].as_str() {
                signer_keys.insert(id, (public.to_string(), Signer::Device));
            }
        }

        let mut failures = Map::new();
        for (user, objects) in body {
            let theirs = if user == me {
                mine.clone()
            } else if self.is_local_user(&user) {
                self.storage.cross_signing_keys(&user).await?
            } else {
                Default::default()
            };
            let their_master = theirs.get(MASTER).map(|s| parse(s)).transpose()?;
            let mut updates = Vec::new();
            for (key_id, object) in objects {
                let fail = |msg: &str| json!({ "errcode": "M_INVALID_SIGNATURE", "error": msg });
                let master_id = their_master
                    .as_ref()
                    .and_then(public_key)
                    .map(|(_, public)| public);
                let (target, stored, which) = if master_id.as_deref() == Some(key_id.as_str()) {
                    let target = if user == me {
                        Target::OwnMaster
                    } else {
                        Target::OthersMaster
                    };
                    let stored = their_master.clone().unwrap_or_default();
                    (target, stored, SignedKey::CrossSigning(MASTER.into()))
                } else if user == me && my_devices.contains_key(&key_id) {
                    let stored = parse(&my_devices[&key_id])?;
                    (Target::OwnDevice, stored, SignedKey::Device(key_id.clone()))
                } else {
                    let err = json!({ "errcode": "M_NOT_FOUND", "error": "no such key" });
                    failures.entry(user.clone()).or_insert_with(|| json!({}))[&key_id] = err;
                    continue;
                };
                if signed::signed_part(&object) != signed::signed_part(&stored) {
                    failures.entry(user.clone()).or_insert_with(|| json!({}))[&key_id] =
                        fail("the signed object differs from the stored key");
                    continue;
                }
                let mut merged = stored.clone();
                let mut added = false;
                let sigs = object["signatures"][me]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (sig_id, sig) in sigs {
                    let Some((public, signer)) = signer_keys.get(&sig_id) else {
                        continue;
                    };
                    if allowed_signer(target, *signer)
                        && signed::verify(&object, me, &sig_id, public)
                    {
                        merged["signatures"][me][&sig_id] = sig;
                        added = true;
                    }
                }
                if !added {
                    failures.entry(user.clone()).or_insert_with(|| json!({}))[&key_id] =
                        fail("no valid signature by a key allowed to sign this key");
                    continue;
                }
                updates.push((which, merged.to_string()));
            }
            if !updates.is_empty() {
                self.writer
                    .write(WriteOp::Keys(Box::new(KeysWrite::Signed {
                        user_id: user.clone(),
                        updates,
                    })))
                    .await?;
            }
        }
        Ok(json!({ "failures": failures }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chain_of_trust_may_sign() {
        assert!(allowed_signer(Target::OwnDevice, Signer::SelfSigning));
        assert!(!allowed_signer(Target::OwnDevice, Signer::Device));
        assert!(!allowed_signer(Target::OwnDevice, Signer::UserSigning));
        assert!(allowed_signer(Target::OwnMaster, Signer::Device));
        assert!(!allowed_signer(Target::OwnMaster, Signer::SelfSigning));
        assert!(allowed_signer(Target::OthersMaster, Signer::UserSigning));
        assert!(!allowed_signer(Target::OthersMaster, Signer::Master));
        assert!(!allowed_signer(Target::OthersMaster, Signer::SelfSigning));
    }

    #[test]
    fn a_cross_signing_key_has_exactly_one_ed25519_key() {
        let one = json!({ "keys": { "ed25519:K": "K" } });
        assert_eq!(public_key(&one), Some(("ed25519:K".into(), "K".into())));
        assert_eq!(public_key(&json!({ "keys": {} })), None);
        let two = json!({ "keys": { "ed25519:K": "K", "ed25519:L": "L" } });
        assert_eq!(public_key(&two), None);
    }
}

//! Plugin manifests (`plugins/manifest.rs`): any TOML text is read into a manifest or refused
//! with an error naming the file and the field, without a panic; a manifest read has a valid
//! id, a sender that is a valid user id, the registration the delivery queue uses (which
//! passes the set checks alone), capabilities within the admin's memory cap and a
//! configuration that converts to JSON.

use plugboard::plugins::manifest::{host_allowed, valid_id, Manifest};
use plugboard::service::appservice::registration::validate_set;
use plugboard::service::identifiers::parse_user_id;

use crate::{text, Target};

pub const TARGET: Target = Target {
    name: "manifest",
    check,
    dictionary: &[
        b"\nid = ",
        b"\nversion = ",
        b"\ndescription = ",
        b"\nsender_localpart = ",
        b"\nreceive_ephemeral = ",
        b"\nreceive_own_events = ",
        b"\n[namespaces]\nusers = [",
        b"{ regex = \"@bot_.*\", exclusive = true }",
        b"\n[capabilities]\n",
        b"http_allow = [",
        b"\"*.example.org\"",
        b"\"host:8080\"",
        b"kv_quota_bytes = ",
        b"memory_mb = ",
        b"deadline_ms = ",
        b"18446744073709551615",
        b"9223372036854775807",
        b"-1",
        b"0",
        b"\n[config]\n",
        b"\n[[x]]\n",
        b"\"\"\"",
        b"'''",
        b"\"",
        b"=",
        b"[",
        b"]",
        b"{",
        b"}",
        b"\n",
        b"1979-05-27T07:32:00Z",
        b"inf",
        b"nan",
        b"\x00",
    ],
    generate: None,
};

pub fn check(input: &[u8]) -> Result<(), String> {
    let Some(text) = text(input) else {
        return Ok(());
    };
    let m = match Manifest::parse(text, "plugin.toml") {
        Ok(m) => m,
        Err(e) => {
            let message = e.to_string();
            if !message.starts_with("plugin.toml: field `") {
                return Err(format!("an error that does not name the field: {message}"));
            }
            return Ok(());
        }
    };
    if !valid_id(&m.id) {
        return Err(format!("the id {:?} was accepted", m.id));
    }
    let reg = m.registration();
    let sender = reg.sender("localhost");
    if parse_user_id(&sender).is_err() {
        return Err(format!("the sender {sender:?} is not a valid user id"));
    }
    validate_set(std::slice::from_ref(&reg))
        .map_err(|e| format!("the manifest's registration is refused alone: {e}"))?;
    let caps = m.capabilities_with(None, 512);
    if caps.memory_mb > 512 || caps.memory_mb == 0 || caps.deadline_ms == 0 {
        return Err(format!("capabilities out of bounds: {caps:?}"));
    }
    for pattern in &caps.http_allow {
        let _ = host_allowed(&caps.http_allow, pattern, None);
        let _ = host_allowed(
            &caps.http_allow,
            pattern.trim_start_matches("*."),
            Some(443),
        );
    }
    let config = m.config_with(&[&m.config]);
    if !config.is_object() {
        return Err(format!("the configuration is not a JSON object: {config}"));
    }
    Ok(())
}

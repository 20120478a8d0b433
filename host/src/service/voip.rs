//! TURN credentials for VoIP calls (`/voip/turnServer`) from the `[turn]` configuration: with a
//! shared secret, time-limited ones (username `{expiry in seconds}:{user id}`, password the
//! base64 HMAC-SHA1 of the username under the secret, which a TURN server with the same
//! secret checks on its own); otherwise the fixed username and password.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::config::TurnConfig;

/// What `/voip/turnServer` answers `user` at `now_ms`: `{}` when no TURN server is
/// configured, as Synapse answers and clients expect.
pub(crate) fn turn_server(turn: &TurnConfig, user: &str, now_ms: i64) -> Value {
    if turn.uris.is_empty() {
        return json!({});
    }
    let (username, password) = if turn.shared_secret.is_empty() {
        (turn.username.clone(), turn.password.clone())
    } else {
        let expiry = now_ms / 1000 + turn.ttl_s as i64;
        let username = format!("{expiry}:{user}");
        let mut mac = Hmac::<Sha1>::new_from_slice(turn.shared_secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(username.as_bytes());
        let password =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        (username, password)
    };
    json!({
        "username": username,
        "password": password,
        "uris": turn.uris,
        "ttl": turn.ttl_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(secret: &str) -> TurnConfig {
        TurnConfig {
            uris: vec!["turn:turn.example.org?transport=udp".into()],
            shared_secret: secret.into(),
            ttl_s: 3600,
            ..TurnConfig::default()
        }
    }

    #[test]
    fn a_shared_secret_gives_time_limited_credentials_a_turn_server_can_check() {
        let answer = turn_server(&turn("s3cret"), "@alice:example.org", 1_700_000_000_123);
        assert_eq!(answer["username"], "1700003600:@alice:example.org");
        // base64(HMAC-SHA1("s3cret", "1700003600:@alice:example.org")), computed with
        // Python's hmac module.
        assert_eq!(answer["password"], "DwTxSrYoQgbdbUzNhDKfrCGmqbE=");
        assert_eq!(answer["ttl"], 3600);
        assert_eq!(answer["uris"][0], "turn:turn.example.org?transport=udp");
    }

    #[test]
    fn fixed_credentials_are_given_as_configured_and_no_uris_give_nothing() {
        let fixed = TurnConfig {
            username: "calls".into(),
            password: "pw".into(),
            ..turn("")
        };
        let answer = turn_server(&fixed, "@alice:example.org", 0);
        assert_eq!(
            (answer["username"].as_str(), answer["password"].as_str()),
            (Some("calls"), Some("pw"))
        );
        assert_eq!(turn_server(&TurnConfig::default(), "@a:x", 0), json!({}));
    }
}

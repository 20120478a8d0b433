//! The IVR's own identifiers in a call, made from WASI's secure randomness: its party id,
//! its ICE credentials, the SDP session id and, unless a media server's is configured, a
//! DTLS fingerprint.

use plugboard_sdk::random;
use serde::{Deserialize, Serialize};

use crate::sdp::Local;

/// The hash functions of `a=fingerprint` (RFC 8122) with their digest sizes.
const HASHES: [(&str, usize); 5] = [
    ("sha-1", 20),
    ("sha-224", 28),
    ("sha-256", 32),
    ("sha-384", 48),
    ("sha-512", 64),
];

/// What the IVR keeps of its side of a call's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
    /// `a=fingerprint`.
    pub fingerprint: String,
    /// The `o=` session id.
    pub session_id: u64,
    /// The `o=` version of the last answer sent.
    pub version: u64,
}

impl Credentials {
    /// Fresh credentials; `fingerprint` is the configured one, if any.
    pub fn new(fingerprint: Option<&str>) -> Credentials {
        let fingerprint = match fingerprint {
            Some(f) => f.to_string(),
            None => {
                let hex: Vec<String> = random::bytes(32)
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect();
                format!("sha-256 {}", hex.join(":"))
            }
        };
        Credentials {
            // RFC 8839: ice-ufrag 4 to 256 ice-chars, ice-pwd 22 to 256.
            ufrag: token(8, ICE_CHARS),
            pwd: token(24, ICE_CHARS),
            fingerprint,
            // Kept below 2^62 so that every parser's signed 64-bit field takes it.
            session_id: random::u64() >> 2,
            version: 1,
        }
    }

    /// The SDP side of these credentials for the next answer: its version one more than the
    /// last.
    pub fn next_local(&mut self) -> Local {
        self.version += 1;
        Local {
            ufrag: self.ufrag.clone(),
            pwd: self.pwd.clone(),
            fingerprint: self.fingerprint.clone(),
            session_id: self.session_id,
            version: self.version,
        }
    }
}

const ICE_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A party id for the IVR in a new call: the spec recommends at least 8 alphanumerics.
pub fn party_id() -> String {
    token(12, ALNUM)
}

/// `len` characters of `alphabet`, each equally likely.
fn token(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| alphabet[random::below(alphabet.len() as u64) as usize] as char)
        .collect()
}

/// A configured fingerprint in the form `a=fingerprint` takes (`sha-256 AB:CD:…`), hex in
/// upper case; an error says what is wrong.
pub fn parse_fingerprint(text: &str) -> Result<String, String> {
    let (hash, hex) = text
        .trim()
        .split_once(' ')
        .ok_or("fingerprint: must be `HASH HEX:HEX:…`, e.g. `sha-256 AB:CD:…`")?;
    let hash = hash.to_ascii_lowercase();
    let size = HASHES
        .iter()
        .find(|(h, _)| *h == hash)
        .map(|(_, n)| *n)
        .ok_or("fingerprint: the hash is one of sha-1, sha-224, sha-256, sha-384, sha-512")?;
    let pairs: Vec<&str> = hex.trim().split(':').collect();
    if pairs.len() != size
        || !pairs
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(format!(
            "fingerprint: a {hash} fingerprint is {size} hex pairs joined by `:`"
        ));
    }
    Ok(format!("{hash} {}", hex.trim().to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::testing::Harness;
    use serde_json::json;

    #[test]
    fn fresh_credentials_have_the_sizes_ice_and_dtls_ask_for_and_differ_each_time() {
        let _h = Harness::<crate::Ivr>::new(json!({})).unwrap();
        let a = Credentials::new(None);
        let b = Credentials::new(None);
        assert_eq!(a.ufrag.len(), 8);
        assert_eq!(a.pwd.len(), 24);
        assert!(a.pwd.bytes().all(|c| ICE_CHARS.contains(&c)));
        assert_eq!(parse_fingerprint(&a.fingerprint), Ok(a.fingerprint.clone()));
        assert!(a.session_id < 1 << 62);
        assert_ne!(a, b);
        let p = party_id();
        assert_eq!(p.len(), 12);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn a_configured_fingerprint_is_kept_and_each_answer_has_a_new_version() {
        let _h = Harness::<crate::Ivr>::new(json!({})).unwrap();
        let fp = "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33";
        let mut c = Credentials::new(Some(fp));
        assert_eq!(c.fingerprint, fp);
        assert_eq!(c.next_local().version, 2);
        assert_eq!(c.next_local().version, 3);
    }

    #[test]
    fn a_bad_fingerprint_is_named() {
        assert_eq!(
            parse_fingerprint("SHA-1 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33"),
            Ok("sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33".into())
        );
        for bad in [
            "",
            "sha-256",
            "md5 00:11",
            "sha-1 00:11",
            "sha-1 zz:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33",
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }
}

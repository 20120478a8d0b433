//! The `X-Matrix` request authentication of the server-server API: the `Authorization` header
//! (`X-Matrix origin="…",destination="…",key="ed25519:…",sig="…"`), and the JSON a request's
//! signature covers: `{method, uri, origin, destination, content?}` in canonical form.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{json, Value};

use crate::service::keys::{to_canonical, ServerKey};

/// The parameters of an `X-Matrix` authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XMatrix {
    pub(crate) origin: String,
    /// Absent from servers older than spec v1.3, which then meant the receiver.
    pub(crate) destination: Option<String>,
    pub(crate) key: String,
    pub(crate) sig: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum XMatrixError {
    #[error("the Authorization header is not of the X-Matrix scheme")]
    NotXMatrix,
    #[error("the X-Matrix header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the X-Matrix header has no {0}")]
    Missing(&'static str),
    #[error("the request signature does not verify")]
    BadSignature,
}

/// What the signature of a request covers.
pub(crate) struct SignedRequest<'a> {
    pub(crate) method: &'a str,
    /// The path and query, as sent on the request line.
    pub(crate) uri: &'a str,
    pub(crate) origin: &'a str,
    pub(crate) destination: &'a str,
    /// The JSON body, for requests that have one.
    pub(crate) content: Option<&'a Value>,
}

impl SignedRequest<'_> {
    /// The canonical JSON that is signed.
    pub(crate) fn canonical(&self) -> String {
        let mut v = json!({
            "method": self.method,
            "uri": self.uri,
            "origin": self.origin,
            "destination": self.destination,
        });
        if let Some(content) = self.content {
            v["content"] = content.clone();
        }
        to_canonical(&v)
    }

    /// The `Authorization` header value for this request, signed with `key`.
    pub(crate) fn authorization(&self, key: &ServerKey) -> String {
        XMatrix {
            origin: self.origin.to_string(),
            destination: Some(self.destination.to_string()),
            key: key.key_id().to_string(),
            sig: key.sign_bytes(self.canonical().as_bytes()),
        }
        .to_string()
    }

    /// Whether `sig` (unpadded base64) is `verify_key`'s signature of this request.
    pub(crate) fn verify(&self, verify_key: &VerifyingKey, sig: &str) -> Result<(), XMatrixError> {
        let bytes = STANDARD_NO_PAD
            .decode(sig.trim_end_matches('='))
            .map_err(|_| XMatrixError::BadSignature)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| XMatrixError::BadSignature)?;
        verify_key
            .verify(self.canonical().as_bytes(), &sig)
            .map_err(|_| XMatrixError::BadSignature)
    }
}

impl std::fmt::Display for XMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "X-Matrix origin={}", quoted(&self.origin))?;
        if let Some(d) = &self.destination {
            write!(f, ",destination={}", quoted(d))?;
        }
        write!(f, ",key={},sig={}", quoted(&self.key), quoted(&self.sig))
    }
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl std::str::FromStr for XMatrix {
    type Err = XMatrixError;

    /// The scheme (case-insensitive), then `name=value` pairs separated by commas, each value
    /// a token or a quoted string (RFC 9110 auth-params); names are case-insensitive and
    /// unknown ones are ignored.
    fn from_str(header: &str) -> Result<XMatrix, XMatrixError> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').ok_or(XMatrixError::NotXMatrix)?;
        if !scheme.eq_ignore_ascii_case("X-Matrix") {
            return Err(XMatrixError::NotXMatrix);
        }
        let (mut origin, mut destination, mut key, mut sig) = (None, None, None, None);
        let mut rest = rest.trim_start();
        while !rest.is_empty() {
            let (name, after) = rest
                .split_once('=')
                .ok_or(XMatrixError::Malformed("a parameter without a value"))?;
            let (value, after) = param_value(after)?;
            let slot = match name.trim().to_ascii_lowercase().as_str() {
                "origin" => &mut origin,
                "destination" => &mut destination,
                "key" => &mut key,
                "sig" => &mut sig,
                _ => &mut None,
            };
            if slot.is_some() {
                return Err(XMatrixError::Malformed("a parameter given twice"));
            }
            *slot = Some(value);
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
            } else if !rest.is_empty() {
                return Err(XMatrixError::Malformed(
                    "parameters not separated by commas",
                ));
            }
        }
        Ok(XMatrix {
            origin: origin.ok_or(XMatrixError::Missing("origin"))?,
            destination,
            key: key.ok_or(XMatrixError::Missing("key"))?,
            sig: sig.ok_or(XMatrixError::Missing("sig"))?,
        })
    }
}

/// A quoted string (with `\` escapes) or a token, and what follows it.
fn param_value(s: &str) -> Result<(String, &str), XMatrixError> {
    let s = s.trim_start();
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find([',', ' ', '\t']).unwrap_or(s.len());
        if end == 0 {
            return Err(XMatrixError::Malformed("an empty parameter value"));
        }
        return Ok((s[..end].to_string(), &s[end..]));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &quoted[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(XMatrixError::Malformed("an unterminated quoted string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (tempfile::TempDir, ServerKey) {
        let dir = tempfile::tempdir().unwrap();
        let key = ServerKey::load_or_create(&dir.path().join("k"), "origin.example").unwrap();
        (dir, key)
    }

    fn verify_key(key: &ServerKey) -> VerifyingKey {
        let bytes: [u8; 32] = STANDARD_NO_PAD
            .decode(key.public_key_base64())
            .unwrap()
            .try_into()
            .unwrap();
        VerifyingKey::from_bytes(&bytes).unwrap()
    }

    fn request(content: Option<&Value>) -> SignedRequest<'_> {
        SignedRequest {
            method: "PUT",
            uri: "/_matrix/federation/v1/send/1?x=%20y",
            origin: "origin.example",
            destination: "dest.example:8448",
            content,
        }
    }

    #[test]
    fn a_signed_request_parses_back_and_verifies() {
        let (_dir, key) = key();
        let body = json!({"pdus": [], "edus": [{"a": "é\n"}]});
        let header = request(Some(&body)).authorization(&key);
        let parsed: XMatrix = header.parse().unwrap();
        assert_eq!(parsed.origin, "origin.example");
        assert_eq!(parsed.destination.as_deref(), Some("dest.example:8448"));
        assert_eq!(parsed.key, key.key_id());
        request(Some(&body))
            .verify(&verify_key(&key), &parsed.sig)
            .unwrap();
    }

    #[test]
    fn a_changed_body_method_uri_or_destination_does_not_verify() {
        let (_dir, key) = key();
        let body = json!({"a": 1});
        let sig: XMatrix = request(Some(&body)).authorization(&key).parse().unwrap();
        let vk = verify_key(&key);
        let changed = json!({"a": 2});
        let bad = XMatrixError::BadSignature;
        assert_eq!(
            request(Some(&changed)).verify(&vk, &sig.sig),
            Err(bad.clone())
        );
        assert_eq!(request(None).verify(&vk, &sig.sig), Err(bad.clone()));
        let tampers: [fn(&mut SignedRequest<'_>); 4] = [
            |r| r.method = "POST",
            |r| r.uri = "/_matrix/federation/v1/send/2",
            |r| r.destination = "other.example",
            |r| r.origin = "forger.example",
        ];
        for tamper in tampers {
            let mut r = request(Some(&body));
            tamper(&mut r);
            assert_eq!(r.verify(&vk, &sig.sig), Err(bad.clone()));
        }
        assert_eq!(request(Some(&body)).verify(&vk, "not base64!"), Err(bad));
    }

    #[test]
    fn headers_parse_with_tokens_escapes_any_case_and_unknown_parameters() {
        let h: XMatrix =
            r#"x-matrix Origin=origin.example, KEY="ed25519:a\"b",sig="c2ln",extra="1",destination="d""#
                .parse()
                .unwrap();
        assert_eq!(
            h,
            XMatrix {
                origin: "origin.example".into(),
                destination: Some("d".into()),
                key: "ed25519:a\"b".into(),
                sig: "c2ln".into(),
            }
        );
        // What we write is what we read.
        assert_eq!(h.to_string().parse::<XMatrix>().unwrap(), h);
    }

    #[test]
    fn headers_without_the_scheme_or_a_parameter_or_with_garbage_are_refused() {
        for (header, err) in [
            ("Bearer abc", XMatrixError::NotXMatrix),
            ("X-Matrix", XMatrixError::NotXMatrix),
            (
                r#"X-Matrix key="k",sig="s""#,
                XMatrixError::Missing("origin"),
            ),
            (
                r#"X-Matrix origin="o",sig="s""#,
                XMatrixError::Missing("key"),
            ),
            (
                r#"X-Matrix origin="o",key="k""#,
                XMatrixError::Missing("sig"),
            ),
        ] {
            assert_eq!(header.parse::<XMatrix>(), Err(err), "{header}");
        }
        for header in [
            r#"X-Matrix origin="o",key="k",sig="s"#,
            r#"X-Matrix origin="o" key="k",sig="s""#,
            r#"X-Matrix origin="o",origin="p",key="k",sig="s""#,
            "X-Matrix origin=,key=k,sig=s",
            "X-Matrix garbage",
        ] {
            assert!(
                matches!(header.parse::<XMatrix>(), Err(XMatrixError::Malformed(_))),
                "{header}"
            );
        }
    }
}

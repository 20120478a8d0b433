//! The LibreTranslate-compatible API the translator relies on, and nothing more:
//!
//! - `POST {url}/translate` with `{"q", "source", "target", "format": "text", "api_key"?}`
//!   answers `{"translatedText": "…"}`;
//! - `POST {url}/detect` with `{"q", "api_key"?}` answers `[{"language": "en",
//!   "confidence": 90.0}, …]`, most likely first;
//! - `GET {url}/languages` answers `[{"code": "en", "name": "English", "targets": […]}, …]`;
//! - an error is a non-200 status with `{"error": "…"}`: 400 for a request the backend will
//!   not do (an unsupported language), anything else (403 for a bad key, 429, 5xx, no answer
//!   in time) for a backend that cannot serve now.
//!
//! What comes back is checked like any input: a wrong shape is the backend failing, and sizes
//! are capped.

use std::time::Duration;

use plugboard_sdk::http::{self, Request};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Why the backend did not answer what was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// It answered that it will not do this request (400): asking again will not help.
    Refused(String),
    /// It cannot serve now (down, slow, overloaded, misconfigured): retry later.
    Unavailable(String),
}

/// A language the backend knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    /// Its code, `en`, `pt-BR`, `zh-Hans`.
    pub code: String,
    /// Its name in English.
    pub name: String,
}

/// A detected language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detected {
    /// The language's code.
    pub language: String,
    /// How sure the backend is, 0–100.
    pub confidence: f64,
}

/// Most languages kept from `/languages`.
const MAX_LANGUAGES: usize = 500;

/// The backend at `url`.
pub struct Backend<'a> {
    /// Its base URL, without a trailing `/`.
    pub url: &'a str,
    /// Its key, when it wants one.
    pub api_key: &'a str,
}

/// Most bytes of an answer read; a backend answering more is broken.
const MAX_RESPONSE: usize = 1 << 20;

impl Backend<'_> {
    fn with_key(&self, mut body: Value) -> Value {
        if !self.api_key.is_empty() {
            body["api_key"] = json!(self.api_key);
        }
        body
    }

    fn call(&self, request: Request, limit: Duration) -> Result<Value, Failure> {
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let response = http::fetch(&request.timeout_ms(limit_ms)).map_err(|e| {
            Failure::Unavailable(match e.errcode.as_str() {
                http::TIMED_OUT => format!("no answer within {} ms", limit.as_millis()),
                "M_FORBIDDEN" => "its host is not on http_allow".to_string(),
                _ => e.message,
            })
        })?;
        if response.body.len() > MAX_RESPONSE {
            return Err(Failure::Unavailable("it answered more than 1 MiB".into()));
        }
        let body: Option<Value> = serde_json::from_slice(&response.body).ok();
        let said = || {
            body.as_ref()
                .and_then(|b| b.get("error"))
                .and_then(Value::as_str)
                .map(|s| clip(s, 200))
                .unwrap_or_default()
        };
        match response.status {
            200 => {
                body.ok_or_else(|| Failure::Unavailable("it answered something not JSON".into()))
            }
            400 => Err(Failure::Refused(said())),
            403 => Err(Failure::Unavailable(format!(
                "it refused the key (403) {}",
                said()
            ))),
            status => Err(Failure::Unavailable(
                format!("HTTP {status} {}", said()).trim_end().to_string(),
            )),
        }
    }

    /// `text` translated from `source` into `target`, plain text; at most `max_bytes` kept.
    pub fn translate(
        &self,
        text: &str,
        source: &str,
        target: &str,
        max_bytes: usize,
        limit: Duration,
    ) -> Result<String, Failure> {
        let body = self.with_key(json!({
            "q": text, "source": source, "target": target, "format": "text",
        }));
        let answer = self.call(
            Request::post_json(&format!("{}/translate", self.url), &body),
            limit,
        )?;
        match answer.get("translatedText").and_then(Value::as_str) {
            Some(t) => Ok(clip(t, max_bytes)),
            None => Err(Failure::Unavailable(
                "its answer to /translate has no translatedText".into(),
            )),
        }
    }

    /// The language `text` is most likely in.
    pub fn detect(&self, text: &str, limit: Duration) -> Result<Detected, Failure> {
        let body = self.with_key(json!({ "q": text }));
        let answer = self.call(
            Request::post_json(&format!("{}/detect", self.url), &body),
            limit,
        )?;
        let best = answer
            .as_array()
            .and_then(|a| a.first())
            .ok_or_else(|| Failure::Unavailable("its answer to /detect is not a list".into()))?;
        match (
            best.get("language").and_then(Value::as_str),
            best.get("confidence").and_then(Value::as_f64),
        ) {
            (Some(l), Some(c)) if is_code(l) => Ok(Detected {
                language: l.to_string(),
                confidence: c.clamp(0.0, 100.0),
            }),
            _ => Err(Failure::Unavailable(
                "its answer to /detect has no language and confidence".into(),
            )),
        }
    }

    /// The languages it knows (entries of the wrong shape are left out).
    pub fn languages(&self, limit: Duration) -> Result<Vec<Language>, Failure> {
        let answer = self.call(Request::get(&format!("{}/languages", self.url)), limit)?;
        let list = answer
            .as_array()
            .ok_or_else(|| Failure::Unavailable("its answer to /languages is not a list".into()))?;
        Ok(list
            .iter()
            .filter_map(|l| {
                let code = l.get("code")?.as_str().filter(|c| is_code(c))?;
                let name = l.get("name").and_then(Value::as_str).unwrap_or(code);
                Some(Language {
                    code: code.to_string(),
                    name: clip(name, 64),
                })
            })
            .take(MAX_LANGUAGES)
            .collect())
    }
}

/// Whether `code` looks like a language code: 2 to 12 ASCII letters, digits, `-` or `_`,
/// starting with a letter.
pub fn is_code(code: &str) -> bool {
    (2..=12).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_alphabetic())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// At most `max_bytes` of `s`, cut at a character boundary.
pub fn clip(s: &str, max_bytes: usize) -> String {
    plugboard_sdk::message::clip(s, max_bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugboard_sdk::http::Response;
    use plugboard_sdk::prelude::*;
    use plugboard_sdk::testing::{Bare, Harness};

    fn answer(status: u16, body: Value) -> Result<Response, Error> {
        Ok(Response {
            status,
            headers: vec![],
            body: body.to_string().into_bytes(),
        })
    }

    const B: Backend = Backend {
        url: "http://lt:5000",
        api_key: "k",
    };
    const T: Duration = Duration::from_millis(500);

    #[test]
    fn translate_posts_q_source_target_and_format_with_the_key() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        h.on_http(|_| answer(200, json!({"translatedText": "bonjour"})));
        assert_eq!(B.translate("hello", "en", "fr", 100, T).unwrap(), "bonjour");
        let r = &h.requests()[0];
        assert_eq!(
            (r.method.as_str(), r.url.as_str()),
            ("POST", "http://lt:5000/translate")
        );
        let sent: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            sent,
            json!({"q": "hello", "source": "en", "target": "fr", "format": "text", "api_key": "k"})
        );
    }

    #[test]
    fn a_400_is_refused_and_anything_else_is_unavailable() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        h.on_http(|r| {
            if r.url.ends_with("/translate") {
                answer(400, json!({"error": "xx is not supported"}))
            } else if r.url.ends_with("/detect") {
                answer(503, json!({"error": "busy"}))
            } else {
                Err(Error::new(http::TIMED_OUT, "late"))
            }
        });
        assert_eq!(
            B.translate("hi", "en", "xx", 100, T),
            Err(Failure::Refused("xx is not supported".into()))
        );
        assert_eq!(
            B.detect("hi", T),
            Err(Failure::Unavailable("HTTP 503 busy".into()))
        );
        assert_eq!(
            B.languages(T),
            Err(Failure::Unavailable("no answer within 500 ms".into()))
        );
    }

    #[test]
    fn answers_of_the_wrong_shape_are_the_backend_failing_and_sizes_are_capped() {
        let h = Harness::<Bare>::new(json!({})).unwrap();
        h.on_http(|r| {
            if r.url.ends_with("/translate") {
                answer(200, json!({"translatedText": "é".repeat(100)}))
            } else if r.url.ends_with("/detect") {
                answer(200, json!({"language": "en"}))
            } else {
                answer(
                    200,
                    json!([{"code": "en", "name": "English"}, {"code": 5}, {"code": "x y z"}, "fr"]),
                )
            }
        });
        let t = B.translate("hi", "en", "fr", 11, T).unwrap();
        assert_eq!(t, "ééééé", "cut at a character boundary");
        assert!(matches!(B.detect("hi", T), Err(Failure::Unavailable(_))));
        assert_eq!(
            B.languages(T).unwrap(),
            vec![Language {
                code: "en".into(),
                name: "English".into()
            }]
        );
        h.on_http(|_| answer(200, json!("not an object")));
        assert!(matches!(
            B.translate("hi", "en", "fr", 100, T),
            Err(Failure::Unavailable(_))
        ));
    }

    #[test]
    fn language_codes_are_short_and_plain() {
        assert!(is_code("en") && is_code("pt-BR") && is_code("zh_Hans"));
        assert!(
            !is_code("e")
                && !is_code("1a")
                && !is_code("en fr")
                && !is_code("a".repeat(13).as_str())
        );
    }
}

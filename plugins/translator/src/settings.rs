//! The translator's configuration: the manifest's `[config]` with the admin's settings over
//! it, read once at `init`. A missing or unusable `url` is not an error: the plugin starts and
//! answers its commands with what to set. A number of the wrong type is, naming the key.

use plugboard_sdk::prelude::*;
use serde_json::Value;

/// What the admin is told to set while the backend is not configured.
pub const HOW_TO_CONFIGURE: &str = "set url (and http_allow) in the server config: \
     [plugins.settings.translator] http_allow = [\"HOST:PORT\"] and \
     [plugins.settings.translator.config] url = \"http://HOST:PORT\"";

/// The configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The backend's base URL without a trailing `/`, or why there is none.
    pub url: Result<String, String>,
    /// Sent as `api_key` in every request when not empty.
    pub api_key: String,
    /// What commands start with.
    pub prefix: String,
    /// Longest text translated, in characters.
    pub max_chars: usize,
    /// Longest one backend request may take.
    pub request_timeout_ms: u64,
    /// Longest a call spends on backend requests in all.
    pub call_budget_ms: u64,
    /// First pause after a failed request; it doubles up to `retry_max_ms`.
    pub retry_base_ms: u64,
    /// Longest pause between retries.
    pub retry_max_ms: u64,
    /// Most translations waiting at once, over all rooms.
    pub max_pending: u64,
    /// Most cached answers kept.
    pub cache_entries: u64,
    /// Most glossary terms per room.
    pub max_glossary_terms: usize,
    /// Least detection confidence (0–100) for a message to be translated automatically.
    pub min_confidence: f64,
}

impl Settings {
    /// Reads the configuration; a key of the wrong type or out of range is refused by name.
    pub fn from_config(config: &Config) -> Result<Settings, Error> {
        let url = match config.get("url") {
            None | Some(Value::Null) => Err("no url is set".to_string()),
            Some(Value::String(s)) if s.trim().is_empty() => Err("no url is set".to_string()),
            Some(Value::String(s)) => {
                let s = s.trim().trim_end_matches('/');
                match http::split_url(s) {
                    Ok(_) => Ok(s.to_string()),
                    Err(e) => Err(e.message),
                }
            }
            Some(_) => Err("url is not a string".to_string()),
        };
        let text = |key: &str, default: &str| -> Result<String, Error> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(default.to_string()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(Error::invalid(format!("{key}: must be a string"))),
            }
        };
        let number = |key: &str, default: u64, min: u64, max: u64| -> Result<u64, Error> {
            let n = match config.get(key) {
                None | Some(Value::Null) => return Ok(default),
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| Error::invalid(format!("{key}: must be a whole number")))?,
            };
            if !(min..=max).contains(&n) {
                return Err(Error::invalid(format!(
                    "{key}: must be from {min} to {max}"
                )));
            }
            Ok(n)
        };
        let prefix = text("prefix", "!")?;
        if prefix.trim().is_empty() || prefix.len() > 16 {
            return Err(Error::invalid("prefix: must be 1 to 16 characters"));
        }
        let request_timeout_ms = number("request_timeout_ms", 800, 50, 60_000)?;
        let call_budget_ms = number("call_budget_ms", 1200, 50, 120_000)?;
        if call_budget_ms < request_timeout_ms {
            return Err(Error::invalid(
                "call_budget_ms: must be at least request_timeout_ms",
            ));
        }
        let retry_base_ms = number("retry_base_ms", 1000, 10, 3_600_000)?;
        let retry_max_ms = number("retry_max_ms", 120_000, retry_base_ms, 86_400_000)?;
        Ok(Settings {
            url,
            api_key: text("api_key", "")?,
            prefix,
            max_chars: number("max_chars", 2000, 1, 20_000)? as usize,
            request_timeout_ms,
            call_budget_ms,
            retry_base_ms,
            retry_max_ms,
            max_pending: number("max_pending", 500, 1, 100_000)?,
            cache_entries: number("cache_entries", 1000, 0, 100_000)?,
            max_glossary_terms: number("max_glossary_terms", 100, 0, 1000)? as usize,
            min_confidence: number("min_confidence", 30, 0, 100)? as f64,
        })
    }

    /// The backend's base URL, or the sentence to answer with while there is none.
    pub fn backend_url(&self) -> Result<&str, String> {
        match &self.url {
            Ok(u) => Ok(u),
            Err(why) => Err(format!("not configured ({why}): {HOW_TO_CONFIGURE}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_leave_the_backend_unconfigured() {
        let s = Settings::from_config(&Config(json!({}))).unwrap();
        assert_eq!(s.prefix, "!");
        assert_eq!(s.max_chars, 2000);
        let why = s.backend_url().unwrap_err();
        assert!(why.starts_with("not configured"), "{why}");
        assert!(why.contains("set url (and http_allow)"), "{why}");
    }

    #[test]
    fn a_url_loses_its_trailing_slash_and_a_bad_one_is_explained() {
        let s = Settings::from_config(&Config(json!({"url": "http://127.0.0.1:5000/"}))).unwrap();
        assert_eq!(s.backend_url().unwrap(), "http://127.0.0.1:5000");
        let s = Settings::from_config(&Config(json!({"url": "ftp://x"}))).unwrap();
        assert!(s.backend_url().unwrap_err().contains("ftp://x"));
        let s = Settings::from_config(&Config(json!({"url": 5}))).unwrap();
        assert!(s.backend_url().unwrap_err().contains("not a string"));
    }

    #[test]
    fn numbers_of_the_wrong_type_or_range_are_refused_by_name() {
        let e = Settings::from_config(&Config(json!({"max_chars": "lots"}))).unwrap_err();
        assert!(e.message.contains("max_chars"), "{}", e.message);
        let e = Settings::from_config(&Config(json!({"request_timeout_ms": 0}))).unwrap_err();
        assert!(e.message.contains("request_timeout_ms"), "{}", e.message);
        let e = Settings::from_config(&Config(
            json!({"request_timeout_ms": 900, "call_budget_ms": 500}),
        ))
        .unwrap_err();
        assert!(e.message.contains("call_budget_ms"), "{}", e.message);
        let e = Settings::from_config(&Config(json!({"retry_base_ms": 500, "retry_max_ms": 100})))
            .unwrap_err();
        assert!(e.message.contains("retry_max_ms"), "{}", e.message);
    }
}

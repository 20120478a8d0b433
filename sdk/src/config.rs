//! The plugin's configuration, as `init` receives it: the manifest's `[config]` overridden by
//! the admin's settings, as a JSON object.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::types::Error;

#[derive(Debug, Clone, Default, PartialEq)]
/// The configuration as a JSON object (`Config.0`).
pub struct Config(pub Value);

impl Config {
    /// Parses the text `init` receives; `null` is an empty object.
    pub fn parse(text: &str) -> Result<Config, Error> {
        match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(Config(v)),
            Ok(Value::Null) => Ok(Config(Value::Object(Default::default()))),
            Ok(_) => Err(Error::invalid("the configuration is not a JSON object")),
            Err(e) => Err(Error::invalid(format!(
                "the configuration is not JSON: {e}"
            ))),
        }
    }

    /// A key's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A key's value if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// A key's string value, or `default`.
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.str(key).unwrap_or(default)
    }

    /// A key's value if it is a whole number.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }

    /// A key's value if it is true or false.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.0.get(key).and_then(Value::as_bool)
    }

    /// The whole configuration as a typed value; a wrong shape is `M_INVALID_PARAM` naming
    /// the problem.
    pub fn parse_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(&self.0).map_err(|e| Error::invalid(format!("configuration: {e}")))
    }
}

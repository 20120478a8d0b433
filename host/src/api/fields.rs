//! Serde helpers for request bodies whose fields the spec types more narrowly than serde's
//! defaults: objects that must be objects, integers that must fit the spec's range. A field
//! they refuse fails the body's parse, which the JSON extractor answers with `M_BAD_JSON`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The largest integer the spec's JSON has (canonical JSON's bound): 2^53 - 1.
pub(crate) const MAX_SPEC_INT: u64 = (1 << 53) - 1;

/// An optional JSON object (`null` is absent): user-interactive `auth`, a login `identifier`.
pub(crate) fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(D::Error::custom("expected a JSON object")),
    }
}

/// An optional non-negative integer of at most 2^53 - 1 (a timeout, a limit): the spec's
/// integers stop there, and a larger one is a client bug rather than a wish to wait for ever.
pub(crate) fn spec_uint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<u64>::deserialize(d)? {
        Some(n) if n > MAX_SPEC_INT => Err(D::Error::custom(format!(
            "{n} is larger than the largest integer of the spec, {MAX_SPEC_INT}"
        ))),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "object")]
        auth: Option<Value>,
        #[serde(default, deserialize_with = "spec_uint")]
        timeout: Option<u64>,
    }

    fn parse(v: Value) -> Result<Body, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn an_object_field_takes_objects_and_null_only() {
        assert!(parse(json!({"auth": {"type": "x"}}))
            .unwrap()
            .auth
            .is_some());
        assert!(parse(json!({"auth": null})).unwrap().auth.is_none());
        assert!(parse(json!({})).unwrap().auth.is_none());
        for bad in [json!(5), json!("x"), json!([]), json!(true)] {
            assert!(parse(json!({ "auth": bad })).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_integer_field_stops_at_two_to_the_53_minus_one() {
        assert_eq!(
            parse(json!({"timeout": MAX_SPEC_INT})).unwrap().timeout,
            Some(MAX_SPEC_INT)
        );
        for bad in [
            json!(MAX_SPEC_INT + 1),
            json!(1u64 << 63),
            json!(-1),
            json!(1.5),
        ] {
            assert!(parse(json!({ "timeout": bad })).is_err(), "{bad}");
        }
    }
}

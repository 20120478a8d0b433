//! Matrix canonical JSON: object keys sorted by code point, no insignificant white space,
//! shortest escapes. Written out here rather than relying on `serde_json`'s map order, which
//! a dependency's `preserve_order` feature could silently change.

use serde_json::Value;

/// The canonical encoding of `value`.
pub fn to_canonical(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // An integer in its one canonical spelling (`-0` is `0`); other numbers, which event
        // content may not hold, keep their text.
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(u)) => out.push_str(&u.to_string()),
            (None, None) => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(&map[key], out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": 1, "a": {"d": [1, 2], "c": null}});
        assert_eq!(to_canonical(&v), r#"{"a":{"c":null,"d":[1,2]},"b":1}"#);
    }

    #[test]
    fn spec_examples() {
        let v: Value = serde_json::from_str(r#"{"one": 1, "two": "Two"}"#).unwrap();
        assert_eq!(to_canonical(&v), r#"{"one":1,"two":"Two"}"#);
        let v: Value = serde_json::from_str(r#"{"a": "日本語"}"#).unwrap();
        assert_eq!(to_canonical(&v), r#"{"a":"日本語"}"#);
        let v: Value = serde_json::from_str(r#"{"本": 2, "日": 1}"#).unwrap();
        assert_eq!(to_canonical(&v), r#"{"日":1,"本":2}"#);
        let v: Value = serde_json::from_str(r#"{"a": "\u0000\u001f\u2028"}"#).unwrap();
        assert_eq!(to_canonical(&v), "{\"a\":\"\\u0000\\u001f\u{2028}\"}");
    }

    #[test]
    fn escapes_use_shortest_form() {
        let v = json!({"s": "q\"b\\n\nt\tx\u{8}\u{c}\r/"});
        assert_eq!(to_canonical(&v), r#"{"s":"q\"b\\n\nt\tx\b\f\r/"}"#);
    }

    #[test]
    fn integers_have_one_spelling() {
        let v: Value = serde_json::from_str(r#"{"a": -0, "b": 18446744073709551615}"#).unwrap();
        assert_eq!(to_canonical(&v), r#"{"a":0,"b":18446744073709551615}"#);
    }

    #[test]
    fn numbers_keep_their_text() {
        let v: Value = serde_json::from_str(r#"{"f": 1.50, "i": -7}"#).unwrap();
        assert_eq!(to_canonical(&v), r#"{"f":1.50,"i":-7}"#);
    }
}

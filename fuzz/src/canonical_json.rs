//! Canonical JSON (`service/keys/canonical_json.rs`): for any JSON text the server accepts,
//! the canonical form parses back, is a fixed point (encoding it again changes nothing), has
//! its object keys sorted by code point without repeats, no insignificant white space, each
//! string in its one shortest spelling and each integer without sign or zero padding; and the
//! content hash and reference hash, which are taken over it, are computed without a panic.

use plugboard::service::keys::signing::{content_hash, reference_event_id};
use plugboard::service::keys::to_canonical;
use plugboard::service::room_version;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use serde_json::Value;

use crate::{json_value, Target};

pub const TARGET: Target = Target {
    name: "canonical_json",
    check,
    dictionary: &[
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b"\"",
        b"\\",
        b"\\u0000",
        b"\\ud83d\\ude00",
        b"\\ud800",
        b"\\u001f",
        b"\\/",
        b"-0",
        b"1e999",
        b"9007199254740992",
        b"1.0",
        b"null",
        b"true",
        b" \n\t",
        b"\xc3\xa9",
        b"\xe2\x80\xa8",
        b"\xff",
    ],
    generate: Some(generate),
};

fn generate() -> BoxedStrategy<Vec<u8>> {
    json_value(4)
        .prop_map(|v| serde_json::to_vec_pretty(&v).unwrap_or_default())
        .boxed()
}

pub fn check(input: &[u8]) -> Result<(), String> {
    let Ok(value) = serde_json::from_slice::<Value>(input) else {
        return Ok(());
    };
    let canonical = to_canonical(&value);
    let again: Value = serde_json::from_str(&canonical)
        .map_err(|e| format!("the canonical form does not parse ({e}): {canonical}"))?;
    let twice = to_canonical(&again);
    if twice != canonical {
        return Err(format!(
            "not a fixed point:\n  once:  {canonical}\n  twice: {twice}"
        ));
    }
    let mut scanner = Scanner {
        text: canonical.as_bytes(),
        at: 0,
    };
    scanner
        .value()
        .and_then(|()| match scanner.at == canonical.len() {
            true => Ok(()),
            false => Err(format!("trailing text at {}", scanner.at)),
        })
        .map_err(|why| format!("{why}: {canonical}"))?;
    // The hashes of signing and event ids are taken over the canonical form of any value.
    let _ = content_hash(&value);
    for version in room_version::SUPPORTED {
        let _ = reference_event_id(&value, version);
    }
    Ok(())
}

/// Reads canonical JSON strictly, refusing anything a second spelling could have written.
struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at {}", b as char, self.at))
        }
    }

    fn value(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(drop),
            Some(b'n') => self.word("null"),
            Some(b't') => self.word("true"),
            Some(b'f') => self.word("false"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            other => Err(format!("unexpected {other:?} at {}", self.at)),
        }
    }

    fn word(&mut self, w: &str) -> Result<(), String> {
        if self.text[self.at..].starts_with(w.as_bytes()) {
            self.at += w.len();
            Ok(())
        } else {
            Err(format!("expected {w} at {}", self.at))
        }
    }

    fn object(&mut self) -> Result<(), String> {
        self.eat(b'{')?;
        let mut last: Option<String> = None;
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            if last.as_ref().is_some_and(|l| *l >= key) {
                return Err(format!("key {key:?} is not after {last:?}"));
            }
            last = Some(key);
            self.eat(b':')?;
            self.value()?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                other => return Err(format!("unexpected {other:?} in an object at {}", self.at)),
            }
        }
    }

    fn array(&mut self) -> Result<(), String> {
        self.eat(b'[')?;
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                other => return Err(format!("unexpected {other:?} in an array at {}", self.at)),
            }
        }
    }

    /// A string whose only escapes are the spec's: `\"`, `\\`, the short forms of
    /// backspace, form feed, newline, carriage return and tab, and `\u00xx` (lower-case
    /// hex) for the other control characters; everything else is written as itself.
    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let start = self.at;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(format!("unterminated string from {start}"));
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or("a lone backslash")?;
                    self.at += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = self
                                .text
                                .get(self.at..self.at + 4)
                                .ok_or("a short \\u escape")?;
                            self.at += 4;
                            let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                            let ok = hex.starts_with("00")
                                && hex.bytes().all(|h| matches!(h, b'0'..=b'9' | b'a'..=b'f'));
                            let code = u8::from_str_radix(hex, 16).map_err(|e| e.to_string());
                            match code {
                                Ok(c) if ok && c < 0x20 && ![8, 9, 10, 12, 13].contains(&c) => {
                                    out.push(c)
                                }
                                _ => return Err(format!("\\u{hex} is not the shortest escape")),
                            }
                        }
                        other => return Err(format!("the escape \\{}", other as char)),
                    }
                }
                c if c < 0x20 => return Err(format!("a raw control character {c:#04x}")),
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    /// An integer without `+`, leading zeros or `-0`; a fraction or exponent (which event
    /// content may not hold, but other JSON may) only after such an integer part.
    fn number(&mut self) -> Result<(), String> {
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.at += 1;
        }
        let n = std::str::from_utf8(&self.text[start..self.at]).map_err(|e| e.to_string())?;
        let int = n.split(['.', 'e', 'E']).next().unwrap_or("");
        let digits = int.strip_prefix('-').unwrap_or(int);
        let plain = n == int;
        if digits.is_empty()
            || (digits.len() > 1 && digits.starts_with('0'))
            || (plain && int == "-0")
        {
            return Err(format!("the number {n} is not in its canonical spelling"));
        }
        Ok(())
    }
}

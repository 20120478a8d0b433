//! Random numbers from WASI's secure random source: dice, tokens, jitter. Under the
//! `testing` harness they come from a fixed seed, so tests repeat.

use crate::host;

/// A random 64-bit number.
pub fn u64() -> u64 {
    host::with(|h| h.random_u64())
}

/// A number in `0..n`, every value equally likely (`n` > 0).
pub fn below(n: u64) -> u64 {
    assert!(n > 0, "random::below(0)");
    // The largest multiple of n that fits: values past it would favour the low results.
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = u64();
        if x < zone {
            return x % n;
        }
    }
}

/// `len` random bytes (a token, a nonce).
pub fn bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

//! Values larger than the store takes in one key (1 MiB): split into parts under `KEY`,
//! `KEY.1`, `KEY.2`, …, the first part saying how many there are.

use plugboard_sdk::{kv, Error};

use crate::encoding::{Corrupt, Reader, Writer};

/// Bytes per part: under the host's 1 MiB value limit with room for the header.
pub const PART: usize = 1_000_000;

/// Stores `bytes` under `key` (and its parts). `rewrite` says the key may hold a longer
/// value already, whose extra parts must go.
pub fn put(key: &str, bytes: &[u8], rewrite: bool) -> Result<(), Error> {
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[]]
    } else {
        bytes.chunks(PART).collect()
    };
    let mut first = Writer::new();
    first.varint(chunks.len() as u64);
    first.buf.extend_from_slice(chunks[0]);
    kv::set(key, &first.buf)?;
    for (i, c) in chunks.iter().enumerate().skip(1) {
        kv::set(&format!("{key}.{i}"), c)?;
    }
    if rewrite {
        for k in kv::list_keys(&format!("{key}."), None, 1000)? {
            let extra = k
                .rsplit_once('.')
                .and_then(|(_, n)| n.parse::<usize>().ok())
                .is_some_and(|n| n >= chunks.len());
            if extra {
                kv::delete(&k)?;
            }
        }
    }
    Ok(())
}

/// The value under `key`, parts joined.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(first) = kv::get(key)? else {
        return Ok(None);
    };
    let mut r = Reader::new(&first);
    let parts = r.varint()?;
    let mut out = first[r.position()..].to_vec();
    for i in 1..parts {
        match kv::get(&format!("{key}.{i}"))? {
            Some(p) => out.extend_from_slice(&p),
            None => return Err(Corrupt("a part of a value is missing").into()),
        }
    }
    Ok(Some(out))
}

/// Removes `key` and its parts.
pub fn delete(key: &str) -> Result<(), Error> {
    kv::delete(key)?;
    for k in kv::list_keys(&format!("{key}."), None, 1000)? {
        kv::delete(&k)?;
    }
    Ok(())
}

//! The byte encoding of everything the index keeps in the store: LEB128 varints, fixed-width
//! little-endian integers and length-prefixed strings, written by [`Writer`] and read back by
//! [`Reader`], which answers [`Corrupt`] instead of panicking on bytes it cannot read.

use plugboard_sdk::Error;

/// Bytes in the store that do not decode: a bug or a store changed behind the plugin's back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

impl From<Corrupt> for Error {
    fn from(c: Corrupt) -> Error {
        Error::unknown(format!("the search index is corrupt ({})", c.0))
    }
}

/// Builds an encoded value.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads an encoded value.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// How many bytes have been read.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn u8(&mut self) -> Result<u8, Corrupt> {
        let b = *self.buf.get(self.pos).ok_or(Corrupt("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u64(&mut self) -> Result<u64, Corrupt> {
        let end = self.pos.checked_add(8).ok_or(Corrupt("truncated"))?;
        let bytes = self.buf.get(self.pos..end).ok_or(Corrupt("truncated"))?;
        self.pos = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(a))
    }

    pub fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Corrupt("varint too long"))
    }

    /// A varint that must fit a `u32`.
    pub fn u32v(&mut self) -> Result<u32, Corrupt> {
        u32::try_from(self.varint()?).map_err(|_| Corrupt("number out of range"))
    }

    /// A count of items each at least one byte long: never more than the bytes left, so a
    /// corrupt count cannot make a reader allocate without bound.
    pub fn count(&mut self) -> Result<usize, Corrupt> {
        let n = self.varint()?;
        if n > (self.buf.len() - self.pos.min(self.buf.len())) as u64 {
            return Err(Corrupt("count past the end"));
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], Corrupt> {
        let n = self.count()?;
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    pub fn str(&mut self) -> Result<&'a str, Corrupt> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Corrupt("not UTF-8"))
    }
}

/// FNV-1a: the 64-bit hash event ids are looked up by (collisions are told apart by the
/// stored event id where it matters).
pub fn hash(s: &str) -> u64 {
    hash_bytes(s.as_bytes())
}

/// FNV-1a of bytes.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    fnv(0xcbf2_9ce4_8422_2325, bytes)
}

/// The hash of an event id in its room: an id named in one room must not match an event of
/// another.
pub fn hash_in_room(room: &str, event_id: &str) -> u64 {
    // 0xff never occurs in UTF-8: a room and an id cannot run into each other.
    let h = fnv(hash(room), &[0xff]);
    fnv(h, event_id.as_bytes())
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let mut w = Writer::new();
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            w.varint(v);
        }
        w.u64(42);
        w.str("héllo");
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            assert_eq!(r.varint().unwrap(), v);
        }
        assert_eq!(r.u64().unwrap(), 42);
        assert_eq!(r.str().unwrap(), "héllo");
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_or_lying_bytes_are_corrupt_not_a_panic() {
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(Reader::new(&[0xff; 11]).varint().is_err());
        assert!(Reader::new(&[200, 1, 2]).bytes().is_err());
        assert!(Reader::new(&[1, 2]).u64().is_err());
        assert!(Reader::new(&[2, 0xff, 0xfe]).str().is_err());
    }
}

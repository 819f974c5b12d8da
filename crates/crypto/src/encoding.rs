//! The canonical binary encoding used for everything that is hashed or signed.
//!
//! `u8` is one byte; `u32`/`u64` are big-endian fixed width; `bool` is `0x00`/`0x01` (any
//! other byte is an error); byte strings and UTF-8 strings are a `u32` length followed by the
//! bytes; fixed-size arrays are raw; `Option<T>` is `0x00` or `0x01 T`; lists are a `u32`
//! count followed by the items. [`Reader`] never panics: every read checks the remaining
//! input first, and lengths are checked against the remaining input before allocating.

use crate::hash::Hash;
use crate::identity::{MemberId, PublicKey, Signature};

/// A canonical decoding failure: where it happened and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("decode error at byte {offset}: {reason}")]
pub struct DecodeError {
    pub offset: usize,
    pub reason: String,
}

/// Appends canonically encoded values to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A `u32` length or count.
    ///
    /// # Panics
    /// If `len > u32::MAX`: such a value has no canonical encoding. Decoded values can never
    /// be this large (they came from a buffer with a `u32` length), so only a caller building
    /// a > 4 GiB field locally can reach this.
    #[allow(clippy::panic)] // Unreachable from input (above); a silent wrong encoding would be worse.
    pub fn length_prefix(&mut self, len: usize) -> &mut Self {
        let len = u32::try_from(len)
            .unwrap_or_else(|_| panic!("canonical encoding: length {len} exceeds u32::MAX"));
        self.u32(len)
    }

    /// `u32` length + bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.length_prefix(v.len());
        self.buf.extend_from_slice(v);
        self
    }

    /// `u32` length + UTF-8 bytes.
    pub fn string(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// Raw bytes with no length prefix (fixed-size arrays).
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    pub fn hash(&mut self, v: &Hash) -> &mut Self {
        self.fixed(&v.0)
    }

    pub fn member_id(&mut self, v: &MemberId) -> &mut Self {
        self.fixed(&v.0)
    }

    pub fn public_key(&mut self, v: &PublicKey) -> &mut Self {
        self.fixed(&v.0)
    }

    pub fn signature(&mut self, v: &Signature) -> &mut Self {
        self.fixed(&v.0)
    }

    /// `0x00` for `None`, `0x01` followed by `write(value)` for `Some`.
    pub fn option<T>(&mut self, v: Option<&T>, write: impl FnOnce(&mut Self, &T)) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(value) => {
                self.u8(1);
                write(self, value);
                self
            }
        }
    }

    /// `u32` count followed by each item.
    pub fn list<T>(&mut self, items: &[T], mut write: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.length_prefix(items.len());
        for item in items {
            write(self, item);
        }
        self
    }
}

/// Reads canonically encoded values from a byte slice, never panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    /// An error at the current position.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    /// Errors if any input is left unread.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(format!("{n} trailing bytes after the value"))),
        }
    }

    /// Takes the next `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "need {n} bytes but only {} remain",
                self.remaining()
            )));
        }
        let start = self.pos;
        self.pos += n;
        self.input
            .get(start..self.pos)
            .ok_or_else(|| self.error("internal bounds error"))
    }

    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.fixed::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.fixed()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.fixed()?))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError {
                offset: at,
                reason: format!("invalid bool byte 0x{other:02x}"),
            }),
        }
    }

    /// `u32` length + bytes, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// `u32` length + UTF-8 bytes.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let at = self.pos;
        let raw = self.bytes()?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|e| DecodeError {
                offset: at,
                reason: format!("string is not valid UTF-8: {e}"),
            })
    }

    pub fn hash(&mut self) -> Result<Hash, DecodeError> {
        Ok(Hash(self.fixed()?))
    }

    pub fn member_id(&mut self) -> Result<MemberId, DecodeError> {
        Ok(MemberId(self.fixed()?))
    }

    pub fn public_key(&mut self) -> Result<PublicKey, DecodeError> {
        Ok(PublicKey(self.fixed()?))
    }

    pub fn signature(&mut self) -> Result<Signature, DecodeError> {
        Ok(Signature(self.fixed()?))
    }

    /// `0x00` → `None`; `0x01` → `Some(read(self)?)`; anything else is an error.
    pub fn option<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            other => Err(DecodeError {
                offset: at,
                reason: format!("invalid option tag 0x{other:02x}"),
            }),
        }
    }

    /// A `u32` count checked against the remaining input: each item needs at least
    /// `min_item_size` bytes (use 1 for variable-size items), so a huge count in a short input
    /// is rejected before anything is allocated.
    pub fn count(&mut self, min_item_size: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let count = self.u32()? as usize;
        let needed = count.saturating_mul(min_item_size.max(1));
        if needed > self.remaining() {
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "count {count} needs at least {needed} bytes but only {} remain",
                    self.remaining()
                ),
            });
        }
        Ok(count)
    }

    /// `u32` count followed by items, each read by `read`.
    pub fn list<T>(
        &mut self,
        min_item_size: usize,
        mut read: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.count(min_item_size)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(read(self)?);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        a: u8,
        b: u32,
        c: u64,
        d: bool,
        e: Vec<u8>,
        f: String,
        g: Option<u64>,
        h: Vec<String>,
        i: [u8; 16],
    }

    fn encode(s: &Sample) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(s.a)
            .u32(s.b)
            .u64(s.c)
            .bool(s.d)
            .bytes(&s.e)
            .string(&s.f);
        w.option(s.g.as_ref(), |w, v| {
            w.u64(*v);
        });
        w.list(&s.h, |w, v| {
            w.string(v);
        });
        w.fixed(&s.i);
        w.into_bytes()
    }

    fn decode(bytes: &[u8]) -> Result<Sample, DecodeError> {
        let mut r = Reader::new(bytes);
        let s = Sample {
            a: r.u8()?,
            b: r.u32()?,
            c: r.u64()?,
            d: r.bool()?,
            e: r.bytes()?.to_vec(),
            f: r.string()?,
            g: r.option(|r| r.u64())?,
            h: r.list(4, |r| r.string())?,
            i: r.fixed()?,
        };
        r.finish()?;
        Ok(s)
    }

    fn sample() -> impl Strategy<Value = Sample> {
        (
            any::<u8>(),
            any::<u32>(),
            any::<u64>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            ".{0,20}",
            any::<Option<u64>>(),
            proptest::collection::vec(".{0,8}", 0..5),
            any::<[u8; 16]>(),
        )
            .prop_map(|(a, b, c, d, e, f, g, h, i)| Sample {
                a,
                b,
                c,
                d,
                e,
                f,
                g,
                h,
                i,
            })
    }

    #[test]
    fn primitives_are_big_endian_and_length_prefixed() {
        let mut w = Writer::new();
        w.u32(0x01020304).u64(5).bool(true).string("hi");
        w.option::<u8>(None, |_, _| {});
        assert_eq!(
            w.as_bytes(),
            [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 2, b'h', b'i', 0]
        );
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(Reader::new(&[2]).bool().is_err());
        assert!(Reader::new(&[7]).option(|r| r.u8()).is_err());
        // Length claims 4 GiB with 1 byte of input: rejected, nothing allocated.
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0]).bytes().is_err());
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0])
            .list(1, |r| r.u8())
            .is_err());
        assert!(Reader::new(&[0, 0, 0, 1, 0xff]).string().is_err());
        let err = Reader::new(&[1, 2]).u32().unwrap_err();
        assert_eq!(err.offset, 0);
        let mut r = Reader::new(&[1, 2]);
        r.u8().unwrap();
        assert!(r.finish().is_err());
    }

    proptest! {
        #[test]
        fn round_trip(s in sample()) {
            let bytes = encode(&s);
            prop_assert_eq!(decode(&bytes).unwrap(), s);
            // Every strict prefix is an error, never a panic; so is any extension.
            for cut in 0..bytes.len() {
                prop_assert!(decode(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(decode(&longer).is_err());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}

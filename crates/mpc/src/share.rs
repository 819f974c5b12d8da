//! Share types of 2-out-of-3 replicated secret sharing and their local (free) operations.
//!
//! A secret x is split into three components with x = x_0 + x_1 + x_2 (wrapping, in
//! Z_2^64) or x = x_0 ⊕ x_1 ⊕ x_2 (boolean). Party i holds the pair (x_i, x_{i+1}), stored
//! as `a` and `b`. Any two parties can reconstruct; any one sees two uniformly random
//! looking words. Linear operations are local: applying them componentwise keeps the
//! replication consistent. Adding a public constant touches component 0 only, which party
//! 0 holds as `a` and party 2 holds as `b`.

use crate::error::{MpcError, Result};
use crate::transport::PartyId;

/// This party's components of a vector of secrets in Z_2^64 (additive sharing).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ArithShares {
    /// Component x_i of each element (i = this party).
    pub a: Vec<u64>,
    /// Component x_{i+1} of each element.
    pub b: Vec<u64>,
}

/// This party's components of a vector of 64-bit values XOR-shared bitwise: each word is
/// 64 independent boolean secrets (bit j of value e), as produced by A2B.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct XorShares {
    /// Component x_i.
    pub a: Vec<u64>,
    /// Component x_{i+1}.
    pub b: Vec<u64>,
}

/// This party's components of a vector of secret bits, packed 64 per word: bit `e % 64`
/// of word `e / 64` is element `e`. Bits past `len` are kept zero in both components.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BitShares {
    /// Component x_i, packed.
    pub a: Vec<u64>,
    /// Component x_{i+1}, packed.
    pub b: Vec<u64>,
    len: usize,
}

/// Shares are secrets' components: `Debug` shows how many, never their words.
macro_rules! redacted_debug {
    ($($name:ident),*) => {$(
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), " {{ words: {}, .. }}"), self.a.len())
            }
        }
    )*};
}
redacted_debug!(ArithShares, XorShares, BitShares);

pub(crate) fn check_len(what: &str, x: usize, y: usize) -> Result<()> {
    if x != y {
        return Err(MpcError::arg(format!(
            "{what}: lengths differ ({x} vs {y})"
        )));
    }
    Ok(())
}

/// Does this party hold component 0 as `a` (party 0) or as `b` (party 2)?
pub(crate) fn holds_c0(me: PartyId) -> (bool, bool) {
    (me == 0, me == 2)
}

impl ArithShares {
    /// Shares of zero (all components zero) of length `n`: a valid, non-random sharing.
    pub fn zeros(n: usize) -> Self {
        ArithShares {
            a: vec![0; n],
            b: vec![0; n],
        }
    }

    /// Builds shares from components; both must have the same length.
    pub fn new(a: Vec<u64>, b: Vec<u64>) -> Result<Self> {
        check_len("ArithShares::new", a.len(), b.len())?;
        Ok(ArithShares { a, b })
    }

    /// A public vector as a (trivial) sharing held by party `me`.
    pub fn public(me: PartyId, v: &[u64]) -> Self {
        let mut s = ArithShares::zeros(v.len());
        s.add_public_in_place(me, v);
        s
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// True for zero elements.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    fn zip(&self, o: &Self, what: &str, f: impl Fn(u64, u64) -> u64) -> Result<Self> {
        check_len(what, self.len(), o.len())?;
        Ok(ArithShares {
            a: self.a.iter().zip(&o.a).map(|(x, y)| f(*x, *y)).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| f(*x, *y)).collect(),
        })
    }

    /// x + y.
    pub fn add(&self, o: &Self) -> Result<Self> {
        self.zip(o, "add", u64::wrapping_add)
    }

    /// x − y.
    pub fn sub(&self, o: &Self) -> Result<Self> {
        self.zip(o, "sub", u64::wrapping_sub)
    }

    /// −x.
    pub fn neg(&self) -> Self {
        ArithShares {
            a: self.a.iter().map(|x| x.wrapping_neg()).collect(),
            b: self.b.iter().map(|x| x.wrapping_neg()).collect(),
        }
    }

    /// c · x for a public constant c.
    pub fn mul_public(&self, c: u64) -> Self {
        ArithShares {
            a: self.a.iter().map(|x| x.wrapping_mul(c)).collect(),
            b: self.b.iter().map(|x| x.wrapping_mul(c)).collect(),
        }
    }

    /// c_e · x_e for a public vector c.
    pub fn mul_public_vec(&self, c: &[u64]) -> Result<Self> {
        check_len("mul_public_vec", self.len(), c.len())?;
        Ok(ArithShares {
            a: self
                .a
                .iter()
                .zip(c)
                .map(|(x, c)| x.wrapping_mul(*c))
                .collect(),
            b: self
                .b
                .iter()
                .zip(c)
                .map(|(x, c)| x.wrapping_mul(*c))
                .collect(),
        })
    }

    /// x + c for a public constant c (party `me` adjusts its copy of component 0).
    pub fn add_const(&self, me: PartyId, c: u64) -> Self {
        let mut s = self.clone();
        let (ia, ib) = holds_c0(me);
        if ia {
            s.a.iter_mut().for_each(|x| *x = x.wrapping_add(c));
        }
        if ib {
            s.b.iter_mut().for_each(|x| *x = x.wrapping_add(c));
        }
        s
    }

    /// x_e + c_e for a public vector c.
    pub fn add_public(&self, me: PartyId, c: &[u64]) -> Result<Self> {
        check_len("add_public", self.len(), c.len())?;
        let mut s = self.clone();
        s.add_public_in_place(me, c);
        Ok(s)
    }

    fn add_public_in_place(&mut self, me: PartyId, c: &[u64]) {
        let (ia, ib) = holds_c0(me);
        if ia {
            self.a
                .iter_mut()
                .zip(c)
                .for_each(|(x, c)| *x = x.wrapping_add(*c));
        }
        if ib {
            self.b
                .iter_mut()
                .zip(c)
                .for_each(|(x, c)| *x = x.wrapping_add(*c));
        }
    }

    /// Sum of all elements, as a one-element sharing (local).
    pub fn sum(&self) -> Self {
        let f = |v: &[u64]| v.iter().fold(0u64, |s, x| s.wrapping_add(*x));
        ArithShares {
            a: vec![f(&self.a)],
            b: vec![f(&self.b)],
        }
    }

    /// Elements at the given indices (local; indices must be in range).
    pub fn gather(&self, idx: &[usize]) -> Result<Self> {
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.len()) {
            return Err(MpcError::arg(format!(
                "gather: index {bad} out of range {}",
                self.len()
            )));
        }
        Ok(ArithShares {
            a: idx.iter().map(|&i| self.a[i]).collect(),
            b: idx.iter().map(|&i| self.b[i]).collect(),
        })
    }

    /// Elements `range` (local).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<Self> {
        if range.start > range.end || range.end > self.len() {
            return Err(MpcError::arg(format!(
                "slice {range:?} out of range {}",
                self.len()
            )));
        }
        Ok(ArithShares {
            a: self.a[range.clone()].to_vec(),
            b: self.b[range].to_vec(),
        })
    }

    /// Concatenates sharings (local).
    pub fn concat(parts: &[&ArithShares]) -> Self {
        let mut s = ArithShares::default();
        for p in parts {
            s.a.extend_from_slice(&p.a);
            s.b.extend_from_slice(&p.b);
        }
        s
    }
}

impl XorShares {
    /// Builds shares from components; both must have the same length.
    pub fn new(a: Vec<u64>, b: Vec<u64>) -> Result<Self> {
        check_len("XorShares::new", a.len(), b.len())?;
        Ok(XorShares { a, b })
    }

    /// All-zero sharing of `n` words.
    pub fn zeros(n: usize) -> Self {
        XorShares {
            a: vec![0; n],
            b: vec![0; n],
        }
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.a.len()
    }

    /// True for zero words.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    /// x ⊕ y (local).
    pub fn xor(&self, o: &Self) -> Result<Self> {
        check_len("xor", self.len(), o.len())?;
        Ok(XorShares {
            a: self.a.iter().zip(&o.a).map(|(x, y)| x ^ y).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| x ^ y).collect(),
        })
    }

    /// x ⊕ c for a public word c applied to every element (local).
    pub fn xor_const(&self, me: PartyId, c: u64) -> Self {
        let mut s = self.clone();
        let (ia, ib) = holds_c0(me);
        if ia {
            s.a.iter_mut().for_each(|x| *x ^= c);
        }
        if ib {
            s.b.iter_mut().for_each(|x| *x ^= c);
        }
        s
    }

    /// x & c for a public mask (local).
    pub fn and_const(&self, c: u64) -> Self {
        XorShares {
            a: self.a.iter().map(|x| x & c).collect(),
            b: self.b.iter().map(|x| x & c).collect(),
        }
    }
}

impl BitShares {
    /// Builds packed bit shares of `len` bits; extra bits are cleared.
    pub fn new(a: Vec<u64>, b: Vec<u64>, len: usize) -> Result<Self> {
        check_len("BitShares::new", a.len(), b.len())?;
        if a.len() != len.div_ceil(64) {
            return Err(MpcError::arg(format!(
                "BitShares::new: {} words cannot hold exactly {len} bits",
                a.len()
            )));
        }
        let mut s = BitShares { a, b, len };
        s.clear_tail();
        Ok(s)
    }

    pub(crate) fn from_words(w: XorShares, len: usize) -> Self {
        let mut s = BitShares {
            a: w.a,
            b: w.b,
            len,
        };
        s.a.resize(len.div_ceil(64), 0);
        s.b.resize(len.div_ceil(64), 0);
        s.clear_tail();
        s
    }

    pub(crate) fn words(&self) -> XorShares {
        XorShares {
            a: self.a.clone(),
            b: self.b.clone(),
        }
    }

    fn clear_tail(&mut self) {
        if self.len % 64 != 0 {
            let m = (1u64 << (self.len % 64)) - 1;
            if let Some(w) = self.a.last_mut() {
                *w &= m;
            }
            if let Some(w) = self.b.last_mut() {
                *w &= m;
            }
        }
    }

    /// All-zero sharing of `len` bits.
    pub fn zeros(len: usize) -> Self {
        BitShares {
            a: vec![0; len.div_ceil(64)],
            b: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// A public bit vector as a trivial sharing held by party `me`.
    pub fn public(me: PartyId, bits: &[bool]) -> Self {
        let mut w = vec![0u64; bits.len().div_ceil(64)];
        for (i, &bit) in bits.iter().enumerate() {
            w[i / 64] |= (bit as u64) << (i % 64);
        }
        let (ia, ib) = holds_c0(me);
        let z = vec![0; w.len()];
        BitShares {
            a: if ia { w.clone() } else { z.clone() },
            b: if ib { w } else { z },
            len: bits.len(),
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for zero bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// x ⊕ y (local).
    pub fn xor(&self, o: &Self) -> Result<Self> {
        check_len("bit xor", self.len, o.len)?;
        Ok(BitShares {
            a: self.a.iter().zip(&o.a).map(|(x, y)| x ^ y).collect(),
            b: self.b.iter().zip(&o.b).map(|(x, y)| x ^ y).collect(),
            len: self.len,
        })
    }

    /// ¬x (local: party 0 and party 2 flip their copy of component 0).
    pub fn not(&self, me: PartyId) -> Self {
        let mut s = self.clone();
        let (ia, ib) = holds_c0(me);
        if ia {
            s.a.iter_mut().for_each(|x| *x = !*x);
        }
        if ib {
            s.b.iter_mut().for_each(|x| *x = !*x);
        }
        s.clear_tail();
        s
    }

    /// Bit `i` of both components (for gathering).
    pub(crate) fn get(&self, i: usize) -> (bool, bool) {
        (
            (self.a[i / 64] >> (i % 64)) & 1 == 1,
            (self.b[i / 64] >> (i % 64)) & 1 == 1,
        )
    }

    /// Concatenates bit vectors (local).
    pub fn concat(parts: &[&BitShares]) -> Self {
        let len = parts.iter().map(|p| p.len).sum();
        let mut s = BitShares::zeros(len);
        let mut k = 0;
        for p in parts {
            for i in 0..p.len {
                let (x, y) = p.get(i);
                s.a[k / 64] |= (x as u64) << (k % 64);
                s.b[k / 64] |= (y as u64) << (k % 64);
                k += 1;
            }
        }
        s
    }

    /// Bits `range` (local).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Result<Self> {
        if range.start > range.end || range.end > self.len {
            return Err(MpcError::arg(format!(
                "slice {range:?} out of range {}",
                self.len
            )));
        }
        let n = range.len();
        let mut s = BitShares::zeros(n);
        for (k, i) in range.enumerate() {
            let (x, y) = self.get(i);
            s.a[k / 64] |= (x as u64) << (k % 64);
            s.b[k / 64] |= (y as u64) << (k % 64);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn debug_never_prints_share_words() {
        let shares = ArithShares {
            a: vec![0x1234_5678_9abc_def0],
            b: vec![0x0fed_cba9_8765_4321],
        };
        let printed = format!("{shares:?}");
        assert_eq!(printed, "ArithShares { words: 1, .. }");
        assert!(
            !printed.contains("1234") && !printed.contains(&0x1234_5678_9abc_def0u64.to_string())
        );
        let xor = XorShares {
            a: vec![7; 3],
            b: vec![9; 3],
        };
        assert_eq!(format!("{xor:?}"), "XorShares { words: 3, .. }");
    }
}

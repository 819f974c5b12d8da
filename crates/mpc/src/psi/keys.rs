//! PSI keys and their canonical encoding: what "the same key" means across two parties.
//!
//! Two keys match exactly when their canonical encodings are equal. The encoding starts
//! with a type tag, so values of different types never match (`Int(42)`, `Float(42.0)` and
//! `Text("42")` are three different keys); callers that want `42 = 42.0` must convert
//! before the PSI, exactly as they would in SQL with a cast.

use std::collections::HashMap;

/// Domain separator hashed in front of every canonical key, so that PSI points can never
/// collide with points hashed by another protocol (or another version of this one).
pub(crate) const HASH_DOMAIN: &[u8] = b"consort/psi/v1/key\0";

/// One row's join key. Modelled on `consort_data::Value`, which this crate must not
/// depend on; the node converts.
#[derive(Clone, Debug, PartialEq)]
pub enum PsiKey {
    /// SQL NULL: never matches anything, not even another NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A float. `-0.0` and `0.0` are the same key (they compare equal); NaN never matches,
    /// like NULL (NaN ≠ NaN).
    Float(f64),
    /// Text, compared as its exact UTF-8 bytes: no Unicode normalisation and no case
    /// folding, so "é" (U+00E9) and "e\u{301}" are different keys.
    Text(String),
    /// A calendar date: days since 1970-01-01 (negative before).
    Date(i32),
    /// An instant: microseconds since 1970-01-01T00:00:00Z (UTC; no time zone).
    Timestamp(i64),
}

const TAG_BOOL: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_FLOAT: u8 = 3;
const TAG_TEXT: u8 = 4;
const TAG_DATE: u8 = 5;
const TAG_TIMESTAMP: u8 = 6;

impl PsiKey {
    /// The canonical encoding: a type tag, then the value (fixed-width big-endian numbers,
    /// exact UTF-8 text). `None` for keys that never match (NULL and NaN).
    pub fn canonical(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(9);
        match self {
            PsiKey::Null => return None,
            PsiKey::Bool(b) => {
                out.push(TAG_BOOL);
                out.push(u8::from(*b));
            }
            PsiKey::Int(i) => {
                out.push(TAG_INT);
                out.extend_from_slice(&i.to_be_bytes());
            }
            PsiKey::Float(f) => {
                if f.is_nan() {
                    return None;
                }
                // Adding 0.0 turns -0.0 into +0.0 and leaves every other value unchanged.
                let f = *f + 0.0;
                out.push(TAG_FLOAT);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            PsiKey::Text(s) => {
                out.reserve(s.len());
                out.push(TAG_TEXT);
                out.extend_from_slice(s.as_bytes());
            }
            PsiKey::Date(d) => {
                out.push(TAG_DATE);
                out.extend_from_slice(&d.to_be_bytes());
            }
            PsiKey::Timestamp(t) => {
                out.push(TAG_TIMESTAMP);
                out.extend_from_slice(&t.to_be_bytes());
            }
        }
        Some(out)
    }
}

/// Row index of a key that can never match (NULL, NaN).
pub(crate) const NO_KEY: usize = usize::MAX;

/// A party's keys with duplicates folded: the protocol runs on the set of distinct
/// canonical keys, so the peer never sees how often a key occurs.
pub(crate) struct KeySet {
    /// Distinct canonical encodings, in order of first occurrence.
    pub distinct: Vec<Vec<u8>>,
    /// For each row, the index of its key in `distinct`, or [`NO_KEY`].
    pub row_key: Vec<usize>,
}

impl KeySet {
    pub(crate) fn new(keys: &[PsiKey]) -> KeySet {
        let mut index: HashMap<Vec<u8>, usize> = HashMap::with_capacity(keys.len());
        let mut distinct = Vec::new();
        let row_key = keys
            .iter()
            .map(|k| match k.canonical() {
                None => NO_KEY,
                Some(c) => *index.entry(c).or_insert_with_key(|c| {
                    distinct.push(c.clone());
                    distinct.len() - 1
                }),
            })
            .collect();
        KeySet { distinct, row_key }
    }
}

//! BLAKE3 hashing: the 32-byte [`Hash`] type, domain-separated hashing ([`hash_domain`]),
//! and constant-time comparison of secrets.

/// A 32-byte digest: block hashes, transaction ids, Merkle and state roots.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// All-zero hash, used where "no previous value" must still be hashed (genesis `prev_hash`).
    pub const ZERO: Hash = Hash([0u8; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Implements lowercase-hex `Display`/`Debug`/`FromStr` and hex-string serde for a
/// fixed-size byte newtype.
macro_rules! hex_newtype {
    ($ty:ident, $len:expr, $what:expr) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($ty), hex::encode(self.0))
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::CryptoError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s.trim(), &mut out).map_err(|e| $crate::CryptoError::Hex {
                    what: $what,
                    reason: format!("expected {} hex characters: {e}", 2 * $len),
                })?;
                Ok($ty(out))
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(self.0))
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use hex_newtype;

hex_newtype!(Hash, 32, "hash");

/// `BLAKE3(domain_ascii || 0x00 || part1 || part2 || ...)`.
///
/// The 0x00 separator keeps a domain from being a prefix of another domain plus data; parts
/// are concatenated without lengths, so callers must only pass parts whose boundaries are
/// implied by fixed sizes or by the canonical encoding.
pub fn hash_domain(domain: &str, parts: &[&[u8]]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(domain.as_bytes());
    hasher.update(&[0u8]);
    for part in parts {
        hasher.update(part);
    }
    Hash(*hasher.finalize().as_bytes())
}

/// Compares two byte strings without an early exit on the first differing byte, so the
/// time taken does not reveal how much of a secret (e.g. an API token) a guess got right.
/// The lengths are not secret: different lengths return `false` immediately.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box stops the optimiser from turning the fold back into a short-circuit compare.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_hex_round_trip_and_serde() {
        let h = hash_domain("consort/test/v1", &[b"a", b"b"]);
        let text = h.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Hash>().unwrap(), h);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert!("zz".parse::<Hash>().is_err());
        assert!(serde_json::from_str::<Hash>("\"00\"").is_err());
    }

    #[test]
    fn hash_domain_is_blake3_of_domain_nul_parts() {
        let expected = blake3::hash(b"dom\x00abc");
        assert_eq!(hash_domain("dom", &[b"a", b"bc"]).0, *expected.as_bytes());
        assert_ne!(hash_domain("dom", &[b"abc"]), hash_domain("do", &[b"mabc"]));
    }

    #[test]
    fn constant_time_eq_behaves_like_eq() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokeN"));
        assert!(!constant_time_eq(b"token", b"toke"));
        assert!(constant_time_eq(b"", b""));
    }
}

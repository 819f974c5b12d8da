//! Member identities: Ed25519 key pairs, member ids derived from public keys, signatures,
//! key files, and (batch) signature verification.

use ed25519_dalek::{SigningKey, VerifyingKey};
use rayon::prelude::*;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::CryptoError;
use crate::hash::{hash_domain, hex_newtype};

/// Domain for deriving a member id from a public key.
pub const MEMBER_ID_DOMAIN: &str = "consort/member-id/v1";

/// Number of signatures verified together in one Ed25519 batch by [`verify_many`].
///
/// Fixed (never derived from the thread count) so that the batches — and therefore the
/// result of [`verify_many`] on adversarial signatures whose batch and single verdicts can
/// differ — depend only on the input, identically on every node.
pub const VERIFY_CHUNK_SIZE: usize = 64;

/// An Ed25519 public key (32 bytes, compressed Edwards point).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);
hex_newtype!(PublicKey, 32, "public key");

/// An Ed25519 signature (64 bytes, `R || s`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);
hex_newtype!(Signature, 64, "signature");

/// A member's identity on the ledger: the first 16 bytes of
/// `hash_domain("consort/member-id/v1", [public_key])`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub [u8; 16]);
hex_newtype!(MemberId, 16, "member id");

impl Signature {
    /// All-zero signature, used for the unsigned genesis block.
    pub const ZERO: Signature = Signature([0u8; 64]);
}

impl PublicKey {
    pub fn member_id(&self) -> MemberId {
        MemberId::from_public_key(self)
    }

    /// Whether the 32 bytes decode to a curve point that is not of small order, i.e. a key
    /// that strict verification can ever accept a signature for.
    pub fn is_valid(&self) -> bool {
        VerifyingKey::from_bytes(&self.0).is_ok_and(|vk| !vk.is_weak())
    }

    /// Whether the key's y-coordinate is encoded below p, as RFC 8032 decoding requires
    /// (curve25519-dalek also accepts y + p for the 19 smallest y).
    pub fn is_canonical(&self) -> bool {
        is_canonical_point_encoding(&self.0)
    }
}

/// Whether a compressed Edwards point's y-coordinate (the low 255 bits, little-endian) is
/// below p = 2^255 - 19. Only the encodings y + p of y < 19 fail.
pub fn is_canonical_point_encoding(bytes: &[u8; 32]) -> bool {
    let top_is_max = bytes[31] & 0x7f == 0x7f;
    let middle_is_max = bytes[1..31].iter().all(|b| *b == 0xff);
    !(top_is_max && middle_is_max && bytes[0] >= 0xed)
}

impl Signature {
    /// Whether R, the signature's first 32 bytes, is a canonical point encoding (see
    /// [`is_canonical_point_encoding`]). S is held canonical by strict verification.
    pub fn has_canonical_r(&self) -> bool {
        let mut r = [0u8; 32];
        r.copy_from_slice(&self.0[..32]);
        is_canonical_point_encoding(&r)
    }
}

impl MemberId {
    /// Placeholder id (the genesis block has no proposer).
    pub const ZERO: MemberId = MemberId([0u8; 16]);

    pub fn from_public_key(key: &PublicKey) -> MemberId {
        let digest = hash_domain(MEMBER_ID_DOMAIN, &[&key.0]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest.0[..16]);
        MemberId(id)
    }

    /// The Raft node id of this member: the first 8 bytes of the id as a big-endian u64.
    pub fn raft_node_id(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(first)
    }
}

/// A member's Ed25519 signing key. Zeroized on drop; `Debug` never shows it.
pub struct SecretKey(SigningKey);

// SigningKey zeroizes itself on drop (ed25519-dalek `zeroize` feature).
impl ZeroizeOnDrop for SecretKey {}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        SecretKey(self.0.clone())
    }
}

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        SecretKey(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key whose RFC 8032 seed is `seed` (deterministic; for tests and key files).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(seed))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub fn member_id(&self) -> MemberId {
        MemberId::from_public_key(&self.public_key())
    }

    pub fn sign(&self, msg: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        Signature(self.0.sign(msg).to_bytes())
    }

    /// PKCS#8 DER of the key (RFC 8410 `OneAsymmetricKey` v2: seed plus public key), for
    /// building TLS certificates (rcgen / rustls / ring accept this form).
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        // Built from a fixed template rather than via the `pkcs8` encoder so there is no
        // error path: the layout for a 32-byte Ed25519 seed never varies.
        let mut der = Zeroizing::new(Vec::with_capacity(83));
        der.extend_from_slice(&PKCS8_V2_SEED_PREFIX);
        der.extend_from_slice(self.0.as_bytes());
        der.extend_from_slice(&PKCS8_V2_PUBLIC_KEY_PREFIX);
        der.extend_from_slice(&self.public_key().0);
        der
    }

    /// The key file's text: the 32-byte seed as 64 lowercase hex characters and a newline.
    /// (Reading and writing the file, with its permissions, is the node's business.)
    pub fn to_key_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(hex::encode(self.0.as_bytes()));
        text.push('\n');
        text
    }

    /// The key in a key file's text ([`SecretKey::to_key_file_text`]; white space around
    /// the hex is ignored).
    pub fn from_key_file_text(bytes: &[u8]) -> Result<Self, CryptoError> {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            CryptoError::KeyFile("not UTF-8 text; expected 64 hex characters".into())
        })?;
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut *seed).map_err(|e| {
            CryptoError::KeyFile(format!(
                "expected 64 hex characters (a 32-byte Ed25519 seed): {e}"
            ))
        })?;
        let key = SecretKey::from_seed(&seed);
        seed.zeroize();
        Ok(key)
    }
}

/// DER of `SEQUENCE { version 1, AlgorithmIdentifier id-Ed25519, OCTET STRING { OCTET STRING`
/// up to the 32 seed bytes (RFC 8410 §7).
const PKCS8_V2_SEED_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER of `[1] BIT STRING` (no unused bits) up to the 32 public key bytes.
const PKCS8_V2_PUBLIC_KEY_PREFIX: [u8; 3] = [0x81, 0x21, 0x00];

/// Strict RFC 8032 verification (`verify_strict`: rejects small-order keys and `R` values).
pub fn verify(pk: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
    let key = VerifyingKey::from_bytes(&pk.0).map_err(|_| CryptoError::InvalidPublicKey)?;
    key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
        .map_err(|_| CryptoError::BadSignature)
}

/// Verifies many signatures in parallel; `result[i]` is whether item `i` is valid.
///
/// Items are split into chunks of [`VERIFY_CHUNK_SIZE`] to 512 items, sized so every core gets work; each chunk is checked with one
/// Ed25519 batch verification (about twice as fast as one-by-one), on rayon's pool. When a
/// chunk's batch fails, its items are re-checked one by one with [`verify`] so only the bad
/// ones are reported. Honest signatures are accepted by both methods; see `docs/FORMAT.md`
/// for the (adversarial-only) difference between batch and strict verification.
pub fn verify_many<M: AsRef<[u8]> + Sync>(items: &[(PublicKey, M, Signature)]) -> Vec<bool> {
    // Bigger batches amortise better (dalek switches to Pippenger past ~190 terms); keep at
    // least two chunks per thread so every core has work.
    let per_thread = items
        .len()
        .div_ceil(rayon::current_num_threads().max(1) * 2);
    let chunk_size = per_thread.clamp(VERIFY_CHUNK_SIZE, MAX_VERIFY_CHUNK_SIZE);
    items
        .par_chunks(chunk_size)
        .map(verify_chunk)
        .collect::<Vec<Vec<bool>>>()
        .concat()
}

/// Verifies many signatures strictly (exactly as [`verify`]), in parallel; `result[i]` is
/// whether item `i` is valid. Used where a verdict is recorded for others to re-check
/// (submissions), because Ed25519 batch verification may accept a crafted signature that
/// strict verification rejects, and every node must reach the same verdict.
pub fn verify_each<M: AsRef<[u8]> + Sync>(items: &[(PublicKey, M, Signature)]) -> Vec<bool> {
    // Decompress each distinct key once: a consortium has few members.
    let mut keys: std::collections::HashMap<PublicKey, Option<VerifyingKey>> =
        std::collections::HashMap::new();
    for (pk, _, _) in items {
        keys.entry(*pk)
            .or_insert_with(|| VerifyingKey::from_bytes(&pk.0).ok());
    }
    items
        .par_iter()
        .map(|(pk, msg, sig)| match keys.get(pk).copied().flatten() {
            Some(key) => key
                .verify_strict(msg.as_ref(), &ed25519_dalek::Signature::from_bytes(&sig.0))
                .is_ok(),
            None => false,
        })
        .collect()
}

/// The largest batch [`verify_many`] hands to one batch verification.
const MAX_VERIFY_CHUNK_SIZE: usize = 512;

fn verify_chunk<M: AsRef<[u8]>>(chunk: &[(PublicKey, M, Signature)]) -> Vec<bool> {
    // A consortium has few members, so a chunk repeats few keys: decompress (and check for
    // weakness) each distinct key once. Keys that cannot pass strict verification are
    // decided here and kept out of the batch.
    let mut decoded: Vec<(PublicKey, Option<VerifyingKey>)> = Vec::new();
    let keys: Vec<Option<VerifyingKey>> = chunk
        .iter()
        .map(|(pk, _, _)| {
            if let Some((_, vk)) = decoded.iter().find(|(k, _)| k == pk) {
                return *vk;
            }
            let vk = VerifyingKey::from_bytes(&pk.0)
                .ok()
                .filter(|vk| !vk.is_weak());
            decoded.push((*pk, vk));
            vk
        })
        .collect();
    let mut messages = Vec::with_capacity(chunk.len());
    let mut signatures = Vec::with_capacity(chunk.len());
    let mut batch_keys = Vec::with_capacity(chunk.len());
    for ((_, msg, sig), key) in chunk.iter().zip(&keys) {
        if let Some(key) = key {
            messages.push(msg.as_ref());
            signatures.push(ed25519_dalek::Signature::from_bytes(&sig.0));
            batch_keys.push(*key);
        }
    }
    let batch_ok = !batch_keys.is_empty()
        && ed25519_dalek::verify_batch(&messages, &signatures, &batch_keys).is_ok();
    chunk
        .iter()
        .zip(&keys)
        .map(|((_, msg, sig), key)| match key {
            None => false,
            Some(_) if batch_ok => true,
            Some(key) => key
                .verify_strict(msg.as_ref(), &ed25519_dalek::Signature::from_bytes(&sig.0))
                .is_ok(),
        })
        .collect()
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    /// p = 2^255 - 19, little-endian.
    fn p_plus(y: u8) -> [u8; 32] {
        let mut b = [0xffu8; 32];
        b[31] = 0x7f;
        b[0] = 0xed + y;
        b
    }

    #[test]
    fn only_y_at_or_above_p_is_non_canonical() {
        for y in 0..19 {
            assert!(!is_canonical_point_encoding(&p_plus(y)), "p + {y}");
            let mut signed = p_plus(y);
            signed[31] |= 0x80;
            assert!(!is_canonical_point_encoding(&signed), "-(p + {y})");
        }
        let mut below = p_plus(0);
        below[0] = 0xec;
        assert!(is_canonical_point_encoding(&below));
        assert!(is_canonical_point_encoding(&[0u8; 32]));
        let key = SecretKey::generate().public_key();
        assert!(key.is_canonical());
    }

    #[test]
    fn a_non_canonical_key_that_dalek_accepts_is_found_and_refused() {
        // Some y < 19 is a point of large order; its encoding y + p decodes in dalek.
        let accepted = (0..19)
            .map(|y| PublicKey(p_plus(y)))
            .find(|k| k.is_valid())
            .expect("a non-canonical encoding that is_valid accepts");
        assert!(!accepted.is_canonical());
    }

    /// `S + L` is the same scalar mod `L` and satisfies the verification equation, so only
    /// the canonical-`S` check (FORMAT.md §2.1, condition 3) refuses it, in every version.
    #[test]
    fn a_signature_with_s_plus_the_group_order_is_refused() {
        // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let key = SecretKey::generate();
        // S < L < 2^253, so S + L < 2^254 always fits the 32 bytes.
        let sig = key.sign(b"m");
        assert!(verify(&key.public_key(), b"m", &sig).is_ok());
        let mut bumped = sig;
        let mut carry = 0u16;
        for (b, l) in bumped.0[32..].iter_mut().zip(L) {
            let sum = u16::from(*b) + u16::from(l) + carry;
            *b = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        assert_ne!(bumped, sig);
        assert!(verify(&key.public_key(), b"m", &bumped).is_err());
        assert_eq!(
            verify_many(&[(key.public_key(), b"m".as_slice(), bumped)]),
            vec![false]
        );
    }

    #[test]
    fn signatures_carry_canonical_r_unless_crafted() {
        let key = SecretKey::generate();
        let sig = key.sign(b"m");
        assert!(sig.has_canonical_r());
        let mut crafted = sig;
        crafted.0[..32].copy_from_slice(&p_plus(3));
        assert!(!crafted.has_canonical_r());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let key = SecretKey::from_seed(&[7u8; 32]);
        let sig = key.sign(b"hello");
        verify(&key.public_key(), b"hello", &sig).unwrap();
        assert!(matches!(
            verify(&key.public_key(), b"hellO", &sig),
            Err(CryptoError::BadSignature)
        ));
        let other = SecretKey::generate();
        assert!(verify(&other.public_key(), b"hello", &sig).is_err());
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 §7.1 TEST 1 (empty message).
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SecretKey::from_seed(&seed);
        assert_eq!(
            key.public_key().to_string(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            key.sign(b"").to_string(),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn member_id_derivation_and_raft_id() {
        let key = SecretKey::from_seed(&[1u8; 32]);
        let id = key.member_id();
        let digest = hash_domain(MEMBER_ID_DOMAIN, &[&key.public_key().0]);
        assert_eq!(id.0[..], digest.0[..16]);
        assert_eq!(id.to_string().len(), 32);
        assert_eq!(id.raft_node_id().to_be_bytes()[..], id.0[..8]);
        assert_eq!(id.to_string().parse::<MemberId>().unwrap(), id);
        let json = serde_json::to_string(&key.public_key()).unwrap();
        assert_eq!(
            serde_json::from_str::<PublicKey>(&json).unwrap(),
            key.public_key()
        );
    }

    #[test]
    fn debug_redacts_secret() {
        let key = SecretKey::from_seed(&[9u8; 32]);
        let text = format!("{key:?}");
        assert_eq!(text, "SecretKey(<redacted>)");
        assert!(!text.contains(&hex::encode([9u8; 32])));
    }

    #[test]
    fn pkcs8_has_rfc8410_layout() {
        let key = SecretKey::from_seed(&[3u8; 32]);
        let der = key.to_pkcs8_der();
        use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
        let reference = SigningKey::from_bytes(&[3u8; 32]).to_pkcs8_der().unwrap();
        assert_eq!(hex::encode(&*der), hex::encode(reference.as_bytes()));
        let parsed = SigningKey::from_pkcs8_der(&der).unwrap();
        assert_eq!(parsed.verifying_key().to_bytes(), key.public_key().0);
    }

    #[test]
    fn key_file_text_round_trips_and_refuses_garbage() {
        let key = SecretKey::generate();
        let text = key.to_key_file_text();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        let back = SecretKey::from_key_file_text(text.as_bytes()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        for bad in [&b"not a key\n"[..], b"", &[0xff, 0xfe][..], &[b'a'; 63][..]] {
            let err = SecretKey::from_key_file_text(bad).unwrap_err();
            assert!(matches!(err, CryptoError::KeyFile(_)), "{err}");
        }
    }

    #[test]
    fn verify_many_flags_exactly_the_bad_items() {
        let keys: Vec<SecretKey> = (0..5u8).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let mut items: Vec<(PublicKey, Vec<u8>, Signature)> = (0..200u32)
            .map(|i| {
                let key = &keys[i as usize % keys.len()];
                let msg = i.to_be_bytes().to_vec();
                (key.public_key(), msg.clone(), key.sign(&msg))
            })
            .collect();
        assert!(verify_many(&items).iter().all(|ok| *ok));
        items[3].1.push(0); // message changed
        items[70].2 .0[5] ^= 1; // signature corrupted
        items[150].0 = keys[0].public_key(); // wrong key (150 % 5 == 0 -> use key 1)
        items[150].0 = keys[1].public_key();
        items[199].0 = PublicKey([0u8; 32]); // small-order / invalid key
        let result = verify_many(&items);
        for (i, ok) in result.iter().enumerate() {
            assert_eq!(*ok, ![3, 70, 150, 199].contains(&i), "item {i}");
        }
        assert!(verify_many::<Vec<u8>>(&[]).is_empty());
    }
}

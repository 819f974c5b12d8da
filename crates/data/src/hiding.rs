//! Hiding table commitments (`docs/FORMAT.md` §14.1, commitment scheme `salted-columns`):
//! each value is committed to on its own, under a salt only its owner can derive, so a
//! recipient granted some columns can check them against the ledger's root while the
//! other columns stay hidden behind hashes it cannot test guesses against.
//!
//! Leaf `i` of the Merkle tree is `u32 column count || cell(i, 0) || … || cell(i, n-1)` with
//!
//! ```text
//! cell(i, j) = SHA-256(0x02 || salt(i, j) (16 bytes) || canonical encoding of value (i, j))
//! ```
//!
//! The prefix byte keeps a cell hash from ever equalling a Merkle leaf (0x00) or node (0x01).
//!
//! **Salts** are a pseudo-random function of a member secret (`commitment.key` in the
//! member directory), the dataset's name and version, the row number and the column
//! position: `salt(i, j) = AES-128(K, u64 i || u32 j || u32 0)` with
//! `K = BLAKE3-keyed(member secret, "consort/row-salt/v1" || 0x00 || u32 name length ||
//! name || u32 version)[..16]`. Nothing about them is stored: the owner derives them again
//! when it opens values. Only the owner ever derives salts, so this derivation is the
//! owner's business and not part of what a verifier checks; a verifier sees salts only as
//! the 16 bytes an opening reveals. One salt per cell (not per row) matters: revealing a
//! granted column's salt must not let anyone brute-force the row's other columns.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use consort_crypto::merkle::leaf_hash;
use consort_crypto::Hash;
use sha2::{Digest, Sha256};

use crate::canonical::encode_value;
use crate::value::Value;

/// First byte of a cell hash's input.
pub const CELL_PREFIX: u8 = 0x02;

/// Domain of the per-dataset salt key.
pub const SALT_KEY_DOMAIN: &str = "consort/row-salt/v1";

/// One cell's salt.
pub type Salt = [u8; 16];

/// How an ingest commits to its rows (the ledger's `CommitmentScheme`).
#[derive(Clone, Debug, Default)]
pub enum RowCommitment {
    /// Leaf = the whole row's canonical encoding: rule versions 1 and 2.
    #[default]
    RowHash,
    /// Leaf = salted cell hashes ([`RowSalter::leaf`]).
    SaltedColumns(std::sync::Arc<RowSalter>),
}

/// Derives the salts of one dataset version. Holds key material: never printed, wiped on
/// drop (the `aes` crate's `zeroize` feature).
pub struct RowSalter {
    cipher: Aes128,
}

impl std::fmt::Debug for RowSalter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowSalter(<secret>)")
    }
}

impl RowSalter {
    /// The salter of version `version` of dataset `name`, from the member secret.
    pub fn new(member_secret: &[u8; 32], name: &str, version: u32) -> Self {
        let mut h = blake3::Hasher::new_keyed(member_secret);
        h.update(SALT_KEY_DOMAIN.as_bytes());
        h.update(&[0]);
        h.update(&(name.len() as u32).to_be_bytes());
        h.update(name.as_bytes());
        h.update(&version.to_be_bytes());
        let mut derived = h.finalize_xof();
        let mut key = zeroize::Zeroizing::new([0u8; 16]);
        derived.fill(key.as_mut_slice());
        Self {
            cipher: Aes128::new(key.as_ref().into()),
        }
    }

    /// The salts of row `row`'s first `columns` cells, into `out` (replacing its content).
    pub fn salts_into(&self, row: u64, columns: usize, out: &mut Vec<Salt>) {
        let mut blocks = Vec::with_capacity(columns);
        self.encrypt_into(row, columns, &mut blocks);
        out.clear();
        out.extend(blocks.iter().map(salt_of));
    }

    /// The salt blocks of row `row`: many blocks in one call, which AES-NI pipelines.
    fn encrypt_into(&self, row: u64, columns: usize, blocks: &mut Vec<aes::Block>) {
        blocks.clear();
        blocks.extend((0..columns).map(|j| {
            let mut block = aes::Block::default();
            block[..8].copy_from_slice(&row.to_be_bytes());
            block[8..12].copy_from_slice(&(j as u32).to_be_bytes());
            block
        }));
        self.cipher.encrypt_blocks(blocks);
    }

    /// The salt of one cell.
    pub fn salt(&self, row: u64, column: usize) -> Salt {
        let mut out = Vec::with_capacity(column + 1);
        self.salts_into(row, column + 1, &mut out);
        out[column]
    }

    /// Leaf hash of row `row` (see the module documentation), using `scratch`.
    pub fn leaf(&self, row: u64, values: &[Value], scratch: &mut LeafScratch) -> Hash {
        self.encrypt_into(row, values.len(), &mut scratch.blocks);
        scratch.cells.clear();
        for (value, block) in values.iter().zip(&scratch.blocks) {
            let cell = cell_hash(&salt_of(block), value, &mut scratch.encoding);
            scratch.cells.push(cell);
        }
        salted_leaf_into(&scratch.cells, &mut scratch.encoding)
    }
}

fn salt_of(block: &aes::Block) -> Salt {
    let mut salt = [0u8; 16];
    salt.copy_from_slice(block);
    salt
}

/// Reusable buffers for [`RowSalter::leaf`] and [`leaf_from_opening`].
#[derive(Default)]
pub struct LeafScratch {
    blocks: Vec<aes::Block>,
    cells: Vec<Hash>,
    encoding: Vec<u8>,
}

/// `SHA-256(0x02 || salt || canonical encoding of value)`; `scratch` is reused.
pub fn cell_hash(salt: &Salt, value: &Value, scratch: &mut Vec<u8>) -> Hash {
    scratch.clear();
    scratch.push(CELL_PREFIX);
    scratch.extend_from_slice(salt);
    encode_value(value, scratch);
    sha256(scratch)
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const SHA256_INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
    0x5be0cd19,
];

/// SHA-256 of `message`. Most cells fit one 64-byte block with their padding, and for
/// those the block is built here and compressed once: a row's cells are most of an
/// ingest's hashing, and the general `Digest` path's buffering costs about as much as
/// the compression itself. Longer messages take that general path.
fn sha256(message: &[u8]) -> Hash {
    // One block holds the message, the 0x80 marker and the 8-byte bit length.
    if message.len() > 55 {
        return Hash(Sha256::digest(message).into());
    }
    let mut block = [0u8; 64];
    block[..message.len()].copy_from_slice(message);
    block[message.len()] = 0x80;
    block[56..].copy_from_slice(&(message.len() as u64 * 8).to_be_bytes());
    let mut state = SHA256_INITIAL;
    sha2::compress256(&mut state, &[block.into()]);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    Hash(out)
}

/// The Merkle leaf hash of a row given its cell hashes in schema order.
pub fn salted_leaf(cells: &[Hash]) -> Hash {
    salted_leaf_into(cells, &mut Vec::with_capacity(4 + 32 * cells.len()))
}

fn salted_leaf_into(cells: &[Hash], data: &mut Vec<u8>) -> Hash {
    data.clear();
    data.extend_from_slice(&(cells.len() as u32).to_be_bytes());
    for c in cells {
        data.extend_from_slice(&c.0);
    }
    leaf_hash(data)
}

/// What the owner reveals of one row besides the opened values: the salts of the opened
/// cells (in the order the values are given) and the cell hashes of every other column
/// (in schema order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowOpening {
    pub salts: Vec<Salt>,
    pub hidden: Vec<Hash>,
}

/// Opens row `row`: the salts of `opened` columns (schema positions, in the order asked)
/// and the cell hashes of the rest.
pub fn open_row(
    salter: &RowSalter,
    row: u64,
    values: &[Value],
    opened: &[usize],
    scratch: &mut LeafScratch,
) -> RowOpening {
    salter.encrypt_into(row, values.len(), &mut scratch.blocks);
    let mut hidden = Vec::with_capacity(values.len().saturating_sub(opened.len()));
    for (j, (value, block)) in values.iter().zip(&scratch.blocks).enumerate() {
        if !opened.contains(&j) {
            hidden.push(cell_hash(&salt_of(block), value, &mut scratch.encoding));
        }
    }
    RowOpening {
        salts: opened
            .iter()
            .filter_map(|&j| scratch.blocks.get(j).map(salt_of))
            .collect(),
        hidden,
    }
}

/// The leaf hash a recipient recomputes from `values` of the `opened` columns (schema
/// positions, distinct, in the order of `values`) of a `columns`-wide row and the owner's
/// opening. Errors name what is malformed; a wrong value or salt gives a different leaf,
/// which the caller finds when the root does not match.
pub fn leaf_from_opening(
    columns: usize,
    opened: &[usize],
    values: &[Value],
    opening: &RowOpening,
    scratch: &mut LeafScratch,
) -> Result<Hash, String> {
    if values.len() != opened.len() || opening.salts.len() != opened.len() {
        return Err(format!(
            "the opening has {} salts for {} values of {} columns",
            opening.salts.len(),
            values.len(),
            opened.len()
        ));
    }
    if opening.hidden.len() + opened.len() != columns {
        return Err(format!(
            "the opening hides {} of {columns} columns but {} are opened",
            opening.hidden.len(),
            opened.len()
        ));
    }
    scratch.cells.clear();
    scratch.cells.resize(columns, Hash::ZERO);
    let mut filled = vec![false; columns];
    for ((&j, value), salt) in opened.iter().zip(values).zip(&opening.salts) {
        match filled.get_mut(j) {
            Some(f) if !*f => *f = true,
            _ => return Err(format!("column position {j} is out of range or repeated")),
        }
        scratch.cells[j] = cell_hash(salt, value, &mut scratch.encoding);
    }
    let mut hidden = opening.hidden.iter();
    for (j, f) in filled.iter().enumerate() {
        if !*f {
            // The counts match, so there is one hidden hash per unopened column.
            scratch.cells[j] = *hidden.next().ok_or("too few hidden cell hashes")?;
        }
    }
    Ok(salted_leaf_into(&scratch.cells, &mut scratch.encoding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Commitment;

    fn row(i: i64) -> Vec<Value> {
        vec![
            Value::Text(format!("region{}", i % 3).into()),
            Value::Integer(20 + i),
            Value::Text("flu".into()),
        ]
    }

    #[test]
    fn salts_differ_per_cell_dataset_and_version_and_are_reproducible() {
        let key = [7u8; 32];
        let a = RowSalter::new(&key, "visits", 1);
        let mut s = Vec::new();
        a.salts_into(5, 3, &mut s);
        assert_eq!(s.len(), 3);
        assert_ne!(s[0], s[1]);
        assert_eq!(s[2], a.salt(5, 2));
        assert_eq!(s[0], RowSalter::new(&key, "visits", 1).salt(5, 0));
        assert_ne!(s[0], a.salt(6, 0));
        assert_ne!(s[0], RowSalter::new(&key, "visits", 2).salt(5, 0));
        assert_ne!(s[0], RowSalter::new(&key, "visit", 1).salt(5, 0));
        assert_ne!(s[0], RowSalter::new(&[8u8; 32], "visits", 1).salt(5, 0));
        assert_eq!(format!("{a:?}"), "RowSalter(<secret>)");
    }

    #[test]
    fn an_opening_recomputes_the_leaf_and_a_tampered_value_does_not() {
        let salter = RowSalter::new(&[1u8; 32], "visits", 1);
        let mut scratch = LeafScratch::default();
        for opened in [vec![0], vec![2, 0], vec![0, 1, 2], vec![1, 2, 0], vec![]] {
            for i in 0..5u64 {
                let values = row(i as i64);
                let leaf = salter.leaf(i, &values, &mut scratch);
                let opening = open_row(&salter, i, &values, &opened, &mut scratch);
                let shown: Vec<Value> = opened.iter().map(|&j| values[j].clone()).collect();
                let again = leaf_from_opening(3, &opened, &shown, &opening, &mut scratch);
                assert_eq!(again, Ok(leaf), "{opened:?}");
                if let Some(first) = shown.first() {
                    let mut tampered = shown.clone();
                    tampered[0] = match first {
                        Value::Integer(v) => Value::Integer(v + 1),
                        _ => Value::Text("other".into()),
                    };
                    let wrong = leaf_from_opening(3, &opened, &tampered, &opening, &mut scratch);
                    assert_ne!(wrong, Ok(leaf));
                }
            }
        }
        // Malformed openings are errors, not panics.
        let values = row(1);
        let opening = open_row(&salter, 1, &values, &[0], &mut scratch);
        let shown = vec![values[0].clone()];
        assert!(leaf_from_opening(4, &[0], &shown, &opening, &mut scratch).is_err());
        assert!(leaf_from_opening(3, &[7], &shown, &opening, &mut scratch).is_err());
        assert!(leaf_from_opening(
            3,
            &[0, 0],
            &[values[0].clone(), values[0].clone()],
            &RowOpening {
                salts: vec![[0; 16]; 2],
                hidden: vec![Hash::ZERO],
            },
            &mut scratch
        )
        .is_err());
        assert!(leaf_from_opening(3, &[0], &[], &opening, &mut scratch).is_err());
    }

    #[test]
    fn the_one_block_path_is_sha256() {
        for len in 0..200 {
            let message: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            assert_eq!(
                sha256(&message),
                Hash(Sha256::digest(&message).into()),
                "{len}"
            );
        }
    }

    #[test]
    fn cells_and_leaves_follow_the_format() {
        let salt = [9u8; 16];
        let mut input = vec![CELL_PREFIX];
        input.extend_from_slice(&salt);
        input.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 42]);
        assert_eq!(
            cell_hash(&salt, &Value::Integer(42), &mut Vec::new()),
            Hash(Sha256::digest(&input).into())
        );
        let cells = [Hash([1; 32]), Hash([2; 32])];
        let mut data = vec![0, 0, 0, 2];
        data.extend_from_slice(&[1; 32]);
        data.extend_from_slice(&[2; 32]);
        assert_eq!(salted_leaf(&cells), leaf_hash(&data));
        // A commitment over salted leaves is an ordinary RFC 6962 root.
        let salter = RowSalter::new(&[3u8; 32], "t", 1);
        let mut scratch = LeafScratch::default();
        let leaves: Vec<Hash> = (0..7)
            .map(|i| salter.leaf(i, &row(i as i64), &mut scratch))
            .collect();
        let mut c = Commitment::new();
        for l in &leaves {
            c.push_leaf_hash(*l);
        }
        assert_eq!(
            c.root(),
            consort_crypto::merkle::root_from_leaf_hashes(&leaves)
        );
    }
}

//! Hiding table commitments (`docs/FORMAT.md` §14.1, commitment scheme `salted-columns`):
//! values are committed to column by column under salts only their owner can derive, so a
//! recipient granted some columns can check them against the ledger's root while the
//! other columns stay hidden behind hashes it cannot test guesses against.
//!
//! Rows are taken in groups of [`GROUP_ROWS`] (the last group of a table may be shorter).
//! Leaf `g` of the Merkle tree covers group `g` and is `u32 column count || cell(g, 0) || … ||
//! cell(g, n-1)`, where
//!
//! ```text
//! cell(g, j) = SHA-256(0x02 || salt(g, j) (16 bytes) || u32 rows in the group
//!                      || canonical encoding of each value of column j in the group, in row order)
//! ```
//!
//! The prefix byte keeps a cell hash from ever equalling a Merkle leaf (0x00) or node (0x01).
//! A cell per group and column, rather than per value, is what keeps hiding cheap: a row
//! of seven columns costs about one and a half SHA-256 blocks instead of eleven (measured
//! in docs/BENCHMARKS.md). A fetch always opens whole columns, so nothing is opened that
//! was not granted; what a group cannot do is open one row of a column alone.
//!
//! **Salts** are a pseudo-random function of a member secret (`commitment.key` in the
//! member directory), the dataset's name and version, the group number and the column
//! position: `salt(g, j) = AES-128(K, u64 g || u32 j || u32 0)` with
//! `K = BLAKE3-keyed(member secret, "consort/row-salt/v1" || 0x00 || u32 name length ||
//! name || u32 version)[..16]`. Nothing about them is stored: the owner derives them again
//! when it opens values. Only the owner ever derives salts, so this derivation is the
//! owner's business and not part of what a verifier checks; a verifier sees salts only as
//! the 16 bytes an opening reveals. One salt per cell (not per group) matters: revealing a
//! granted column's salt must not let anyone brute-force the group's other columns.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use consort_crypto::merkle::leaf_hash;
use consort_crypto::Hash;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::canonical::{encode_value, Commitment};
use crate::value::{Row, Value};

/// Rows per leaf.
pub const GROUP_ROWS: usize = 16;

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
    /// Leaf = salted column cells of a group of rows ([`RowSalter::group_leaf`]).
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

    /// The salts of group `group`'s first `columns` cells, in one call (AES-NI pipelines
    /// the blocks).
    fn encrypt_into(&self, group: u64, columns: usize, blocks: &mut Vec<aes::Block>) {
        blocks.clear();
        blocks.extend((0..columns).map(|j| {
            let mut block = aes::Block::default();
            block[..8].copy_from_slice(&group.to_be_bytes());
            block[8..12].copy_from_slice(&(j as u32).to_be_bytes());
            block
        }));
        self.cipher.encrypt_blocks(blocks);
    }

    /// The salt of one cell.
    pub fn salt(&self, group: u64, column: usize) -> Salt {
        let mut blocks = Vec::with_capacity(column + 1);
        self.encrypt_into(group, column + 1, &mut blocks);
        salt_of(&blocks[column])
    }

    /// Leaf hash of group `group`, whose rows are `rows` (all of the schema's width).
    pub fn group_leaf(&self, group: u64, rows: &[Row], scratch: &mut LeafScratch) -> Hash {
        let columns = rows.first().map_or(0, Vec::len);
        self.encrypt_into(group, columns, &mut scratch.blocks);
        scratch.cells.clear();
        for (j, block) in scratch.blocks.iter().enumerate() {
            let column = rows.iter().map(|r| r.get(j).unwrap_or(&Value::Null));
            let cell = cell_hash(&salt_of(block), rows.len(), column, &mut scratch.encoding);
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

/// Reusable buffers for [`RowSalter::group_leaf`] and [`leaf_from_opening`].
#[derive(Default)]
pub struct LeafScratch {
    blocks: Vec<aes::Block>,
    cells: Vec<Hash>,
    encoding: Vec<u8>,
}

/// `SHA-256(0x02 || salt || u32 rows || encoding of each value)`; `scratch` is reused.
pub fn cell_hash<'a>(
    salt: &Salt,
    rows: usize,
    values: impl IntoIterator<Item = &'a Value>,
    scratch: &mut Vec<u8>,
) -> Hash {
    scratch.clear();
    scratch.push(CELL_PREFIX);
    scratch.extend_from_slice(salt);
    scratch.extend_from_slice(&(rows as u32).to_be_bytes());
    for value in values {
        encode_value(value, scratch);
    }
    sha256(scratch)
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const SHA256_INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 of `message`. A short message fits one 64-byte block with its padding, and
/// for those the block is built here and compressed once, skipping the general `Digest`
/// path's buffering, which costs about as much as the compression itself. Longer
/// messages take that general path.
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

/// The Merkle leaf hash of a group given its cells in schema order.
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

/// The salted-columns commitment over rows pushed in row-number order, from row 0.
pub struct SaltedCommitment<'a> {
    salter: &'a RowSalter,
    commitment: Commitment,
    /// Rows of the group not yet complete (copies; the caller keeps its rows).
    tail: Vec<Row>,
    leaves: Vec<Hash>,
}

impl<'a> SaltedCommitment<'a> {
    pub fn new(salter: &'a RowSalter) -> Self {
        Self {
            salter,
            commitment: Commitment::new(),
            tail: Vec::with_capacity(GROUP_ROWS),
            leaves: Vec::new(),
        }
    }

    /// Adds the next rows; complete groups are hashed in parallel.
    pub fn push(&mut self, mut rows: &[Row]) {
        if !self.tail.is_empty() {
            let take = (GROUP_ROWS - self.tail.len()).min(rows.len());
            self.tail.extend_from_slice(&rows[..take]);
            rows = &rows[take..];
            if self.tail.len() == GROUP_ROWS {
                let group = self.commitment.len();
                let leaf = self
                    .salter
                    .group_leaf(group, &self.tail, &mut LeafScratch::default());
                self.commitment.push_leaf_hash(leaf);
                self.tail.clear();
            }
        }
        let whole = rows.len() / GROUP_ROWS * GROUP_ROWS;
        let first = self.commitment.len();
        let salter = self.salter;
        rows[..whole]
            .par_chunks(GROUP_ROWS)
            .enumerate()
            .map_init(LeafScratch::default, |scratch, (k, group)| {
                salter.group_leaf(first + k as u64, group, scratch)
            })
            .collect_into_vec(&mut self.leaves);
        for leaf in &self.leaves {
            self.commitment.push_leaf_hash(*leaf);
        }
        self.tail.extend_from_slice(&rows[whole..]);
    }

    /// The root over every row pushed (the last group may be short).
    pub fn finish(mut self) -> Commitment {
        if !self.tail.is_empty() {
            let group = self.commitment.len();
            let leaf = self
                .salter
                .group_leaf(group, &self.tail, &mut LeafScratch::default());
            self.commitment.push_leaf_hash(leaf);
        }
        self.commitment
    }
}

/// The salted-columns root of `rows` (all of them, in row-number order).
pub fn salted_root(salter: &RowSalter, rows: &[Row]) -> Hash {
    let mut c = SaltedCommitment::new(salter);
    c.push(rows);
    c.finish().root()
}

/// What the owner reveals of one group besides the opened values: the salts of the opened
/// columns (in the order asked) and the cells of every other column (in schema order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupOpening {
    pub salts: Vec<Salt>,
    pub hidden: Vec<Hash>,
}

/// Opens group `group` (rows `rows`, full width) on the `opened` columns (schema positions,
/// in the order asked).
pub fn open_group(
    salter: &RowSalter,
    group: u64,
    rows: &[Row],
    opened: &[usize],
    scratch: &mut LeafScratch,
) -> GroupOpening {
    let columns = rows.first().map_or(0, Vec::len);
    salter.encrypt_into(group, columns, &mut scratch.blocks);
    let mut hidden = Vec::with_capacity(columns.saturating_sub(opened.len()));
    for (j, block) in scratch.blocks.iter().enumerate() {
        if !opened.contains(&j) {
            let column = rows.iter().map(|r| r.get(j).unwrap_or(&Value::Null));
            hidden.push(cell_hash(
                &salt_of(block),
                rows.len(),
                column,
                &mut scratch.encoding,
            ));
        }
    }
    GroupOpening {
        salts: opened
            .iter()
            .filter_map(|&j| scratch.blocks.get(j).map(salt_of))
            .collect(),
        hidden,
    }
}

/// The leaf a recipient recomputes for one group of a `columns`-wide table: `values` are
/// the group's rows projected on the `opened` columns (schema positions, distinct, in the
/// order of each row). Errors name what is malformed; a wrong value or salt gives a
/// different leaf, which the caller finds when the root does not match.
pub fn leaf_from_opening(
    columns: usize,
    opened: &[usize],
    values: &[Row],
    opening: &GroupOpening,
    scratch: &mut LeafScratch,
) -> Result<Hash, String> {
    if values.is_empty() || values.len() > GROUP_ROWS {
        return Err(format!(
            "a group has 1 to {GROUP_ROWS} rows, not {}",
            values.len()
        ));
    }
    if values.iter().any(|r| r.len() != opened.len()) || opening.salts.len() != opened.len() {
        return Err(format!(
            "the opening has {} salts for {} opened columns",
            opening.salts.len(),
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
    for (k, (&j, salt)) in opened.iter().zip(&opening.salts).enumerate() {
        match filled.get_mut(j) {
            Some(f) if !*f => *f = true,
            _ => return Err(format!("column position {j} is out of range or repeated")),
        }
        let column = values.iter().map(|r| &r[k]);
        scratch.cells[j] = cell_hash(salt, values.len(), column, &mut scratch.encoding);
    }
    let mut hidden = opening.hidden.iter();
    for (j, f) in filled.iter().enumerate() {
        if !*f {
            // The counts match, so there is one hidden cell per unopened column.
            scratch.cells[j] = *hidden.next().ok_or("too few hidden cells")?;
        }
    }
    Ok(salted_leaf_into(&scratch.cells, &mut scratch.encoding))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> Vec<Value> {
        vec![
            Value::Text(format!("region{}", i % 3).into()),
            Value::Integer(20 + i),
            Value::Text("flu".into()),
        ]
    }

    fn rows(n: i64) -> Vec<Row> {
        (0..n).map(row).collect()
    }

    #[test]
    fn salts_differ_per_cell_dataset_and_version_and_are_reproducible() {
        let key = [7u8; 32];
        let a = RowSalter::new(&key, "visits", 1);
        let s: Vec<Salt> = (0..3).map(|j| a.salt(5, j)).collect();
        assert_ne!(s[0], s[1]);
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
        for size in [1, 5, GROUP_ROWS] {
            let group = rows(size as i64);
            let leaf = salter.group_leaf(3, &group, &mut scratch);
            for opened in [vec![0], vec![2, 0], vec![0, 1, 2], vec![1, 2, 0], vec![]] {
                let opening = open_group(&salter, 3, &group, &opened, &mut scratch);
                let shown: Vec<Row> = group
                    .iter()
                    .map(|r| opened.iter().map(|&j| r[j].clone()).collect())
                    .collect();
                let again = leaf_from_opening(3, &opened, &shown, &opening, &mut scratch);
                assert_eq!(again, Ok(leaf), "{opened:?}");
                if !opened.is_empty() {
                    let mut tampered = shown.clone();
                    let last = tampered.len() - 1;
                    tampered[last][0] = match &tampered[last][0] {
                        Value::Integer(v) => Value::Integer(v + 1),
                        _ => Value::Text("other".into()),
                    };
                    let wrong = leaf_from_opening(3, &opened, &tampered, &opening, &mut scratch);
                    assert_ne!(wrong, Ok(leaf));
                    // A row left out of the group changes the leaf too.
                    if shown.len() > 1 {
                        let short = &shown[..shown.len() - 1];
                        let wrong = leaf_from_opening(3, &opened, short, &opening, &mut scratch);
                        assert_ne!(wrong, Ok(leaf));
                    }
                }
            }
        }
        // Malformed openings are errors, not panics.
        let group = rows(2);
        let opening = open_group(&salter, 0, &group, &[0], &mut scratch);
        let shown: Vec<Row> = group.iter().map(|r| vec![r[0].clone()]).collect();
        assert!(leaf_from_opening(4, &[0], &shown, &opening, &mut scratch).is_err());
        assert!(leaf_from_opening(3, &[7], &shown, &opening, &mut scratch).is_err());
        assert!(leaf_from_opening(3, &[0], &[], &opening, &mut scratch).is_err());
        assert!(leaf_from_opening(3, &[0], &[vec![]], &opening, &mut scratch).is_err());
        let twice = GroupOpening {
            salts: vec![[0; 16]; 2],
            hidden: vec![Hash::ZERO],
        };
        let doubled: Vec<Row> = group.iter().map(|r| vec![r[0].clone(); 2]).collect();
        assert!(leaf_from_opening(3, &[0, 0], &doubled, &twice, &mut scratch).is_err());
        let too_many = rows(GROUP_ROWS as i64 + 1);
        let shown: Vec<Row> = too_many.iter().map(|r| vec![r[0].clone()]).collect();
        assert!(leaf_from_opening(3, &[0], &shown, &opening, &mut scratch).is_err());
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
    fn the_commitment_groups_rows_however_they_are_pushed() {
        let salter = RowSalter::new(&[3u8; 32], "t", 1);
        let all = rows(75);
        let mut scratch = LeafScratch::default();
        let leaves: Vec<Hash> = all
            .chunks(GROUP_ROWS)
            .enumerate()
            .map(|(g, group)| salter.group_leaf(g as u64, group, &mut scratch))
            .collect();
        let expected = consort_crypto::merkle::root_from_leaf_hashes(&leaves);
        assert_eq!(salted_root(&salter, &all), expected);
        for cuts in [vec![1, 2, 3], vec![15, 16, 17], vec![40], vec![0, 74]] {
            let mut c = SaltedCommitment::new(&salter);
            let mut start = 0;
            for cut in cuts.into_iter().chain([all.len()]) {
                c.push(&all[start..cut]);
                start = cut;
            }
            assert_eq!(c.finish().root(), expected);
        }
        assert_eq!(
            salted_root(&salter, &[]),
            consort_crypto::merkle::empty_root()
        );
    }
}

//! RFC 6962 Merkle trees over SHA-256, with audit paths (RFC 6962 §2.1.1) and their
//! verification (RFC 9162 §2.1.3.2).
//!
//! `MTH({}) = SHA-256("")`, `leaf = SHA-256(0x00 || data)`,
//! `node = SHA-256(0x01 || left || right)`, splitting `n` leaves at the largest power of two
//! strictly less than `n`. Hashes are returned as [`Hash`] (32 bytes) even though they are
//! SHA-256, not BLAKE3.

use sha2::{Digest, Sha256};

use crate::hash::Hash;

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// `SHA-256("")`, the root of the empty tree.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The Merkle tree hash of `leaves` (each leaf is raw data, hashed with [`leaf_hash`]).
pub fn root<T: AsRef<[u8]>>(leaves: &[T]) -> Hash {
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    root_from_leaf_hashes(&hashes)
}

/// The Merkle tree hash over already-computed leaf hashes.
pub fn root_from_leaf_hashes(leaf_hashes: &[Hash]) -> Hash {
    if leaf_hashes.is_empty() {
        return empty_root();
    }
    // Bottom-up pairing that carries an odd last node up unchanged builds exactly the
    // RFC 6962 tree (split at the largest power of two < n), without recursion.
    let mut level = leaf_hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                [single] => *single,
                _ => unreachable_pair(),
            })
            .collect();
    }
    level[0]
}

// `chunks(2)` only yields slices of length 1 or 2; this keeps the match exhaustive without
// a panic path that clippy or readers would have to reason about.
fn unreachable_pair() -> Hash {
    Hash::ZERO
}

/// The audit path for leaf `index` (RFC 6962 §2.1.1 `PATH(m, D[n])`), ordered from the
/// leaf's sibling up to the child of the root. `None` if `index >= leaves.len()`.
pub fn audit_path<T: AsRef<[u8]>>(leaves: &[T], index: usize) -> Option<Vec<Hash>> {
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    audit_path_from_leaf_hashes(&hashes, index)
}

/// [`audit_path`] over already-computed leaf hashes.
pub fn audit_path_from_leaf_hashes(leaf_hashes: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaf_hashes.len() {
        return None;
    }
    let mut path = Vec::new();
    let mut subtree = leaf_hashes;
    let mut m = index;
    // Walk down from the root, collecting the sibling subtree root at each level; the RFC
    // lists the path bottom-up, so reverse at the end.
    while subtree.len() > 1 {
        let k = split_point(subtree.len());
        let (left, right) = subtree.split_at(k);
        if m < k {
            path.push(root_from_leaf_hashes(right));
            subtree = left;
        } else {
            path.push(root_from_leaf_hashes(left));
            subtree = right;
            m -= k;
        }
    }
    path.reverse();
    Some(path)
}

/// Largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// Checks that `leaf_data` is leaf `index` of a tree of `tree_size` leaves with root `root`,
/// using audit path `path` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_data: &[u8],
    index: u64,
    tree_size: u64,
    path: &[Hash],
    root: &Hash,
) -> bool {
    root_from_inclusion(&leaf_hash(leaf_data), index, tree_size, path).as_ref() == Some(root)
}

/// Recomputes the root implied by a leaf hash and its audit path, or `None` if the path has
/// the wrong shape for `(index, tree_size)`.
pub fn root_from_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    path: &[Hash],
) -> Option<Hash> {
    if index >= tree_size {
        return None;
    }
    let mut fnode = index;
    let mut snode = tree_size - 1;
    let mut r = *leaf_hash;
    for p in path {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The leaves and roots used by the certificate-transparency reference implementation's
    /// Merkle tests (RFC 6962 trees of the first 1..=8 leaves).
    const CT_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        assert_eq!(
            root::<&[u8]>(&[]).to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn rfc6962_reference_roots() {
        let leaves: Vec<Vec<u8>> = CT_LEAVES.iter().map(|h| hex::decode(h).unwrap()).collect();
        // docs/FORMAT.md §13 lists every root, so an implementer can check without this code.
        let format = include_str!("../../../docs/FORMAT.md");
        for n in 1..=8 {
            assert_eq!(
                root(&leaves[..n]).to_string(),
                CT_ROOTS[n - 1],
                "tree of {n} leaves"
            );
            assert!(
                format.contains(&format!("n={n}  {}", CT_ROOTS[n - 1])),
                "docs/FORMAT.md §13 lacks the root of {n} leaves"
            );
        }
    }

    /// Recursive transcription of RFC 6962 §2.1 `MTH`, to cross-check the iterative root.
    fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split_point(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn audit_path_rejects_out_of_range_index() {
        assert!(audit_path::<&[u8]>(&[], 0).is_none());
        assert!(audit_path(&[b"a"], 1).is_none());
        assert_eq!(audit_path(&[b"a"], 0), Some(vec![]));
        assert!(verify_inclusion(b"a", 0, 1, &[], &leaf_hash(b"a")));
        assert!(!verify_inclusion(b"a", 1, 1, &[], &leaf_hash(b"a")));
        assert!(!verify_inclusion(b"a", 0, 0, &[], &leaf_hash(b"a")));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_audit_path_verifies_and_tampering_fails(
            leaves in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..70),
            salt in any::<u8>(),
        ) {
            let tree_root = root(&leaves);
            prop_assert_eq!(tree_root, mth(&leaves));
            let n = leaves.len() as u64;
            for (i, leaf) in leaves.iter().enumerate() {
                let path = audit_path(&leaves, i).unwrap();
                let idx = i as u64;
                prop_assert!(verify_inclusion(leaf, idx, n, &path, &tree_root));

                let mut wrong_leaf = leaf.clone();
                wrong_leaf.push(salt);
                prop_assert!(!verify_inclusion(&wrong_leaf, idx, n, &path, &tree_root));

                let wrong_root = node_hash(&tree_root, &tree_root);
                prop_assert!(!verify_inclusion(leaf, idx, n, &path, &wrong_root));

                for other in 0..n {
                    // Another index only verifies if that leaf holds identical data.
                    if other != idx && leaves[other as usize] != *leaf {
                        prop_assert!(!verify_inclusion(leaf, other, n, &path, &tree_root));
                    }
                }
                prop_assert!(!verify_inclusion(leaf, n, n, &path, &tree_root));
                if let Some((_, shorter)) = path.split_last() {
                    prop_assert!(!verify_inclusion(leaf, idx, n, shorter, &tree_root));
                }
                let mut longer = path.clone();
                longer.push(tree_root);
                prop_assert!(!verify_inclusion(leaf, idx, n, &longer, &tree_root));
            }
        }
    }
}

//! Merkle tree hashing of RFC 9162 §2.1: the tree over a stream's entry leaf hashes
//! that checkpoints commit to, its compact form for appending, and inclusion and
//! consistency proofs.
//!
//! Every function here takes the *leaf hashes* (`SHA-256(0x00 || data)`, which is what
//! an entry's `hash` field holds), not the leaf data.

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// MTH of the tree whose leaves have the given hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The largest power of two smaller than `n` (n >= 2): where RFC 9162 splits a tree.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} is larger than the {available} leaves at hand")]
    SizeOutOfRange { size: u64, available: u64 },
    #[error("a consistency proof needs 0 < old size <= new size; got {old} and {new}")]
    BadSizes { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

/// The inclusion proof (audit path) of leaf `index` in the tree of the first `size`
/// leaves (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    let tree = prefix(leaves, size)?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut path = Vec::new();
    inclusion_path(index as usize, tree, &mut path);
    Ok(path)
}

fn inclusion_path(m: usize, d: &[Hash], path: &mut Vec<Hash>) {
    if d.len() <= 1 {
        return;
    }
    let k = split_point(d.len() as u64) as usize;
    if m < k {
        inclusion_path(m, &d[..k], path);
        path.push(root(&d[k..]));
    } else {
        inclusion_path(m - k, &d[k..], path);
        path.push(root(&d[..k]));
    }
}

/// The consistency proof between the trees of the first `old` and the first `new`
/// leaves (RFC 9162 §2.1.4.1); empty when the sizes are equal.
pub fn consistency_proof(leaves: &[Hash], old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
    let tree = prefix(leaves, new)?;
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    let mut path = Vec::new();
    subproof(old as usize, tree, true, &mut path);
    Ok(path)
}

fn subproof(m: usize, d: &[Hash], complete: bool, path: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !complete {
            path.push(root(d));
        }
        return;
    }
    let k = split_point(n as u64) as usize;
    if m <= k {
        subproof(m, &d[..k], complete, path);
        path.push(root(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, path);
        path.push(root(&d[..k]));
    }
}

fn prefix(leaves: &[Hash], size: u64) -> Result<&[Hash], ProofError> {
    let available = leaves.len() as u64;
    if size > available {
        return Err(ProofError::SizeOutOfRange { size, available });
    }
    Ok(&leaves[..size as usize])
}

/// Checks an inclusion proof with the algorithm of RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return Err(ProofError::WrongLength);
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
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks a consistency proof with the algorithm of RFC 9162 §2.1.4.2.
pub fn verify_consistency(
    old: u64,
    new: u64,
    path: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == new {
        if !path.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if path.is_empty() {
        return Err(ProofError::WrongLength);
    }
    // When the old tree is a complete subtree, the proof omits its root.
    let mut hashes: Vec<&Hash> = Vec::with_capacity(path.len() + 1);
    if old.is_power_of_two() {
        hashes.push(old_root);
    }
    hashes.extend(path);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*hashes[0], *hashes[0]);
    for c in &hashes[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The compact range `[0, size)` of a tree: the roots of its perfect subtrees, largest
/// first (one per set bit of `size`). Appending a leaf costs one node hash on average,
/// and the root is always at hand, so the sealer can checkpoint at any entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontierError {
    #[error("a tree of size {size} has {expected} frontier hashes, got {got}")]
    WrongCount {
        size: u64,
        expected: u32,
        got: usize,
    },
    #[error("frontier hash {index} is not 64 lowercase hex digits")]
    BadHash { index: usize },
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        self.nodes.push(leaf);
        // Each trailing one bit of the old size is a perfect subtree the new leaf completes.
        // (`nodes` holds one hash per set bit of `size`, so there are always two to merge.)
        for _ in 0..self.size.trailing_ones() {
            let n = self.nodes.len();
            let merged = node_hash(&self.nodes[n - 2], &self.nodes[n - 1]);
            self.nodes.truncate(n - 2);
            self.nodes.push(merged);
        }
        self.size += 1;
    }

    /// The perfect subtree roots, largest first; when `size` is odd the last one is the
    /// last leaf.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// MTH of the leaves appended so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return EMPTY_ROOT;
        };
        nodes.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// The subtree roots as lowercase hex, largest subtree first; with [`Frontier::size`]
    /// this is everything needed to rebuild it.
    pub fn to_hex(&self) -> Vec<String> {
        self.nodes.iter().map(hex::encode).collect()
    }

    /// Rebuilds a frontier from [`Frontier::to_hex`] output and its size.
    pub fn from_hex<S: AsRef<str>>(size: u64, nodes: &[S]) -> Result<Frontier, FrontierError> {
        let expected = size.count_ones();
        if nodes.len() != expected as usize {
            return Err(FrontierError::WrongCount {
                size,
                expected,
                got: nodes.len(),
            });
        }
        let nodes = nodes
            .iter()
            .enumerate()
            .map(|(index, s)| parse_hex_hash(s.as_ref()).ok_or(FrontierError::BadHash { index }))
            .collect::<Result<Vec<Hash>, _>>()?;
        Ok(Frontier { size, nodes })
    }
}

/// Parses exactly 64 lowercase hex digits, the only spelling the evidence format uses.
pub fn parse_hex_hash(s: &str) -> Option<Hash> {
    let b = s.as_bytes();
    if b.len() != 64 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(b, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 9162 §2.1 written out literally, with leaf *data* and no shortcuts, as the
    /// independent reference the implementation above is checked against.
    mod reference {
        use sha2::{Digest, Sha256};

        fn sha(parts: &[&[u8]]) -> [u8; 32] {
            let mut h = Sha256::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().into()
        }

        /// k < n <= 2k with k a power of two.
        fn k_of(n: usize) -> usize {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            k
        }

        pub fn mth(d: &[Vec<u8>]) -> [u8; 32] {
            match d.len() {
                0 => sha(&[]),
                1 => sha(&[&[0u8], &d[0]]),
                n => {
                    let k = k_of(n);
                    sha(&[&[1u8], &mth(&d[..k]), &mth(&d[k..])])
                }
            }
        }

        pub fn path(m: usize, d: &[Vec<u8>]) -> Vec<[u8; 32]> {
            let n = d.len();
            if n == 1 {
                return vec![];
            }
            let k = k_of(n);
            if m < k {
                let mut p = path(m, &d[..k]);
                p.push(mth(&d[k..]));
                p
            } else {
                let mut p = path(m - k, &d[k..]);
                p.push(mth(&d[..k]));
                p
            }
        }

        pub fn proof(m: usize, d: &[Vec<u8>]) -> Vec<[u8; 32]> {
            subproof(m, d, true)
        }

        fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<[u8; 32]> {
            let n = d.len();
            if m == n {
                return if b { vec![] } else { vec![mth(d)] };
            }
            let k = k_of(n);
            if m <= k {
                let mut p = subproof(m, &d[..k], b);
                p.push(mth(&d[k..]));
                p
            } else {
                let mut p = subproof(m - k, &d[k..], false);
                p.push(mth(&d[..k]));
                p
            }
        }
    }

    fn data(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    fn hashes(d: &[Vec<u8>]) -> Vec<Hash> {
        d.iter().map(|x| leaf_hash(x)).collect()
    }

    #[test]
    fn empty_root_and_leaf_hash_are_the_rfc_definitions() {
        // SHA-256("") and SHA-256(0x00) from FIPS 180-4 test tooling, typed in by hand.
        assert_eq!(
            hex::encode(EMPTY_ROOT),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(root(&[]), EMPTY_ROOT);
    }

    #[test]
    fn roots_and_frontiers_match_the_reference_for_sizes_0_to_64() {
        let d = data(64);
        let leaves = hashes(&d);
        let mut frontier = Frontier::new();
        for n in 0..=64 {
            let want = reference::mth(&d[..n]);
            assert_eq!(root(&leaves[..n]), want, "root of {n}");
            assert_eq!(frontier.size(), n as u64);
            assert_eq!(frontier.root(), want, "frontier root of {n}");
            let rebuilt = Frontier::from_hex(n as u64, &frontier.to_hex()).unwrap();
            assert_eq!(rebuilt, frontier);
            if n < 64 {
                frontier.push(leaves[n]);
            }
        }
    }

    #[test]
    fn inclusion_proofs_match_the_reference_and_verify() {
        let d = data(64);
        let leaves = hashes(&d);
        for n in 1..=64usize {
            let r = reference::mth(&d[..n]);
            for m in 0..n {
                let path = inclusion_proof(&leaves, m as u64, n as u64).unwrap();
                assert_eq!(path, reference::path(m, &d[..n]), "PATH({m}, D[{n}])");
                verify_inclusion(&leaves[m], m as u64, n as u64, &path, &r).unwrap();
                // Another leaf, another index, a shorter or longer path must all fail.
                let other = leaves[(m + 1) % n];
                if n > 1 {
                    assert!(verify_inclusion(&other, m as u64, n as u64, &path, &r).is_err());
                    assert!(
                        verify_inclusion(&leaves[m], ((m + 1) % n) as u64, n as u64, &path, &r)
                            .is_err()
                    );
                    assert!(
                        verify_inclusion(&leaves[m], m as u64, n as u64, &path[1..], &r).is_err()
                    );
                }
                let mut longer = path.clone();
                longer.push(r);
                assert!(verify_inclusion(&leaves[m], m as u64, n as u64, &longer, &r).is_err());
            }
        }
        assert_eq!(
            inclusion_proof(&leaves, 5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            inclusion_proof(&leaves, 0, 65),
            Err(ProofError::SizeOutOfRange {
                size: 65,
                available: 64
            })
        );
    }

    #[test]
    fn consistency_proofs_match_the_reference_and_verify() {
        let d = data(64);
        let leaves = hashes(&d);
        for n in 1..=64usize {
            let new_root = reference::mth(&d[..n]);
            for m in 1..=n {
                let old_root = reference::mth(&d[..m]);
                let proof = consistency_proof(&leaves, m as u64, n as u64).unwrap();
                assert_eq!(proof, reference::proof(m, &d[..n]), "PROOF({m}, D[{n}])");
                verify_consistency(m as u64, n as u64, &proof, &old_root, &new_root).unwrap();
                if m < n {
                    let wrong = reference::mth(&d[1..=m]);
                    assert!(
                        verify_consistency(m as u64, n as u64, &proof, &wrong, &new_root).is_err()
                    );
                    assert!(
                        verify_consistency(m as u64, n as u64, &proof, &old_root, &old_root)
                            .is_err()
                    );
                    assert!(
                        verify_consistency(m as u64, n as u64, &proof[1..], &old_root, &new_root)
                            .is_err()
                    );
                }
            }
        }
        assert!(consistency_proof(&leaves, 0, 3).is_err());
        assert!(consistency_proof(&leaves, 4, 3).is_err());
    }

    #[test]
    fn frontier_rejects_malformed_state() {
        assert_eq!(
            Frontier::from_hex(3, &["00".repeat(32)]),
            Err(FrontierError::WrongCount {
                size: 3,
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            Frontier::from_hex(1, &["AB".repeat(32)]),
            Err(FrontierError::BadHash { index: 0 })
        );
    }

    proptest! {
        #[test]
        fn proofs_between_random_sizes_verify(n in 1usize..300, picks in any::<(u64, u64)>()) {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
            let m = 1 + (picks.0 as usize % n);
            let i = picks.1 as usize % n;
            let mut frontier = Frontier::new();
            let mut old_root = EMPTY_ROOT;
            for (j, l) in leaves.iter().enumerate() {
                frontier.push(*l);
                if j + 1 == m {
                    old_root = frontier.root();
                }
            }
            let new_root = frontier.root();
            prop_assert_eq!(new_root, root(&leaves));
            let path = inclusion_proof(&leaves, i as u64, n as u64).unwrap();
            prop_assert!(verify_inclusion(&leaves[i], i as u64, n as u64, &path, &new_root).is_ok());
            let proof = consistency_proof(&leaves, m as u64, n as u64).unwrap();
            prop_assert!(verify_consistency(m as u64, n as u64, &proof, &old_root, &new_root).is_ok());
        }
    }
}

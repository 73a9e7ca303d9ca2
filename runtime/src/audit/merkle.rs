//! The RFC 6962 Merkle tree: hashes, a streaming root, and proofs.
//!
//! Every audit stream is one Merkle tree whose leaves are its events in
//! sequence order. The hashing is exactly RFC 6962 section 2.1 (as kept by
//! RFC 9162 section 2.1.1), so that any Certificate Transparency library can
//! check a warden proof:
//!
//! - leaf hash: `SHA-256(0x00 || leaf bytes)`;
//! - interior node: `SHA-256(0x01 || left || right)`;
//! - the tree of `n` leaves splits at the largest power of two below `n`;
//! - the empty tree hashes to `SHA-256("")`.
//!
//! The distinct prefixes keep a leaf from ever being passed off as an
//! interior node (the second-preimage attack RFC 6962 section 2.1 closes).
//!
//! [`Frontier`] keeps only the roots of the perfect subtrees that make up a
//! tree so far (at most 64 hashes), which is all an appender needs to extend
//! the tree and compute its root. Proofs need the leaf hashes and are built
//! from a slice of them: [`inclusion_proof`] and [`consistency_proof`] follow
//! RFC 6962 section 2.1.1 and 2.1.2; [`verify_inclusion`] and
//! [`verify_consistency`] follow RFC 9162 sections 2.1.3.2 and 2.1.4.2.

use sha2::{Digest as _, Sha256};

/// A 32-byte sha256 hash: a leaf, an interior node or a root.
pub type Hash = [u8; 32];

/// Hash of one leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// Hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Root of the tree over `leaves` (leaf hashes), by RFC 6962's recursion.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly below `n` (for `n >= 2`): where RFC
/// 6962 splits a tree of `n` leaves.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The roots of the perfect subtrees that make up a tree of `size` leaves,
/// largest (leftmost) first: one per set bit of `size`.
///
/// This is enough to append leaves and compute the root, and it is what a
/// retention record keeps of the events it removed: every one of these
/// subtrees is a node of every larger tree, so the roots of later trees can
/// be computed from it and the leaves that remain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from its parts, as stored.
    ///
    /// # Errors
    ///
    /// Fails when `nodes` does not hold one hash per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Self, String> {
        if nodes.len() != size.count_ones() as usize {
            return Err(format!(
                "a tree of {size} leaves has {} subtree roots, not {}",
                size.count_ones(),
                nodes.len()
            ));
        }
        Ok(Self { size, nodes })
    }

    /// How many leaves the tree holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        // Each trailing one bit of the old size is a perfect subtree of the
        // same height as the one being carried; merge them like a binary
        // increment.
        while size & 1 == 1 {
            let left = self.nodes.pop().unwrap_or_default();
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        // RFC 6962 trees are left-full: the ragged right edge merges from
        // the smallest subtree leftwards.
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// Where proofs get the hashes of subtrees from.
///
/// A slice of leaf hashes knows every subtree. A log whose oldest events
/// were removed by retention knows only the leaves it kept and the subtree
/// roots of its [`Frontier`] at the cut; proofs that would need anything
/// else come back as `None`.
pub trait Subtrees {
    /// The root of the subtree over leaves `lo..hi` (`lo < hi`), if known.
    fn subtree(&self, lo: u64, hi: u64) -> Option<Hash>;
}

impl Subtrees for [Hash] {
    fn subtree(&self, lo: u64, hi: u64) -> Option<Hash> {
        let (lo, hi) = (usize::try_from(lo).ok()?, usize::try_from(hi).ok()?);
        self.get(lo..hi).map(root)
    }
}

/// The inclusion proof (audit path) of leaf `index` in the tree over
/// `leaves`: RFC 6962 section 2.1.1, `PATH(m, D[n])`.
///
/// Returns `None` when `index` is not below `leaves.len()`.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    inclusion_proof_in(leaves, index as u64, leaves.len() as u64)
}

/// [`inclusion_proof`] over any [`Subtrees`]: the proof of leaf `index` in
/// the tree of its first `size` leaves.
pub fn inclusion_proof_in<T: Subtrees + ?Sized>(
    tree: &T,
    index: u64,
    size: u64,
) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut proof = Vec::new();
    path(tree, index, 0, size, &mut proof)?;
    Some(proof)
}

fn path<T: Subtrees + ?Sized>(
    tree: &T,
    m: u64,
    lo: u64,
    hi: u64,
    proof: &mut Vec<Hash>,
) -> Option<()> {
    let n = hi - lo;
    if n <= 1 {
        return Some(());
    }
    let k = split_u64(n);
    if m < k {
        path(tree, m, lo, lo + k, proof)?;
        proof.push(tree.subtree(lo + k, hi)?);
    } else {
        path(tree, m - k, lo + k, hi, proof)?;
        proof.push(tree.subtree(lo, lo + k)?);
    }
    Some(())
}

/// The consistency proof from the tree of the first `old_size` leaves to
/// the tree over all of `leaves`: RFC 6962 section 2.1.2, `PROOF(m, D[n])`.
///
/// Returns `None` when `old_size` is zero or larger than `leaves.len()`; a
/// proof from the empty tree is meaningless and RFC 9162 defines none.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    consistency_proof_in(leaves, old_size as u64, leaves.len() as u64)
}

/// [`consistency_proof`] over any [`Subtrees`]: from the tree of
/// `old_size` leaves to the tree of `new_size` leaves.
pub fn consistency_proof_in<T: Subtrees + ?Sized>(
    tree: &T,
    old_size: u64,
    new_size: u64,
) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > new_size {
        return None;
    }
    let mut proof = Vec::new();
    subproof(tree, old_size, 0, new_size, true, &mut proof)?;
    Some(proof)
}

fn subproof<T: Subtrees + ?Sized>(
    tree: &T,
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    proof: &mut Vec<Hash>,
) -> Option<()> {
    let n = hi - lo;
    if m == n {
        if !complete {
            proof.push(tree.subtree(lo, hi)?);
        }
        return Some(());
    }
    let k = split_u64(n);
    if m <= k {
        subproof(tree, m, lo, lo + k, complete, proof)?;
        proof.push(tree.subtree(lo + k, hi)?);
    } else {
        subproof(tree, m - k, lo + k, hi, false, proof)?;
        proof.push(tree.subtree(lo, lo + k)?);
    }
    Some(())
}

/// [`split`] for tree sizes counted in `u64`.
pub(crate) fn split_u64(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose
/// root is `root`: RFC 9162 section 2.1.3.2.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends
/// the tree of `old_size` leaves with root `old_root`: RFC 9162 section
/// 2.1.4.2.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    // When the old size is a power of two its root is itself a node of the
    // new tree, and RFC 9162 leaves it out of the proof.
    let mut nodes = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        nodes.push(*old_root);
    }
    nodes.extend_from_slice(proof);
    let Some((first, rest)) = nodes.split_first() else {
        return false;
    };

    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    f_r == *old_root && s_r == *new_root && s_n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Certificate Transparency reference inputs and answers, as used by
    // the CT and Trillian test suites for RFC 6962 trees: eight leaves, the
    // root of every prefix, and some inclusion and consistency proofs.
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
    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    /// (leaf index, tree size, proof)
    const CT_INCLUSION: [(usize, usize, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    /// (old size, new size, proof)
    const CT_CONSISTENCY: [(usize, usize, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    fn h(text: &str) -> Hash {
        let mut out = [0; 32];
        hex::decode_to_slice(text, &mut out).unwrap();
        out
    }

    fn hashes(texts: &[&str]) -> Vec<Hash> {
        texts.iter().map(|t| h(t)).collect()
    }

    fn ct_leaves() -> Vec<Hash> {
        CT_LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect()
    }

    fn numbered_leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn roots_match_the_certificate_transparency_vectors() {
        let leaves = ct_leaves();
        for (size, want) in CT_ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root(&leaves[..size])), *want, "size {size}");
        }
    }

    #[test]
    fn the_frontier_root_matches_the_recursive_root_at_every_size() {
        let leaves = numbered_leaves(70);
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf);
            assert_eq!(frontier.root(), root(&leaves[..=i]), "size {}", i + 1);
            assert_eq!(frontier.nodes().len(), (i + 1).count_ones() as usize);
        }
        let ct = ct_leaves();
        let mut frontier = Frontier::new();
        for leaf in &ct {
            frontier.push(*leaf);
        }
        assert_eq!(hex::encode(frontier.root()), CT_ROOTS[8]);
    }

    #[test]
    fn a_frontier_rebuilt_from_its_parts_continues_the_same_tree() {
        let leaves = numbered_leaves(23);
        let mut first = Frontier::new();
        for leaf in &leaves[..13] {
            first.push(*leaf);
        }
        let mut resumed = Frontier::from_parts(13, first.nodes().to_vec()).unwrap();
        for leaf in &leaves[13..] {
            resumed.push(*leaf);
        }
        assert_eq!(resumed.root(), root(&leaves));
        assert!(Frontier::from_parts(13, vec![[0; 32]]).is_err());
    }

    #[test]
    fn inclusion_proofs_match_the_certificate_transparency_vectors() {
        let leaves = ct_leaves();
        for (index, size, want) in CT_INCLUSION {
            let proof = inclusion_proof(index, &leaves[..size]).unwrap();
            assert_eq!(proof, hashes(want), "leaf {index} of {size}");
            assert!(verify_inclusion(
                index as u64,
                size as u64,
                &leaves[index],
                &proof,
                &h(CT_ROOTS[size])
            ));
        }
    }

    #[test]
    fn consistency_proofs_match_the_certificate_transparency_vectors() {
        let leaves = ct_leaves();
        for (old, new, want) in CT_CONSISTENCY {
            let proof = consistency_proof(old, &leaves[..new]).unwrap();
            assert_eq!(proof, hashes(want), "{old} to {new}");
            assert!(verify_consistency(
                old as u64,
                new as u64,
                &h(CT_ROOTS[old]),
                &h(CT_ROOTS[new]),
                &proof
            ));
        }
    }

    #[test]
    fn every_proof_verifies_in_every_tree_shape_and_a_changed_one_does_not() {
        let leaves = numbered_leaves(33);
        for n in 1..=leaves.len() {
            let tree = &leaves[..n];
            let r = root(tree);
            for i in 0..n {
                let proof = inclusion_proof(i, tree).unwrap();
                assert!(verify_inclusion(i as u64, n as u64, &tree[i], &proof, &r));
                assert!(!verify_inclusion(i as u64, n as u64, &[7; 32], &proof, &r));
                if n > 1 {
                    let other = (i + 1) % n;
                    assert!(!verify_inclusion(
                        other as u64,
                        n as u64,
                        &tree[i],
                        &proof,
                        &r
                    ));
                }
            }
            for m in 1..=n {
                let proof = consistency_proof(m, tree).unwrap();
                let old = root(&tree[..m]);
                assert!(verify_consistency(m as u64, n as u64, &old, &r, &proof));
                assert!(!verify_consistency(
                    m as u64, n as u64, &[7; 32], &r, &proof
                ));
                if m < n {
                    assert!(!verify_consistency(m as u64, n as u64, &old, &old, &proof));
                }
            }
        }
    }

    #[test]
    fn out_of_range_proofs_are_refused_not_panicking() {
        let leaves = numbered_leaves(4);
        assert!(inclusion_proof(4, &leaves).is_none());
        assert!(consistency_proof(0, &leaves).is_none());
        assert!(consistency_proof(5, &leaves).is_none());
        assert!(!verify_inclusion(4, 4, &leaves[0], &[], &root(&leaves)));
        assert!(!verify_consistency(5, 4, &[0; 32], &[0; 32], &[]));
        assert!(!verify_consistency(0, 4, &[0; 32], &[0; 32], &[]));
    }
}

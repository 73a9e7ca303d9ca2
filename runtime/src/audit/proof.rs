//! Inclusion and consistency proofs from a stored stream.
//!
//! [`StoredTree`] loads the leaf hashes of a stream's events (and, when
//! retention removed the oldest ones, the subtree roots its signed record
//! kept) and answers proofs against a checkpoint. Proofs are printed as
//! JSON with hex hashes, in the order RFC 6962 defines, so that any
//! Certificate Transparency verifier checks them.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    checkpoint::Checkpoint,
    keys::PublicKey,
    merkle::{
        Frontier, Hash, Subtrees, consistency_proof_in, inclusion_proof_in, leaf_hash, root,
        verify_consistency, verify_inclusion,
    },
    retention,
    stream::StreamId,
    verify::{VerifyError, for_each_record},
};

/// The leaf hashes of a stream, plus what retention kept of removed events.
#[derive(Clone, Debug)]
pub struct StoredTree {
    /// Events removed by retention: `1..=removed`.
    removed: u64,
    /// Their frontier nodes with the leaf range each covers.
    removed_nodes: Vec<(u64, u64, Hash)>,
    /// Leaf hashes of events `removed + 1 ..`.
    leaves: Vec<Hash>,
}

impl StoredTree {
    /// Loads `stream`'s tree under `data_dir`, checking retention records
    /// with `key`.
    ///
    /// # Errors
    ///
    /// Fails when the log is missing, unreadable, or out of order.
    pub fn load(data_dir: &Path, stream: &StreamId, key: &PublicKey) -> Result<Self, VerifyError> {
        let removed_state = retention::read_all(&stream.dir(data_dir), key)
            .map_err(|problem| VerifyError::Log {
                stream: stream.clone(),
                problem,
            })?
            .pop()
            .map(|(_, s)| s.frontier);
        let frontier = removed_state.unwrap_or_default();
        let removed = frontier.size();
        let mut leaves = Vec::new();
        for_each_record(data_dir, stream, |record, line| {
            if record.seq > removed {
                leaves.push(leaf_hash(line));
            }
            Ok(())
        })?;
        Ok(Self::from_parts(&frontier, leaves))
    }

    /// A tree from a removed prefix's frontier and the leaves after it.
    pub fn from_parts(removed: &Frontier, leaves: Vec<Hash>) -> Self {
        let mut removed_nodes = Vec::new();
        let mut lo = 0;
        for bit in (0..64).rev() {
            let size = 1u64 << bit;
            if removed.size() & size != 0 {
                let node = removed.nodes()[removed_nodes.len()];
                removed_nodes.push((lo, lo + size, node));
                lo += size;
            }
        }
        Self {
            removed: removed.size(),
            removed_nodes,
            leaves,
        }
    }

    /// How many events the tree holds, counting removed ones.
    pub fn size(&self) -> u64 {
        self.removed + self.leaves.len() as u64
    }

    /// Events removed by retention (`1..=removed`).
    pub fn removed(&self) -> u64 {
        self.removed
    }

    /// The root of the tree of its first `size` events, if computable.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size == 0 {
            return Some(root(&[]));
        }
        self.subtree(0, size)
    }

    /// The leaf hash of event `seq`, if kept.
    pub fn leaf(&self, seq: u64) -> Option<Hash> {
        let index = seq.checked_sub(self.removed + 1)?;
        self.leaves.get(usize::try_from(index).ok()?).copied()
    }
}

impl Subtrees for StoredTree {
    fn subtree(&self, lo: u64, hi: u64) -> Option<Hash> {
        let k = self.removed;
        if hi <= k {
            if let Some((_, _, h)) = self
                .removed_nodes
                .iter()
                .find(|(a, b, _)| *a == lo && *b == hi)
            {
                return Some(*h);
            }
            // A range of several kept subtrees (the old tree of a
            // consistency proof) is their RFC 6962 combination; anything
            // inside one of them is gone.
            if hi - lo == 1 {
                return None;
            }
        } else if lo >= k {
            return self.leaves[..].subtree(lo - k, hi - k);
        }
        let mid = lo + super::merkle::split_u64(hi - lo);
        Some(super::merkle::node_hash(
            &self.subtree(lo, mid)?,
            &self.subtree(mid, hi)?,
        ))
    }
}

/// An inclusion proof of one event, as printed by `warden audit prove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The checkpoint the proof is against.
    pub checkpoint: Checkpoint,
    /// The event's sequence number.
    pub seq: u64,
    /// Its leaf index in the tree (`seq - 1`).
    pub leaf_index: u64,
    /// Its leaf hash, hex: `SHA-256(0x00 || the stored line)`.
    pub leaf_hash: String,
    /// The audit path, hex, leaf to root (RFC 6962 section 2.1.1).
    pub proof: Vec<String>,
}

/// A consistency proof between two tree sizes, as printed by `warden
/// audit prove --old-size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The newer checkpoint.
    pub checkpoint: Checkpoint,
    /// The older tree size.
    pub old_size: u64,
    /// The older tree's root, hex.
    pub old_root: String,
    /// The proof, hex (RFC 6962 section 2.1.2).
    pub proof: Vec<String>,
}

/// A proof could not be made.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    /// The event number is 0 or past the checkpoint.
    #[error("event {seq} is not in the log of {stream}: it holds events 1..{size}")]
    NoSuchEvent {
        /// The stream.
        stream: String,
        /// The number asked for.
        seq: u64,
        /// Events the checkpoint covers.
        size: u64,
    },
    /// The old size is 0 or past the checkpoint.
    #[error("old size {old} is not between 1 and the checkpoint's {size} events")]
    BadOldSize {
        /// The size asked for.
        old: u64,
        /// Events the checkpoint covers.
        size: u64,
    },
    /// The proof needs hashes of events removed by retention.
    #[error("{0} was removed by retention; only events after it can be proved")]
    Removed(String),
    /// The stored events do not match the checkpoint.
    #[error("the stored events do not match checkpoint of size {0}; run `warden audit verify`")]
    Mismatch(u64),
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// Proves that event `seq` is in the tree `checkpoint` signed.
///
/// # Errors
///
/// See [`ProofError`].
pub fn prove_inclusion(
    tree: &StoredTree,
    checkpoint: &Checkpoint,
    seq: u64,
) -> Result<InclusionProof, ProofError> {
    let size = checkpoint.tree_size;
    if seq == 0 || seq > size || size > tree.size() {
        return Err(ProofError::NoSuchEvent {
            stream: checkpoint.stream.clone(),
            seq,
            size,
        });
    }
    check_root(tree, checkpoint)?;
    let leaf = tree
        .leaf(seq)
        .ok_or_else(|| ProofError::Removed(format!("event {seq}")))?;
    let proof = inclusion_proof_in(tree, seq - 1, size)
        .ok_or_else(|| ProofError::Removed(format!("part of the path of event {seq}")))?;
    Ok(InclusionProof {
        checkpoint: checkpoint.clone(),
        seq,
        leaf_index: seq - 1,
        leaf_hash: hex::encode(leaf),
        proof: hexes(&proof),
    })
}

/// Proves that the tree `checkpoint` signed extends the tree of its first
/// `old_size` events.
///
/// # Errors
///
/// See [`ProofError`].
pub fn prove_consistency(
    tree: &StoredTree,
    checkpoint: &Checkpoint,
    old_size: u64,
) -> Result<ConsistencyProof, ProofError> {
    let size = checkpoint.tree_size;
    if old_size == 0 || old_size > size || size > tree.size() {
        return Err(ProofError::BadOldSize {
            old: old_size,
            size,
        });
    }
    check_root(tree, checkpoint)?;
    let removed = || ProofError::Removed(format!("part of the tree of {old_size} events"));
    let old_root = tree.root_at(old_size).ok_or_else(removed)?;
    let proof = consistency_proof_in(tree, old_size, size).ok_or_else(removed)?;
    Ok(ConsistencyProof {
        checkpoint: checkpoint.clone(),
        old_size,
        old_root: hex::encode(old_root),
        proof: hexes(&proof),
    })
}

fn check_root(tree: &StoredTree, checkpoint: &Checkpoint) -> Result<(), ProofError> {
    let signed = checkpoint
        .root()
        .map_err(|_| ProofError::Mismatch(checkpoint.tree_size))?;
    if tree.root_at(checkpoint.tree_size) != Some(signed) {
        return Err(ProofError::Mismatch(checkpoint.tree_size));
    }
    Ok(())
}

fn unhex(texts: &[String]) -> Option<Vec<Hash>> {
    texts
        .iter()
        .map(|t| {
            let mut h = [0u8; 32];
            hex::decode_to_slice(t, &mut h).ok().map(|()| h)
        })
        .collect()
}

impl InclusionProof {
    /// Checks the proof against its checkpoint's root (not the checkpoint's
    /// signature; check that with [`Checkpoint::verify`]).
    pub fn verify(&self) -> bool {
        let (Ok(root), Some(proof), Some(leaf)) = (
            self.checkpoint.root(),
            unhex(&self.proof),
            unhex(std::slice::from_ref(&self.leaf_hash)),
        ) else {
            return false;
        };
        self.seq == self.leaf_index + 1
            && verify_inclusion(
                self.leaf_index,
                self.checkpoint.tree_size,
                &leaf[0],
                &proof,
                &root,
            )
    }
}

impl ConsistencyProof {
    /// Checks the proof between `old_root` and the checkpoint's root.
    pub fn verify(&self) -> bool {
        let (Ok(root), Some(proof), Some(old)) = (
            self.checkpoint.root(),
            unhex(&self.proof),
            unhex(std::slice::from_ref(&self.old_root)),
        ) else {
            return false;
        };
        verify_consistency(
            self.old_size,
            self.checkpoint.tree_size,
            &old[0],
            &root,
            &proof,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::keys::Signer;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn a_tree_missing_its_removed_prefix_still_proves_what_remains() {
        let all = leaves(29);
        for k in 1..29u64 {
            let mut f = Frontier::new();
            for l in &all[..k as usize] {
                f.push(*l);
            }
            let tree = StoredTree::from_parts(&f, all[k as usize..].to_vec());
            let full = StoredTree::from_parts(&Frontier::new(), all.clone());
            assert_eq!(tree.root_at(29), Some(root(&all)), "cut at {k}");
            let signer = Signer::from_seed(&[3; 32]);
            let cp = Checkpoint::sign(&signer, "acme", 29, &root(&all), 1);
            for seq in k + 1..=29 {
                let p = prove_inclusion(&tree, &cp, seq).unwrap();
                assert!(p.verify());
                assert_eq!(p, prove_inclusion(&full, &cp, seq).unwrap());
            }
            for old in k..=29 {
                let p = prove_consistency(&tree, &cp, old).unwrap();
                assert!(p.verify(), "cut at {k}, old size {old}");
            }
            assert!(matches!(
                prove_inclusion(&tree, &cp, k),
                Err(ProofError::Removed(_))
            ));
        }
    }

    #[test]
    fn proofs_past_the_end_name_the_number() {
        let all = leaves(5);
        let tree = StoredTree::from_parts(&Frontier::new(), all.clone());
        let signer = Signer::from_seed(&[3; 32]);
        let cp = Checkpoint::sign(&signer, "acme", 5, &root(&all), 1);
        let err = prove_inclusion(&tree, &cp, 6).unwrap_err().to_string();
        assert_eq!(
            err,
            "event 6 is not in the log of acme: it holds events 1..5"
        );
        assert!(prove_inclusion(&tree, &cp, 0).is_err());
        assert!(prove_consistency(&tree, &cp, 0).is_err());
        assert!(prove_consistency(&tree, &cp, 6).is_err());
        let forged = Checkpoint::sign(&signer, "acme", 5, &[1; 32], 1);
        assert_eq!(
            prove_inclusion(&tree, &forged, 1),
            Err(ProofError::Mismatch(5))
        );
    }
}

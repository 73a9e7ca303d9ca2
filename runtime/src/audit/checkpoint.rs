//! Signed checkpoints: a stream's size and root hash at a moment, signed.
//!
//! A checkpoint commits the runtime to the first `tree_size` events of a
//! stream: anyone holding it (and the public key) can later check that the
//! log still starts with exactly those events. The runtime signs one at a
//! configured interval, when it seals a segment, on shutdown and on demand,
//! and appends each to the stream's `checkpoints.jsonl`. An operator prints
//! the latest with `warden audit checkpoint` and stores it where the host
//! cannot rewrite it.
//!
//! The signature is Ed25519 over this text, in this order, each line ending
//! in `\n` (a verifier in any language rebuilds it from the JSON fields):
//!
//! ```text
//! warden audit checkpoint v1
//! stream <stream name>
//! tree_size <decimal>
//! root_hash <64 hex digits>
//! time_unix_ms <decimal>
//! ```

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    keys::{PublicKey, Signer},
    merkle::{Frontier, Hash},
    stream::split_lines,
};

/// One signed checkpoint, as printed and stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The stream: a tenant id or `_control`.
    pub stream: String,
    /// How many events the checkpoint covers, from event 1.
    pub tree_size: u64,
    /// RFC 6962 root hash of those events, hex.
    pub root_hash: String,
    /// When it was signed, in milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Id of the signing key (see [`PublicKey::key_id`]).
    pub key_id: String,
    /// Ed25519 signature of [`Checkpoint::signed_text`], hex.
    pub signature: String,
}

/// Why a checkpoint is not acceptable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Signed by another key than the one checking it.
    #[error("was signed by key {found}, not by the expected key {expected}")]
    OtherKey {
        /// The key id in the checkpoint.
        found: String,
        /// The key id of the checking key.
        expected: String,
    },
    /// The signature does not match the fields.
    #[error("has a signature that does not match its fields: it was altered or forged")]
    BadSignature,
    /// A field is malformed.
    #[error("is malformed: {0}")]
    Malformed(String),
}

impl Checkpoint {
    /// Signs a checkpoint of `stream` at `tree_size` with root `root`.
    pub fn sign(
        signer: &Signer,
        stream: &str,
        tree_size: u64,
        root: &Hash,
        time_unix_ms: u64,
    ) -> Self {
        let mut checkpoint = Self {
            stream: stream.to_owned(),
            tree_size,
            root_hash: hex::encode(root),
            time_unix_ms,
            key_id: signer.public_key().key_id(),
            signature: String::new(),
        };
        checkpoint.signature = hex::encode(signer.sign(checkpoint.signed_text().as_bytes()));
        checkpoint
    }

    /// The text the signature covers.
    pub fn signed_text(&self) -> String {
        format!(
            "warden audit checkpoint v1\nstream {}\ntree_size {}\nroot_hash {}\ntime_unix_ms {}\n",
            self.stream, self.tree_size, self.root_hash, self.time_unix_ms
        )
    }

    /// The root hash as bytes.
    ///
    /// # Errors
    ///
    /// Fails when the field is not 64 hex digits.
    pub fn root(&self) -> Result<Hash, CheckpointError> {
        let mut root = [0u8; 32];
        hex::decode_to_slice(&self.root_hash, &mut root)
            .map_err(|_| CheckpointError::Malformed("root_hash is not 64 hex digits".into()))?;
        Ok(root)
    }

    /// Checks the signature with `key`.
    ///
    /// # Errors
    ///
    /// Says whether another key signed it, the signature is wrong, or a
    /// field is malformed.
    pub fn verify(&self, key: &PublicKey) -> Result<(), CheckpointError> {
        self.root()?;
        check_signature(key, &self.key_id, &self.signature, &self.signed_text())
    }

    /// Reads a checkpoint an operator saved: a file holding one checkpoint
    /// as JSON, as printed by `warden audit checkpoint`.
    ///
    /// # Errors
    ///
    /// Returns a one-line message naming the file and what is wrong.
    pub fn read_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read checkpoint file {}: {e}", path.display()))?;
        serde_json::from_str(text.trim()).map_err(|e| {
            format!(
                "checkpoint file {} is not a warden checkpoint: {e}",
                path.display()
            )
        })
    }
}

/// A checkpoint as kept in `checkpoints.jsonl`: the signed part plus the
/// tree state the runtime resumes from, which nobody needs to trust (the
/// verifier recomputes everything from the events).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredCheckpoint {
    pub(crate) checkpoint: Checkpoint,
    /// The [`Frontier`] nodes at `tree_size`, hex.
    pub(crate) frontier: Vec<String>,
    /// Leaf hash of event `tree_size`, hex; the next event's `prev`.
    pub(crate) last_leaf: String,
}

impl StoredCheckpoint {
    pub(crate) fn new(checkpoint: Checkpoint, frontier: &Frontier, last_leaf: &Hash) -> Self {
        Self {
            checkpoint,
            frontier: frontier.nodes().iter().map(hex::encode).collect(),
            last_leaf: hex::encode(last_leaf),
        }
    }

    /// The frontier and last leaf, checked against the signed root.
    pub(crate) fn resume_state(&self) -> Result<(Frontier, Hash), String> {
        let decode = |text: &str| {
            let mut h = [0u8; 32];
            hex::decode_to_slice(text, &mut h).map(|()| h)
        };
        let nodes = self
            .frontier
            .iter()
            .map(|n| decode(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "its frontier is not hex".to_owned())?;
        let frontier = Frontier::from_parts(self.checkpoint.tree_size, nodes)?;
        let root = self.checkpoint.root().map_err(|e| e.to_string())?;
        if frontier.root() != root {
            return Err("its frontier does not hash to its root".into());
        }
        let last_leaf =
            decode(&self.last_leaf).map_err(|_| "its last_leaf is not hex".to_owned())?;
        Ok((frontier, last_leaf))
    }
}

/// A stream's checkpoints file could not be read or written.
#[derive(Debug, Error)]
pub enum CheckpointFileError {
    /// An I/O operation failed.
    #[error("checkpoints file {path}: cannot {action}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a stored checkpoint.
    #[error("checkpoints file {path}, line {line}: not a stored checkpoint ({reason})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The contents of a checkpoints file.
#[derive(Debug, Default)]
pub(crate) struct CheckpointsRead {
    pub(crate) stored: Vec<StoredCheckpoint>,
    /// Bytes after the last newline: a checkpoint whose write was cut by a
    /// crash.
    pub(crate) torn_bytes: u64,
}

/// Reads every stored checkpoint at `path`; a missing file is empty.
pub(crate) fn read_checkpoints(path: &Path) -> Result<CheckpointsRead, CheckpointFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CheckpointsRead::default()),
        Err(source) => {
            return Err(CheckpointFileError::Io {
                path: path.to_owned(),
                action: "read",
                source,
            });
        }
    };
    let (lines, torn) = split_lines(&bytes);
    let mut stored = Vec::new();
    for (i, line) in lines.enumerate() {
        let s: StoredCheckpoint =
            serde_json::from_slice(line).map_err(|e| CheckpointFileError::Malformed {
                path: path.to_owned(),
                line: i + 1,
                reason: e.to_string(),
            })?;
        stored.push(s);
    }
    Ok(CheckpointsRead {
        stored,
        torn_bytes: torn.len() as u64,
    })
}

/// Appends one checkpoint line to an open checkpoints file, synced when
/// `sync` is set.
pub(crate) fn append_checkpoint(
    file: &mut File,
    path: &Path,
    stored: &StoredCheckpoint,
    sync: bool,
) -> Result<(), CheckpointFileError> {
    let io = |action, source| CheckpointFileError::Io {
        path: path.to_owned(),
        action,
        source,
    };
    let mut line =
        serde_json::to_vec(stored).map_err(|e| io("encode", std::io::Error::other(e)))?;
    line.push(b'\n');
    file.write_all(&line).map_err(|e| io("write", e))?;
    if sync {
        file.sync_data().map_err(|e| io("sync", e))?;
    }
    Ok(())
}

/// Opens a checkpoints file for appending.
pub(crate) fn open_checkpoints(path: &Path) -> Result<File, CheckpointFileError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|source| CheckpointFileError::Io {
            path: path.to_owned(),
            action: "open",
            source,
        })
}

/// Checks that `signature_hex` is `key`'s signature over `text`, made by the
/// key named `key_id`. Shared by checkpoints and retention records, which
/// are signed the same way.
pub(super) fn check_signature(
    key: &PublicKey,
    key_id: &str,
    signature_hex: &str,
    text: &str,
) -> Result<(), CheckpointError> {
    if key_id != key.key_id() {
        return Err(CheckpointError::OtherKey {
            found: key_id.to_owned(),
            expected: key.key_id(),
        });
    }
    let mut signature = [0u8; 64];
    hex::decode_to_slice(signature_hex, &mut signature)
        .map_err(|_| CheckpointError::Malformed("signature is not 128 hex digits".into()))?;
    if key.verify(text.as_bytes(), &signature) {
        Ok(())
    } else {
        Err(CheckpointError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_with_its_key_and_unaltered() {
        let signer = Signer::from_seed(&[1; 32]);
        let other = Signer::from_seed(&[2; 32]);
        let cp = Checkpoint::sign(&signer, "acme", 5, &[9; 32], 1_700_000_000_000);
        assert_eq!(cp.verify(signer.public_key()), Ok(()));
        assert!(matches!(
            cp.verify(other.public_key()),
            Err(CheckpointError::OtherKey { .. })
        ));
        let mut altered = cp.clone();
        altered.tree_size = 4;
        assert_eq!(
            altered.verify(signer.public_key()),
            Err(CheckpointError::BadSignature)
        );
        let mut bad = cp;
        bad.root_hash = "zz".into();
        assert!(matches!(
            bad.verify(signer.public_key()),
            Err(CheckpointError::Malformed(_))
        ));
    }

    #[test]
    fn the_signed_text_has_one_field_per_line_in_a_fixed_order() {
        let signer = Signer::from_seed(&[1; 32]);
        let cp = Checkpoint::sign(&signer, "acme", 5, &[0; 32], 7);
        assert_eq!(
            cp.signed_text(),
            format!(
                "warden audit checkpoint v1\nstream acme\ntree_size 5\nroot_hash {}\ntime_unix_ms 7\n",
                "0".repeat(64)
            )
        );
    }
}

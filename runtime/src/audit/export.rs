//! Excerpts of a stream that an auditor verifies alone.
//!
//! `warden audit export --tenant acme --since T --until T --output DIR`
//! writes three files into `DIR`:
//!
//! - `events.jsonl`: the records whose event time falls in the range,
//!   byte for byte as stored, one per line;
//! - `proofs.jsonl`: for each, in the same order, its sequence number and
//!   its inclusion proof (`{"seq":…,"leaf_index":…,"proof":[…]}`);
//! - `checkpoint.json`: the signed checkpoint every proof is against,
//!   signed for the export so that it covers the newest event.
//!
//! With the operator's public key, [`verify_export`] (or `warden audit
//! verify-export`) checks the checkpoint's signature, recomputes each
//! record's leaf hash from its bytes and checks its proof: every exported
//! event is then shown to be the event at that position in the log the
//! runtime signed, unaltered. Nothing else from the host is needed.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    checkpoint::Checkpoint,
    keys::PublicKey,
    merkle::{Hash, inclusion_proof_in, leaf_hash, verify_inclusion},
    proof::{ProofError, StoredTree},
    stream::{Record, StreamId, split_lines},
    verify::{VerifyError, for_each_record},
};

/// Name of the events file in an export.
pub const EVENTS_FILE: &str = "events.jsonl";
/// Name of the proofs file in an export.
pub const PROOFS_FILE: &str = "proofs.jsonl";
/// Name of the checkpoint file in an export.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

/// One line of `proofs.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportProof {
    /// The event's sequence number.
    pub seq: u64,
    /// Its leaf index (`seq - 1`).
    pub leaf_index: u64,
    /// Its audit path to the checkpoint's root, hex.
    pub proof: Vec<String>,
}

/// What an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// How many events were exported.
    pub events: u64,
    /// The first and last exported sequence numbers.
    pub range: Option<(u64, u64)>,
    /// The checkpoint's tree size.
    pub tree_size: u64,
}

/// An export could not be written or did not verify.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Reading the log failed.
    #[error(transparent)]
    Read(#[from] VerifyError),
    /// A proof could not be made.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// A file of the export could not be read or written.
    #[error("export file {path}: cannot {action}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The output directory is not empty.
    #[error("export directory {0} is not empty; give a new directory")]
    NotEmpty(PathBuf),
    /// The export does not verify.
    #[error("export {dir}: {problem}")]
    Invalid {
        /// The export directory.
        dir: PathBuf,
        /// What is wrong, naming the file and line or event.
        problem: String,
    },
}

/// Writes the events of `stream` with times in `since_ms..until_ms`
/// (inclusive) to `out`, proved against `checkpoint`, which must cover the
/// whole log as stored.
///
/// # Errors
///
/// Fails when the log cannot be read, does not match the checkpoint, or
/// the files cannot be written.
pub fn export(
    data_dir: &Path,
    stream: &StreamId,
    key: &PublicKey,
    checkpoint: &Checkpoint,
    (since_ms, until_ms): (u64, u64),
    out: &Path,
) -> Result<ExportReport, ExportError> {
    let io = |path: &Path, action, source| ExportError::Io {
        path: path.to_owned(),
        action,
        source,
    };
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ExportError::NotEmpty(out.to_owned()));
    }
    std::fs::create_dir_all(out).map_err(|e| io(out, "create", e))?;
    let tree = StoredTree::load(data_dir, stream, key)?;
    if tree.root_at(checkpoint.tree_size) != checkpoint.root().ok() {
        return Err(ProofError::Mismatch(checkpoint.tree_size).into());
    }

    let events_path = out.join(EVENTS_FILE);
    let proofs_path = out.join(PROOFS_FILE);
    let mut events =
        BufWriter::new(File::create(&events_path).map_err(|e| io(&events_path, "create", e))?);
    let mut proofs =
        BufWriter::new(File::create(&proofs_path).map_err(|e| io(&proofs_path, "create", e))?);
    let mut report = ExportReport {
        events: 0,
        range: None,
        tree_size: checkpoint.tree_size,
    };
    let mut write_err = None;
    for_each_record(data_dir, stream, |record, line| {
        let in_range = record
            .time_unix_ms()
            .is_some_and(|t| t >= since_ms && t <= until_ms);
        if !in_range || record.seq > checkpoint.tree_size {
            return Ok(());
        }
        let Some(path) = inclusion_proof_in(&tree, record.seq - 1, checkpoint.tree_size) else {
            write_err = Some(ProofError::Removed(format!("event {}", record.seq)).into());
            return Ok(());
        };
        let proof = ExportProof {
            seq: record.seq,
            leaf_index: record.seq - 1,
            proof: path.iter().map(hex::encode).collect(),
        };
        let written = events
            .write_all(line)
            .and_then(|()| events.write_all(b"\n"))
            .map_err(|e| io(&events_path, "write", e))
            .and_then(|()| {
                serde_json::to_writer(&mut proofs, &proof)
                    .map_err(std::io::Error::from)
                    .and_then(|()| proofs.write_all(b"\n"))
                    .map_err(|e| io(&proofs_path, "write", e))
            });
        if let Err(e) = written {
            write_err = Some(e);
        }
        report.events += 1;
        report.range = Some(
            report
                .range
                .map_or((record.seq, record.seq), |(a, _)| (a, record.seq)),
        );
        Ok(())
    })?;
    if let Some(e) = write_err {
        return Err(e);
    }
    events.flush().map_err(|e| io(&events_path, "write", e))?;
    proofs.flush().map_err(|e| io(&proofs_path, "write", e))?;
    let checkpoint_path = out.join(CHECKPOINT_FILE);
    let text = serde_json::to_string_pretty(checkpoint)
        .map_err(|e| io(&checkpoint_path, "encode", e.into()))?;
    std::fs::write(&checkpoint_path, text + "\n").map_err(|e| io(&checkpoint_path, "write", e))?;
    Ok(report)
}

/// Verifies an export in `dir` with `key`. See the module docs.
///
/// # Errors
///
/// Returns the first problem, naming the file and line or event.
pub fn verify_export(
    dir: &Path,
    key: &PublicKey,
) -> Result<(Checkpoint, ExportReport), ExportError> {
    let invalid = |problem: String| ExportError::Invalid {
        dir: dir.to_owned(),
        problem,
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| io_err(&path, e))
    };
    let checkpoint: Checkpoint = serde_json::from_slice(&read(CHECKPOINT_FILE)?)
        .map_err(|e| invalid(format!("{CHECKPOINT_FILE} is not a warden checkpoint: {e}")))?;
    checkpoint
        .verify(key)
        .map_err(|e| invalid(format!("{CHECKPOINT_FILE} {e}")))?;
    let root: Hash = checkpoint
        .root()
        .map_err(|e| invalid(format!("{CHECKPOINT_FILE} {e}")))?;
    let events = read(EVENTS_FILE)?;
    let proofs = read(PROOFS_FILE)?;
    let (event_lines, torn_events) = split_lines(&events);
    let (proof_lines, torn_proofs) = split_lines(&proofs);
    if !torn_events.is_empty() || !torn_proofs.is_empty() {
        return Err(invalid(
            "a file ends inside a line: the export is incomplete".into(),
        ));
    }
    let mut proof_lines = proof_lines.enumerate();
    let mut report = ExportReport {
        events: 0,
        range: None,
        tree_size: checkpoint.tree_size,
    };
    let mut last_seq = 0;
    for (n, line) in event_lines.enumerate() {
        let at = format!("{EVENTS_FILE} line {}", n + 1);
        let record = Record::parse(line)
            .map_err(|e| invalid(format!("{at} is not an audit record: {e}")))?;
        let Some((_, proof_line)) = proof_lines.next() else {
            return Err(invalid(format!("{at} has no proof in {PROOFS_FILE}")));
        };
        let proof: ExportProof = serde_json::from_slice(proof_line)
            .map_err(|e| invalid(format!("{PROOFS_FILE} line {} is not a proof: {e}", n + 1)))?;
        if proof.seq != record.seq || proof.leaf_index + 1 != record.seq {
            return Err(invalid(format!(
                "{at} is event {} but its proof is for event {}",
                record.seq, proof.seq
            )));
        }
        if record.seq <= last_seq {
            return Err(invalid(format!(
                "{at} is event {} after event {last_seq}: events were reordered or duplicated",
                record.seq
            )));
        }
        if checkpoint.stream != super::stream::CONTROL_STREAM
            && record.tenant() != Some(checkpoint.stream.as_str())
        {
            return Err(invalid(format!(
                "event {} belongs to tenant {:?}, not {}",
                record.seq,
                record.tenant().unwrap_or(""),
                checkpoint.stream
            )));
        }
        let path: Option<Vec<Hash>> = proof
            .proof
            .iter()
            .map(|t| {
                let mut h = [0u8; 32];
                hex::decode_to_slice(t, &mut h).ok().map(|()| h)
            })
            .collect();
        let ok = path.is_some_and(|p| {
            verify_inclusion(
                proof.leaf_index,
                checkpoint.tree_size,
                &leaf_hash(line),
                &p,
                &root,
            )
        });
        if !ok {
            return Err(invalid(format!(
                "event {} ({at}) is not in the signed log: it was edited or its proof is wrong",
                record.seq
            )));
        }
        last_seq = record.seq;
        report.events += 1;
        report.range = Some(
            report
                .range
                .map_or((record.seq, record.seq), |(a, _)| (a, record.seq)),
        );
    }
    if proof_lines.next().is_some() {
        return Err(invalid(format!(
            "{PROOFS_FILE} has more proofs than {EVENTS_FILE} has events: events were removed"
        )));
    }
    Ok((checkpoint, report))
}

fn io_err(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Io {
        path: path.to_owned(),
        action: "read",
        source,
    }
}

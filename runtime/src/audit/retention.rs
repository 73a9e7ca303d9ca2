//! Retention: removing a stream's oldest events by whole sealed segments.
//!
//! Storage limitation (GDPR article 5(1)(e)) asks that events are not kept
//! longer than needed, while the rest of the log must still verify. A
//! removal therefore never touches single events: it deletes a prefix of
//! sealed segment files whose every event is older than the retention
//! period, and first appends a signed [`RetentionRecord`] to
//! `retention.jsonl` holding what the Merkle tree needs of the removed
//! events: the [`Frontier`] of the tree they formed (one subtree root per
//! set bit of its size) and the leaf hash of the last one. Every one of
//! those subtrees is a node of every later tree, so the verifier rebuilds
//! later roots from the record and the events that remain, and checks them
//! against the signed checkpoints as before.
//!
//! The removal itself is also an event ([`EventBody::RetentionRemoved`]) in
//! the same stream, so that the log says in its own words what was removed,
//! when, and under which period.
//!
//! The order of steps keeps a crash harmless: sign a checkpoint, append
//! and sync the record, delete the files, sync the directory. A crash
//! between the record and the deletions leaves files the next open deletes.
//!
//! Signed text, in this order, each line ending in `\n`:
//!
//! ```text
//! warden audit retention v1
//! stream <stream>
//! first_seq <decimal>
//! last_seq <decimal>
//! segments <file names, comma-separated>
//! retention <period>
//! frontier <hex hashes, comma-separated>
//! last_leaf <hex>
//! root_hash <hex>
//! time_unix_ms <decimal>
//! ```

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use warden_host_api::audit::{self, EventBody, HostScope};

use super::{
    AuditLogError,
    checkpoint::{CheckpointError, check_signature},
    keys::{PublicKey, Signer},
    log::{AuditLog, sync_dir},
    merkle::{Frontier, Hash, leaf_hash},
    now_unix_ms,
    stream::{RETENTION_FILE, Record, list_segments, split_lines},
};

/// One signed record of a removal, as stored in `retention.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRecord {
    /// The stream.
    pub stream: String,
    /// First removed sequence number.
    pub first_seq: u64,
    /// Last removed sequence number; the tree below stands for events
    /// `1..=last_seq`.
    pub last_seq: u64,
    /// The removed segment files.
    pub segments: Vec<String>,
    /// The retention period applied.
    pub retention: String,
    /// Frontier of the tree of events `1..=last_seq`, hex, largest first.
    pub frontier: Vec<String>,
    /// Leaf hash of event `last_seq`, hex.
    pub last_leaf: String,
    /// Root hash of the tree of events `1..=last_seq`, hex.
    pub root_hash: String,
    /// When the removal was made.
    pub time_unix_ms: u64,
    /// Id of the signing key.
    pub key_id: String,
    /// Ed25519 signature of [`RetentionRecord::signed_text`], hex.
    pub signature: String,
}

/// The tree state that a stream's removed prefix leaves behind.
#[derive(Clone, Debug)]
pub struct RetentionState {
    /// How many events were removed (events `1..=size`).
    pub size: u64,
    /// Their tree's frontier.
    pub frontier: Frontier,
    /// Leaf hash of event `size`.
    pub last_leaf: Hash,
}

impl RetentionRecord {
    /// The text the signature covers.
    pub fn signed_text(&self) -> String {
        format!(
            "warden audit retention v1\nstream {}\nfirst_seq {}\nlast_seq {}\nsegments {}\n\
             retention {}\nfrontier {}\nlast_leaf {}\nroot_hash {}\ntime_unix_ms {}\n",
            self.stream,
            self.first_seq,
            self.last_seq,
            self.segments.join(","),
            self.retention,
            self.frontier.join(","),
            self.last_leaf,
            self.root_hash,
            self.time_unix_ms
        )
    }

    /// Checks the signature and that the stored tree state is whole.
    ///
    /// # Errors
    ///
    /// Says what is wrong.
    pub fn verify(&self, key: &PublicKey) -> Result<RetentionState, CheckpointError> {
        check_signature(key, &self.key_id, &self.signature, &self.signed_text())?;
        let decode = |t: &str| {
            let mut h = [0u8; 32];
            hex::decode_to_slice(t, &mut h)
                .map(|()| h)
                .map_err(|_| CheckpointError::Malformed(format!("{t:?} is not a hex hash")))
        };
        let nodes = self
            .frontier
            .iter()
            .map(|n| decode(n))
            .collect::<Result<Vec<_>, _>>()?;
        let frontier =
            Frontier::from_parts(self.last_seq, nodes).map_err(CheckpointError::Malformed)?;
        if frontier.root() != decode(&self.root_hash)? {
            return Err(CheckpointError::Malformed(
                "its frontier does not hash to its root".into(),
            ));
        }
        Ok(RetentionState {
            size: self.last_seq,
            frontier,
            last_leaf: decode(&self.last_leaf)?,
        })
    }

    fn sign(mut self, signer: &Signer) -> Self {
        self.key_id = signer.public_key().key_id();
        self.signature = hex::encode(signer.sign(self.signed_text().as_bytes()));
        self
    }
}

/// Every retention record of the stream in `dir`, oldest first, each
/// checked with `key` and against the one before it.
///
/// # Errors
///
/// Returns a one-line reason naming the record.
pub fn read_all(
    dir: &Path,
    key: &PublicKey,
) -> Result<Vec<(RetentionRecord, RetentionState)>, String> {
    let path = dir.join(RETENTION_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let (lines, torn) = split_lines(&bytes);
    if !torn.is_empty() {
        return Err(format!("{} ends inside a record", path.display()));
    }
    let mut out: Vec<(RetentionRecord, RetentionState)> = Vec::new();
    for (i, line) in lines.enumerate() {
        let at = || format!("retention record {} in {}", i + 1, path.display());
        let record: RetentionRecord = serde_json::from_slice(line)
            .map_err(|e| format!("{} is not a retention record: {e}", at()))?;
        let state = record.verify(key).map_err(|e| format!("{} {e}", at()))?;
        let expected_first = out.last().map_or(1, |(r, _)| r.last_seq + 1);
        if record.first_seq != expected_first || record.last_seq < record.first_seq {
            return Err(format!(
                "{} removes events {}..={}, but the removal before it ended at event {}",
                at(),
                record.first_seq,
                record.last_seq,
                expected_first - 1
            ));
        }
        out.push((record, state));
    }
    Ok(out)
}

/// The tree state left by the latest removal, if any.
pub(crate) fn read_latest(dir: &Path, key: &PublicKey) -> Result<Option<RetentionState>, String> {
    Ok(read_all(dir, key)?.pop().map(|(_, s)| s))
}

/// Deletes segments left over by a removal that a crash interrupted, and
/// drops them from `segments`.
pub(crate) fn finish_removal(
    dir: &Path,
    state: &RetentionState,
    segments: &mut Vec<(u64, PathBuf)>,
) -> std::io::Result<()> {
    let mut removed = false;
    while segments.len() > 1 && segments[1].0 <= state.size + 1 {
        std::fs::remove_file(&segments[0].1)?;
        segments.remove(0);
        removed = true;
    }
    if removed {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// See [`AuditLog::remove_expired`]. Returns the last removed sequence
/// number, or `None` when nothing was old enough.
pub(crate) fn remove_expired(
    log: &AuditLog,
    retention: Duration,
) -> Result<Option<u64>, AuditLogError> {
    let cutoff =
        now_unix_ms().saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    let dir = log.dir().to_owned();
    let io = |path: &Path, action, source| AuditLogError::Io {
        path: path.to_owned(),
        action,
        source,
    };
    let damaged = |reason: String| AuditLogError::Damaged {
        dir: dir.clone(),
        stream: log.stream().clone(),
        reason,
    };
    let period = format_period(retention);

    let removal = log.with_writer_quiet(|handle| {
        // The active segment is sealed when everything in it has expired,
        // so that a quiet stream's old events can go too.
        let active = handle.active_path().to_owned();
        let active_bytes = std::fs::read(&active).map_err(|e| io(&active, "read", e))?;
        if newest_time(&active_bytes).is_some_and(|t| t < cutoff) {
            handle.seal()?;
        }
        let segments = list_segments(&dir).map_err(|e| io(&dir, "list", e))?;
        let previous = read_all(&dir, log.signer().public_key()).map_err(damaged)?;
        let (mut frontier, mut last_leaf) = previous
            .last()
            .map_or((Frontier::new(), [0; 32]), |(_, s)| {
                (s.frontier.clone(), s.last_leaf)
            });
        let first_seq = frontier.size() + 1;

        let mut removable = Vec::new();
        // Never the last segment: it is the one being appended to.
        for (_, path) in segments.iter().take(segments.len().saturating_sub(1)) {
            let bytes = std::fs::read(path).map_err(|e| io(path, "read", e))?;
            if newest_time(&bytes).is_none_or(|t| t >= cutoff) {
                break;
            }
            let (lines, _) = split_lines(&bytes);
            for line in lines {
                let record =
                    Record::parse(line).map_err(|e| damaged(format!("{}: {e}", path.display())))?;
                if record.seq != frontier.size() + 1 {
                    return Err(damaged(format!(
                        "{} holds event {} where event {} belongs",
                        path.display(),
                        record.seq,
                        frontier.size() + 1
                    )));
                }
                last_leaf = leaf_hash(line);
                frontier.push(last_leaf);
            }
            removable.push(path.clone());
        }
        if removable.is_empty() || frontier.size() < first_seq {
            return Ok(None);
        }

        // A signature over everything first, so that the events about to
        // go were covered by a checkpoint while they existed.
        log.checkpoint()?;
        let record = RetentionRecord {
            stream: log.stream().name().to_owned(),
            first_seq,
            last_seq: frontier.size(),
            segments: removable
                .iter()
                .map(|p| {
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect(),
            retention: period.clone(),
            frontier: frontier.nodes().iter().map(hex::encode).collect(),
            last_leaf: hex::encode(last_leaf),
            root_hash: hex::encode(frontier.root()),
            time_unix_ms: now_unix_ms(),
            key_id: String::new(),
            signature: String::new(),
        }
        .sign(log.signer());
        append_record(&dir, &record)?;
        for path in &removable {
            std::fs::remove_file(path).map_err(|e| io(path, "remove", e))?;
        }
        sync_dir(&dir)?;
        Ok(Some(record))
    })?;

    let Some(record) = removal else {
        return Ok(None);
    };
    let scope = HostScope {
        tenant: log.stream().tenant().cloned(),
        component: "warden runtime".into(),
        invocation: format!("retention-{:x}", now_unix_ms()),
        actor: "warden".into(),
    };
    audit::emit_host(
        log,
        &scope,
        EventBody::RetentionRemoved {
            first_seq: record.first_seq,
            last_seq: record.last_seq,
            segments: record.segments.len() as u64,
            retention: period,
            root_hash: record.root_hash.clone(),
        },
    )
    .map_err(AuditLogError::Append)?;
    log.checkpoint()?;
    Ok(Some(record.last_seq))
}

fn append_record(dir: &Path, record: &RetentionRecord) -> Result<(), AuditLogError> {
    use std::io::Write as _;
    let path = dir.join(RETENTION_FILE);
    let io = |action, source| AuditLogError::Io {
        path: path.clone(),
        action,
        source,
    };
    let mut line =
        serde_json::to_vec(record).map_err(|e| io("encode", std::io::Error::other(e)))?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(|e| io("open", e))?;
    // Synced whatever the durability setting: the segments are deleted
    // next, and without the record the rest of the log could not verify.
    file.write_all(&line)
        .and_then(|()| file.sync_all())
        .map_err(|e| io("write", e))
}

/// A retention period as people write it: `90days`, `36h`, or humantime's
/// form for anything else (which turns days into months and days).
pub fn format_period(period: Duration) -> String {
    let secs = period.as_secs();
    if period.subsec_nanos() == 0 && secs > 0 && secs.is_multiple_of(86_400) {
        format!("{}days", secs / 86_400)
    } else if period.subsec_nanos() == 0 && secs > 0 && secs.is_multiple_of(3_600) {
        format!("{}h", secs / 3_600)
    } else {
        humantime::format_duration(period).to_string()
    }
}

/// Time of the last complete record in a segment's bytes.
fn newest_time(bytes: &[u8]) -> Option<u64> {
    let (lines, _) = split_lines(bytes);
    lines
        .last()
        .and_then(|l| Record::parse(l).ok()?.time_unix_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_print_as_operators_write_them() {
        let day = Duration::from_secs(86_400);
        assert_eq!(format_period(day * 90), "90days");
        assert_eq!(format_period(Duration::from_secs(36 * 3600)), "36h");
        assert_eq!(format_period(Duration::ZERO), "0s");
        assert_eq!(format_period(Duration::from_secs(90)), "1m 30s");
    }
}

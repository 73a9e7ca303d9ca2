//! The verifier: recomputes a stream's tree from its stored events and
//! checks it against every signed checkpoint.
//!
//! It trusts nothing in the data directory except, when none is given, the
//! public key file beside the signing key; an auditor passes their own copy
//! of the public key and a checkpoint they saved earlier, and then trusts
//! nothing the host holds. In one pass over the segments it checks, in this
//! order for each record:
//!
//! 1. the line is a record in canonical form;
//! 2. its sequence number is the next one (removed, duplicated or
//!    reordered events show here);
//! 3. it belongs to the stream's tenant (events copied from another log);
//! 4. its `prev` is the leaf hash of the record before (an edited event is
//!    named by the record after it);
//! 5. whenever the tree reaches the size of a checkpoint, the root matches
//!    the signed one (anything rewritten consistently, including a whole
//!    log rebuilt without the key, whose checkpoints then fail the
//!    signature or key check).
//!
//! At the end, a checkpoint larger than the log means events were cut off.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{
    checkpoint::{Checkpoint, CheckpointFileError, read_checkpoints},
    keys::{KeyError, PublicKey},
    merkle::{Frontier, Hash, leaf_hash},
    retention,
    stream::{CHECKPOINTS_FILE, MARKER_FILE, Record, StreamId, list_segments, split_lines},
};

/// What the verifier is given besides the log.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The public key to check signatures with. `None` uses the public key
    /// file in the data directory, which proves only that the log is
    /// consistent with itself: whoever can rewrite the log can rewrite that
    /// file too.
    pub public_key: Option<PublicKey>,
    /// A checkpoint saved earlier outside the host, with the file it came
    /// from (for messages): the log must extend it.
    pub trusted: Option<(PathBuf, Checkpoint)>,
}

/// A stream that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events in the log, counting those removed by retention.
    pub events: u64,
    /// Events removed by retention (events `1..=removed`).
    pub removed: u64,
    /// The tree's root hash.
    pub root: Hash,
    /// How many stored checkpoints were checked.
    pub checkpoints: usize,
    /// Size of the largest stored checkpoint.
    pub signed_size: u64,
    /// Id of the key that signed them.
    pub key_id: String,
    /// Size of the trusted checkpoint the log was shown to extend.
    pub extends: Option<u64>,
}

/// Why a stream did not verify. Each message names the event, file or
/// checkpoint at fault.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// There is no log for the stream.
    #[error("no audit log for {stream} at {dir}{hint}")]
    Missing {
        /// The stream.
        stream: StreamId,
        /// Where it was expected.
        dir: PathBuf,
        /// Why that matters.
        hint: String,
    },
    /// The directory is not a warden log.
    #[error("{dir} is not a warden audit log: {reason}")]
    NotAWardenLog {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The public key could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// One event is wrong.
    #[error("event {seq} ({at}) {problem}")]
    Event {
        /// Its sequence number, or the one expected at its place.
        seq: u64,
        /// File and line.
        at: String,
        /// What is wrong.
        problem: String,
    },
    /// The log as a whole disagrees with a checkpoint or record.
    #[error("audit log of {stream}: {problem}")]
    Log {
        /// The stream.
        stream: StreamId,
        /// What is wrong, naming the checkpoint or file.
        problem: String,
    },
}

impl From<CheckpointFileError> for VerifyError {
    fn from(e: CheckpointFileError) -> Self {
        match e {
            CheckpointFileError::Io { path, source, .. } => Self::Io { path, source },
            CheckpointFileError::Malformed { path, line, reason } => Self::NotAWardenLog {
                dir: path,
                reason: format!("line {line} is not a checkpoint ({reason})"),
            },
        }
    }
}

/// A root the tree must have when it reaches `size`.
struct Target {
    size: u64,
    root: Hash,
    /// Names the checkpoint in messages.
    what: String,
}

/// Verifies `stream` under `data_dir`. See the module docs.
///
/// # Example
///
/// An auditor's tool checking a tenant's log with the public key and a
/// checkpoint it kept itself:
///
/// ```no_run
/// use warden_runtime::{
///     TenantId,
///     audit::{Checkpoint, PublicKey, StreamId, VerifyOptions, verify},
/// };
///
/// let key = PublicKey::read("auditor/warden.pub".as_ref())?;
/// let saved = "auditor/acme-2026-06-30.json";
/// let options = VerifyOptions {
///     public_key: Some(key),
///     trusted: Some((saved.into(), Checkpoint::read_file(saved.as_ref())?)),
/// };
/// let stream = StreamId::Tenant(TenantId::new("acme")?);
/// let report = verify("/var/lib/warden".as_ref(), &stream, &options)?;
/// println!("{} events, root {}", report.events, hex::encode(report.root));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// Returns the first problem found, naming the event, file or checkpoint.
pub fn verify(
    data_dir: &Path,
    stream: &StreamId,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    let dir = stream.dir(data_dir);
    let log_err = |problem: String| VerifyError::Log {
        stream: stream.clone(),
        problem,
    };
    if !dir.exists() {
        let hint = match &options.trusted {
            Some((file, cp)) => format!(
                ", but checkpoint file {} covers {} events: the whole log was deleted",
                file.display(),
                cp.tree_size
            ),
            None if stream.tenant().is_some() => "; has the tenant run anything?".into(),
            None => "; nothing has been recorded yet".into(),
        };
        return Err(VerifyError::Missing {
            stream: stream.clone(),
            dir,
            hint,
        });
    }
    check_marker(&dir, stream)?;
    let key = match &options.public_key {
        Some(key) => *key,
        None => match PublicKey::read_from_data_dir(data_dir) {
            Err(KeyError::Io { path, source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(log_err(format!(
                    "there is no public key at {}; pass the operator's with --public-key FILE",
                    path.display()
                )));
            }
            other => other?,
        },
    };

    let mut targets = Vec::new();
    if let Some((file, cp)) = &options.trusted {
        cp.verify(&key)
            .map_err(|e| log_err(format!("checkpoint file {} {e}", file.display())))?;
        if cp.stream != stream.name() {
            return Err(log_err(format!(
                "checkpoint file {} is for stream {}, not {}",
                file.display(),
                cp.stream,
                stream.name()
            )));
        }
        targets.push(Target {
            size: cp.tree_size,
            root: cp
                .root()
                .map_err(|e| log_err(format!("checkpoint file {} {e}", file.display())))?,
            what: format!("checkpoint file {}", file.display()),
        });
    }

    let removed = retention::read_all(&dir, &key).map_err(&log_err)?;
    let (mut frontier, mut last_leaf) =
        removed.last().map_or((Frontier::new(), [0; 32]), |(_, s)| {
            (s.frontier.clone(), s.last_leaf)
        });
    let removed_size = frontier.size();

    let checkpoints_path = dir.join(CHECKPOINTS_FILE);
    let read = read_checkpoints(&checkpoints_path)?;
    if read.torn_bytes > 0 {
        return Err(log_err(format!(
            "{} ends inside a checkpoint; the next warden start cuts it off",
            checkpoints_path.display()
        )));
    }
    let mut signed_size = 0;
    for (i, stored) in read.stored.iter().enumerate() {
        let cp = &stored.checkpoint;
        let what = format!("checkpoint {} in {}", i + 1, checkpoints_path.display());
        cp.verify(&key)
            .map_err(|e| log_err(format!("{what} {e}")))?;
        if cp.stream != stream.name() {
            return Err(log_err(format!(
                "{what} is for stream {}: it was copied from another log",
                cp.stream
            )));
        }
        if cp.tree_size < signed_size {
            return Err(log_err(format!(
                "{what} covers {} events, fewer than the one before it ({signed_size}): \
                 checkpoints were reordered or the log was rolled back",
                cp.tree_size
            )));
        }
        signed_size = cp.tree_size;
        let root = cp.root().map_err(|e| log_err(format!("{what} {e}")))?;
        if cp.tree_size == removed_size && removed_size > 0 && root != frontier.root() {
            return Err(log_err(format!(
                "{what} does not match the signed retention record of events 1..{removed_size}"
            )));
        }
        // Older checkpoints cover events removed by retention; their roots
        // were checked when the removal signed its record.
        if cp.tree_size > removed_size {
            targets.push(Target {
                size: cp.tree_size,
                root,
                what,
            });
        }
    }
    if options.public_key.is_some() && read.stored.is_empty() && options.trusted.is_none() {
        return Err(log_err(format!(
            "{} holds no checkpoint, so nothing in it is signed by the given key",
            checkpoints_path.display()
        )));
    }
    targets.sort_by_key(|t| t.size);
    let mut targets = targets.into_iter().peekable();
    let mut matched: Option<u64> = None;

    let segments = list_segments(&dir).map_err(|source| VerifyError::Io {
        path: dir.clone(),
        source,
    })?;
    // Segments wholly removed by retention whose deletion a crash cut
    // short are not part of the log any more.
    let start = segments
        .iter()
        .rposition(|(first, _)| *first <= removed_size + 1)
        .unwrap_or(0);
    let tenant = stream.tenant().map(|t| t.as_str());
    // Where the previous record was, formatted only for a message.
    let mut last_at = (String::new(), 0);
    let mut buf = Vec::new();
    for (index, (first, path)) in segments.iter().enumerate().skip(start) {
        let name = file_name(path);
        let expected = frontier.size() + 1;
        if *first != expected {
            return Err(VerifyError::Event {
                seq: expected,
                at: name.clone(),
                problem: format!(
                    "is missing: the next segment file {name} starts at event {first}; events \
                     were removed here (a segment file was deleted or renamed)"
                ),
            });
        }
        // One buffer for every segment: a fresh one each time costs page
        // faults on tens of megabytes.
        buf.clear();
        std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut buf))
            .map_err(|source| VerifyError::Io {
                path: path.clone(),
                source,
            })?;
        let (lines, torn) = split_lines(&buf);
        let lines: Vec<&[u8]> = lines.collect();
        let leaves = leaf_hashes(&lines);
        for (n, (line, leaf)) in lines.iter().zip(&leaves).enumerate() {
            let expected = frontier.size() + 1;
            let at = || format!("{name} line {}", n + 1);
            let record = Record::parse(line).map_err(|e| VerifyError::Event {
                seq: expected,
                at: at(),
                problem: format!("is not a valid audit record: {e}"),
            })?;
            if record.seq != expected {
                let problem = if record.seq > expected {
                    format!(
                        "is missing: its place holds event {}; an event was removed or reordered \
                         here",
                        record.seq
                    )
                } else {
                    format!(
                        "is missing: its place holds event {} again; an event was duplicated or \
                         reordered here",
                        record.seq
                    )
                };
                return Err(VerifyError::Event {
                    seq: expected,
                    at: at(),
                    problem,
                });
            }
            if let Some(tenant) = tenant
                && record.tenant() != Some(tenant)
            {
                return Err(VerifyError::Event {
                    seq: expected,
                    at: at(),
                    problem: format!(
                        "belongs to tenant {:?}, not {tenant}: it was copied from another log",
                        record.tenant().unwrap_or("")
                    ),
                });
            }
            if !prev_is(record.prev, &last_leaf) {
                return Err(if expected == 1 {
                    VerifyError::Event {
                        seq: 1,
                        at: at(),
                        problem: "does not start the log: its prev is not all zeros".into(),
                    }
                } else if expected - 1 == removed_size {
                    VerifyError::Event {
                        seq: expected,
                        at: at(),
                        problem: "does not link to the last event removed by retention".into(),
                    }
                } else {
                    VerifyError::Event {
                        seq: expected - 1,
                        at: format!("{} line {}", last_at.0, last_at.1),
                        problem: format!(
                            "does not match the hash event {expected} recorded for it: the event \
                             was edited"
                        ),
                    }
                });
            }
            last_leaf = *leaf;
            frontier.push(last_leaf);
            if last_at.0 != name {
                last_at.0.clone_from(&name);
            }
            last_at.1 = n + 1;
            let size = frontier.size();
            while let Some(t) = targets.next_if(|t| t.size == size) {
                if frontier.root() != t.root {
                    return Err(log_err(mismatch(&t, matched)));
                }
                matched = Some(t.size);
            }
        }
        if !torn.is_empty() {
            let seq = frontier.size() + 1;
            let problem = if index + 1 == segments.len() {
                "is cut off: the log ends inside this record (a crash during a write); the next \
                 warden start cuts it off and records the recovery"
            } else {
                "is cut off: its segment ends inside this record"
            };
            return Err(VerifyError::Event {
                seq,
                at: name,
                problem: problem.into(),
            });
        }
    }
    if let Some(t) = targets.next() {
        return Err(log_err(format!(
            "the log ends at event {} but {} covers {} events: events {}..{} were cut off",
            frontier.size(),
            t.what,
            t.size,
            frontier.size() + 1,
            t.size
        )));
    }
    Ok(VerifyReport {
        events: frontier.size(),
        removed: removed_size,
        root: frontier.root(),
        checkpoints: read.stored.len(),
        signed_size,
        key_id: key.key_id(),
        extends: options.trusted.as_ref().map(|(_, cp)| cp.tree_size),
    })
}

/// Segments at least this many lines long are hashed on several threads.
const PARALLEL_LINES: usize = 4096;

/// The leaf hash of each line. Hashing is most of the verifier's work and
/// needs no order, so it runs on every core; the checks that do need
/// order then run over the results in one pass.
fn leaf_hashes(lines: &[&[u8]]) -> Vec<Hash> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads == 1 || lines.len() < PARALLEL_LINES {
        return lines.iter().map(|l| leaf_hash(l)).collect();
    }
    let mut out = vec![[0u8; 32]; lines.len()];
    let chunk = lines.len().div_ceil(threads);
    std::thread::scope(|s| {
        for (lines, out) in lines.chunks(chunk).zip(out.chunks_mut(chunk)) {
            s.spawn(move || {
                for (line, leaf) in lines.iter().zip(out) {
                    *leaf = leaf_hash(line);
                }
            });
        }
    });
    out
}

/// Whether the hex `prev` of a record names `leaf`, without allocating:
/// this runs once per event.
fn prev_is(prev: &[u8], leaf: &Hash) -> bool {
    let mut hex = [0u8; 64];
    // Encoding 32 bytes is cheaper than decoding 64 digits with checks,
    // and a record's prev must be in lower-case hex anyway.
    hex::encode_to_slice(leaf, &mut hex).is_ok() && prev == hex
}

fn mismatch(t: &Target, matched: Option<u64>) -> String {
    let since = match matched {
        Some(m) => format!(
            "; everything up to event {m} still matches, so the change lies in events {}..{}",
            m + 1,
            t.size
        ),
        None => String::new(),
    };
    format!(
        "events 1..{} do not hash to the root signed in {}: an event was edited, removed or \
         reordered, or the log was rebuilt{since}",
        t.size, t.what
    )
}

fn check_marker(dir: &Path, stream: &StreamId) -> Result<(), VerifyError> {
    let path = dir.join(MARKER_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text == stream.marker_text() => Ok(()),
        Ok(_) => Err(VerifyError::NotAWardenLog {
            dir: dir.to_owned(),
            reason: format!(
                "its {MARKER_FILE} does not name the stream {}",
                stream.name()
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(VerifyError::NotAWardenLog {
            dir: dir.to_owned(),
            reason: format!("it has no {MARKER_FILE} file"),
        }),
        Err(source) => Err(VerifyError::Io { path, source }),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Calls `visit` with each stored record of `stream` in order, with light
/// checks only (canonical form, sequence order); [`verify`] is the full
/// check. Used to show, export and prove.
///
/// # Errors
///
/// Fails on a missing or unreadable log, a record out of place, or the
/// first error `visit` returns.
pub fn for_each_record(
    data_dir: &Path,
    stream: &StreamId,
    mut visit: impl FnMut(&Record<'_>, &[u8]) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    let dir = stream.dir(data_dir);
    if !dir.exists() {
        return Err(VerifyError::Missing {
            stream: stream.clone(),
            dir,
            hint: "; has anything been recorded?".into(),
        });
    }
    check_marker(&dir, stream)?;
    let mut expected = None;
    for (_, path) in list_segments(&dir).map_err(|source| VerifyError::Io {
        path: dir.clone(),
        source,
    })? {
        let bytes = std::fs::read(&path).map_err(|source| VerifyError::Io {
            path: path.clone(),
            source,
        })?;
        let (lines, _) = split_lines(&bytes);
        for (n, line) in lines.enumerate() {
            let record = Record::parse(line).map_err(|e| VerifyError::Event {
                seq: expected.unwrap_or(0),
                at: format!("{} line {}", file_name(&path), n + 1),
                problem: format!("is not a valid audit record: {e}; run `warden audit verify`"),
            })?;
            if expected.is_some_and(|e| e != record.seq) {
                return Err(VerifyError::Event {
                    seq: expected.unwrap_or(0),
                    at: format!("{} line {}", file_name(&path), n + 1),
                    problem: "is out of place; run `warden audit verify`".into(),
                });
            }
            expected = Some(record.seq + 1);
            visit(&record, line)?;
        }
    }
    Ok(())
}

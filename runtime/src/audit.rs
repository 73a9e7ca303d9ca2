//! Per-tenant audit logs: append-only files of hash-chained events.
//!
//! Each tenant has one file, `<data-dir>/audit/<tenant>.log`, holding one
//! JSON object per line:
//!
//! ```text
//! {"seq":1,"prev":"00…00","hash":"9f…","event":{…}}
//! ```
//!
//! `hash` is sha256 over [`CHAIN_DOMAIN`], the previous line's hash (32 raw
//! bytes, zeros for the first line), `seq` as 8 big-endian bytes, and the
//! exact bytes of `event` as stored. Editing, removing or reordering a line
//! therefore breaks the chain at that line, which [`verify`] reports.
//!
//! The event type and the append path stay behind this module so that a
//! later log format (a Merkle tree with signed checkpoints) replaces them
//! without touching the capabilities.
//!
//! Writes go to the file as each event is emitted, before the call it records
//! touches any backend; [`AuditLog::sync`] flushes them to the disk before an
//! invocation returns. A process holds an exclusive lock on the file while it
//! appends, so that two processes cannot interleave two chains.

mod verify;

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};
use thiserror::Error;
use warden_host_api::{
    audit::{AuditError, AuditEvent, AuditSink},
    scope::TenantId,
};

pub use verify::{VerifyError, VerifyReport, verify};

/// Domain separator hashed before every chain link, so that a chain hash can
/// never be confused with a sha256 of some other warden structure.
pub const CHAIN_DOMAIN: &[u8] = b"warden-audit-chain-v1\n";

/// How far back from the end of a log to look for its last line on open.
/// Larger than any single event, whose text fields are all bounded.
const TAIL_WINDOW_BYTES: u64 = 256 * 1024;

/// One stored line, as read back. `event` keeps its exact bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredLine<'a> {
    /// Position in the tenant's log, from 1.
    pub seq: u64,
    /// Hex hash of the previous line.
    pub prev: String,
    /// Hex hash of this line.
    pub hash: String,
    /// The event's JSON, exactly as hashed.
    #[serde(borrow)]
    pub event: &'a RawValue,
}

#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    prev: &'a str,
    hash: &'a str,
    event: &'a RawValue,
}

/// Computes a line's chain hash.
pub fn chain_hash(prev: &[u8; 32], seq: u64, event_json: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CHAIN_DOMAIN);
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(event_json);
    h.finalize().into()
}

/// An audit log could not be opened or written.
#[derive(Debug, Error)]
pub enum AuditLogError {
    /// An I/O operation failed.
    #[error("audit log {path}: cannot {action}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the log.
    #[error("audit log {0} is in use by another warden process; wait for it to finish or stop it")]
    Locked(PathBuf),
    /// The log's last line is not a complete record.
    #[error("audit log {path}: last record is damaged ({reason}); run `warden audit verify`")]
    DamagedTail {
        /// The log file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Path of `tenant`'s log under `data_dir`.
pub fn log_path(data_dir: &Path, tenant: &TenantId) -> PathBuf {
    data_dir.join("audit").join(format!("{tenant}.log"))
}

struct Tail {
    file: File,
    next_seq: u64,
    last_hash: [u8; 32],
    unsynced: bool,
}

/// One tenant's open audit log, ready to append.
pub struct AuditLog {
    tenant: TenantId,
    path: PathBuf,
    tail: Mutex<Tail>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("tenant", &self.tenant)
            .field("path", &self.path)
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating if needed) `tenant`'s log under `data_dir` and locks it
    /// for appending.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be created or read, when another process
    /// holds it, or when its last line is damaged.
    pub fn open(data_dir: &Path, tenant: &TenantId) -> Result<Self, AuditLogError> {
        let path = log_path(data_dir, tenant);
        let io = |action, source| AuditLogError::Io {
            path: path.clone(),
            action,
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("create its directory", e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(AuditLogError::Locked(path)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        let (next_seq, last_hash) = read_tail(&mut file, &path)?;
        Ok(Self {
            tenant: tenant.clone(),
            path,
            tail: Mutex::new(Tail {
                file,
                next_seq,
                last_hash,
                unsynced: false,
            }),
        })
    }

    /// The tenant this log belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes appended events to the disk.
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be synced; the caller must then report the
    /// invocation as failed, since its record may not survive a crash.
    pub fn sync(&self) -> Result<(), AuditLogError> {
        let mut tail = self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tail.unsynced {
            tail.file.sync_data().map_err(|source| AuditLogError::Io {
                path: self.path.clone(),
                action: "sync",
                source,
            })?;
            tail.unsynced = false;
        }
        Ok(())
    }

    fn append_line(&self, event: &AuditEvent) -> Result<(), String> {
        if event.tenant != self.tenant.as_str() {
            return Err(format!(
                "event for tenant {} sent to this log; this is a warden bug, please report it",
                event.tenant
            ));
        }
        let json = serde_json::to_string(event).map_err(|e| format!("cannot encode event: {e}"))?;
        let raw = RawValue::from_string(json).map_err(|e| format!("cannot encode event: {e}"))?;

        // A panic elsewhere while holding the lock leaves the tail as it was
        // before the failed append, which is still a valid chain end.
        let mut tail = self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seq = tail.next_seq;
        let hash = chain_hash(&tail.last_hash, seq, raw.get().as_bytes());
        let mut line = serde_json::to_vec(&LineOut {
            seq,
            prev: &hex::encode(tail.last_hash),
            hash: &hex::encode(hash),
            event: &raw,
        })
        .map_err(|e| format!("cannot encode line: {e}"))?;
        line.push(b'\n');
        // One write of the whole line: with O_APPEND the kernel places it at
        // the end in one piece, so a crash leaves at most one torn line.
        tail.file
            .write_all(&line)
            .map_err(|e| format!("cannot write: {e}"))?;
        tail.next_seq += 1;
        tail.last_hash = hash;
        tail.unsynced = true;
        Ok(())
    }
}

impl AuditSink for AuditLog {
    fn append(&self, event: &AuditEvent) -> Result<(), AuditError> {
        self.append_line(event).map_err(|reason| {
            tracing::error!(tenant = %self.tenant, path = %self.path.display(), %reason, "audit append failed");
            AuditError { tenant: self.tenant.to_string(), reason }
        })
    }
}

/// Finds the sequence number and hash that the next append continues from.
fn read_tail(file: &mut File, path: &Path) -> Result<(u64, [u8; 32]), AuditLogError> {
    let io = |action, source| AuditLogError::Io {
        path: path.to_owned(),
        action,
        source,
    };
    let damaged = |reason: String| AuditLogError::DamagedTail {
        path: path.to_owned(),
        reason,
    };
    let len = file
        .metadata()
        .map_err(|e| io("read metadata of", e))?
        .len();
    if len == 0 {
        return Ok((1, [0; 32]));
    }
    let start = len.saturating_sub(TAIL_WINDOW_BYTES);
    file.seek(SeekFrom::Start(start))
        .map_err(|e| io("seek in", e))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(|e| io("read", e))?;
    let Some(body) = buf.strip_suffix(b"\n") else {
        return Err(damaged("it does not end with a newline".into()));
    };
    let last = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return Err(damaged("last line is longer than any event can be".into())),
    };
    let line: StoredLine<'_> =
        serde_json::from_slice(last).map_err(|e| damaged(format!("not a record: {e}")))?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&line.hash, &mut hash)
        .map_err(|_| damaged("its hash is not 64 hex digits".into()))?;
    Ok((line.seq + 1, hash))
}

//! Per-tenant audit logs: RFC 6962 Merkle logs with signed checkpoints.
//!
//! Every tenant has its own stream, and the control plane (operators
//! reading or exporting logs) has one more, `_control`. A stream is an
//! append-only Merkle tree whose leaves are its events, stored as canonical
//! JSON lines in segment files ([`stream`] has the layout and encoding).
//! The pieces:
//!
//! - [`merkle`]: the RFC 6962 tree hash, inclusion and consistency proofs;
//! - [`keys`]: the Ed25519 signing key (made on first use, mode 0600) and
//!   public key files;
//! - [`checkpoint`]: signed (stream, tree size, root hash, time) statements;
//! - [`AuditLog`] (in `log.rs`): one stream open for appending, with group
//!   commit, crash recovery and checkpoints at a configured interval, when a
//!   segment is sealed, on shutdown and on demand;
//! - [`AuditLogs`] (in `registry.rs`): the open streams of one data
//!   directory, the signing key, and the background checkpoint timer;
//! - [`InvocationLog`] (in `invocation.rs`): one invocation's events,
//!   appended to its tenant's log in batches at barriers;
//! - [`retention`]: removing whole sealed segments past a tenant's
//!   retention period, leaving a signed record so the rest still verifies;
//! - [`verify()`]: the independent verifier, also the library entry point
//!   for an auditor's own tool;
//! - [`proof`]: inclusion and consistency proofs from a stored stream;
//! - [`export`]: an excerpt by time range with its checkpoint and proofs,
//!   verifiable on its own.
//!
//! Durability: an invocation's events are durable before any effect of
//! the invocation can be seen outside it; [`AuditDurability`] says exactly
//! when, and [`AuditDurability::OsBuffered`] trades the sync for speed in
//! benchmarks. If the log cannot be written the effect does not happen
//! (fail closed).

pub mod checkpoint;
pub mod export;
mod invocation;
pub mod keys;
mod log;
pub mod merkle;
pub mod proof;
mod registry;
pub mod retention;
pub mod stream;
mod verify;

use std::{
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use thiserror::Error;
use warden_host_api::audit::AuditError;

pub use checkpoint::{Checkpoint, CheckpointError, CheckpointFileError};
pub use invocation::{InvocationLog, MAX_HELD_EVENT_BYTES};
pub use keys::{KeyError, PublicKey, Signer};
pub use log::AuditLog;
pub use registry::{AuditLogs, CONTROL_COMPONENT};
pub use stream::{StreamId, segment_name};
pub use verify::{VerifyError, VerifyOptions, VerifyReport, for_each_record, verify};

/// When audit events reach the disk.
///
/// # The guarantee
///
/// Every event of an invocation is recorded, in order, before the call it
/// records touches a backend, and is durable before any effect of the
/// invocation can be seen outside it:
///
/// 1. before its record writes are committed, every event up to the
///    commit is durable (the commit is applied only if they are);
/// 2. before an outgoing `wasi:http` request is sent, every event up to
///    and including that request's decision is durable;
/// 3. before the invocation returns to its caller (an output, an error or
///    a trap), every one of its events, the finish event included, is
///    durable.
///
/// Between these barriers an invocation's events are held in memory (see
/// [`InvocationLog`]) and appended as one batch at the next barrier: one
/// `write` and, when synced, one `fdatasync` shared with every concurrent
/// appender of the stream (group commit), instead of one per event. A
/// crash loses at most the events since the last barrier, and none of
/// what they describe left the invocation: no write of it was committed,
/// no request of it was sent, its caller got no answer. A crash between a
/// commit and the next barrier leaves the write's events without the
/// `commit` event; the writes are then on record, their commit is not.
///
/// Events the runtime records outside an invocation (recovery, retention,
/// operators' reads in the control stream) are appended one at a time,
/// durable before the action they record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditDurability {
    /// "Durable" means synced to the disk: each barrier's batch is synced
    /// (in a group commit with concurrent appenders) before the effect
    /// goes ahead. The default.
    #[default]
    Synced,
    /// "Durable" means written to the file but left in the OS page cache:
    /// events survive a crash of warden, not of the machine. Meant for
    /// benchmarks and tests, not for evidence.
    OsBuffered,
}

/// Default largest segment file before it is sealed: 64 MiB.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Default longest time a segment stays active before it is sealed: 1 day.
/// Retention removes whole segments, so this is its granularity.
pub const DEFAULT_MAX_SEGMENT_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default interval between checkpoints of a stream that grew: 60 s.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// How audit logs are written and kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// When appends reach the disk. Default [`AuditDurability::Synced`].
    pub durability: AuditDurability,
    /// Size at which the active segment is sealed and a new one started, in
    /// bytes. Default [`DEFAULT_MAX_SEGMENT_BYTES`] (64 MiB).
    pub max_segment_bytes: u64,
    /// Age of its first event at which the active segment is sealed.
    /// Default [`DEFAULT_MAX_SEGMENT_AGE`] (1 day).
    pub max_segment_age: Duration,
    /// How often a stream that grew gets a signed checkpoint. Default
    /// [`DEFAULT_CHECKPOINT_INTERVAL`] (60 s).
    pub checkpoint_interval: Duration,
    /// Retention period per tenant: sealed segments whose events are all
    /// older are removed at each checkpoint tick. A tenant not listed keeps
    /// its events forever, which is the default for every tenant.
    ///
    /// TODO: the tenant configuration file (`tenants/<id>.toml`) has no
    /// retention field yet, so a CLI user cannot set a period that the timer
    /// applies; meanwhile embedders set it here and operators run
    /// `warden audit prune --retention`.
    pub retention: Vec<(warden_host_api::scope::TenantId, Duration)>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            durability: AuditDurability::default(),
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
            max_segment_age: DEFAULT_MAX_SEGMENT_AGE,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            retention: Vec::new(),
        }
    }
}

/// An audit log could not be opened or written.
#[derive(Debug, Error)]
pub enum AuditLogError {
    /// An I/O operation failed.
    #[error("audit log file {path}: cannot {action}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the log.
    #[error(
        "audit log {0} is in use by another warden process; wait for it to finish or stop it \
         (while `warden serve` runs, make changes through its API)"
    )]
    Locked(PathBuf),
    /// The directory exists but is not a warden audit log.
    #[error("{dir} is not a warden audit log: {reason}; check --data-dir")]
    NotAWardenLog {
        /// The directory.
        dir: PathBuf,
        /// Why not.
        reason: String,
    },
    /// The log is damaged in a way a crash does not explain.
    #[error("audit log of {stream} at {dir} is damaged: {reason}; run `warden audit verify`")]
    Damaged {
        /// The stream's directory.
        dir: PathBuf,
        /// The stream.
        stream: StreamId,
        /// What is wrong.
        reason: String,
    },
    /// The log stopped after a failed write.
    #[error("audit log of {stream} stopped after a failed write ({reason}); restart warden")]
    Failed {
        /// The stream.
        stream: StreamId,
        /// The write error.
        reason: String,
    },
    /// The signing key could not be loaded or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The checkpoints file could not be read or written.
    #[error(transparent)]
    Checkpoints(#[from] CheckpointFileError),
    /// An event the runtime itself records could not be appended.
    #[error(transparent)]
    Append(AuditError),
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

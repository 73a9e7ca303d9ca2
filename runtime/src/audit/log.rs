//! [`AuditLog`]: one stream open for appending, with group commit.
//!
//! # Appending
//!
//! An appender serializes its event, then under one short lock takes the
//! next sequence number and copies the event into a pending batch. Whoever
//! finds no write in progress becomes the leader: it takes the whole pending
//! batch, encodes the records and their leaf hashes (each record names the
//! one before it, so this is sequential), writes them with one `write` and
//! one `fdatasync`, and unparks everybody whose record it carried, handing
//! the lead to one of the appenders that gathered meanwhile. The number of
//! syncs per second so stays near the disk's sync rate however many
//! appenders there are (group commit, as in database write-ahead logs). A
//! woken appender reads an atomic to learn that its record is on disk, so
//! that hundreds of them do not queue for the lock at once.
//!
//! An append returns only once its batch is synced (or, with
//! [`AuditDurability::OsBuffered`], written). One append may carry several
//! events: an invocation hands over the events it held since its last
//! barrier as consecutive records (see `invocation.rs`). If a write or a sync fails the log
//! stops accepting appends: after a failed `fsync` the kernel may have
//! dropped the dirty pages, so nothing written since the last good sync can
//! be trusted until the log is opened again and its tail recovered. Every
//! call after that fails closed.
//!
//! # Opening and recovery
//!
//! Opening locks the stream's marker file (one appending process per
//! stream), resumes the tree from the latest checkpoint's stored frontier,
//! and reads only the records after it. A record cut short at the very end
//! of the last segment is what a crash during a write leaves; it was never
//! acknowledged, so it is cut off and the recovery is recorded as an event.
//! Anything else out of place (a gap, a broken link, a record covered by a
//! checkpoint that is no longer there) is not a crash but damage: the log
//! refuses to open and names it, and `warden audit verify` says more.

use std::{
    fs::{File, OpenOptions},
    io::{Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    thread::Thread,
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use warden_host_api::audit::{self, AuditError, AuditEvent, AuditSink, EventBody, HostScope};

use super::{
    AuditDurability, AuditLogError, AuditOptions,
    checkpoint::{
        Checkpoint, StoredCheckpoint, append_checkpoint, open_checkpoints, read_checkpoints,
    },
    keys::Signer,
    merkle::{Frontier, Hash, leaf_hash},
    now_unix_ms, retention,
    stream::{
        CHECKPOINTS_FILE, MARKER_FILE, RETENTION_FILE, Record, StreamId, list_segments,
        segment_name, split_lines,
    },
};

/// How long opening waits for another process to let go of a stream.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// State shared by appenders, under [`AuditLog::state`].
struct State {
    /// Sequence number the next append gets.
    next_seq: u64,
    /// Events (their JSON, back to back) not yet handed to a leader.
    pending: Vec<u8>,
    /// Where each pending event ends in `pending`.
    pending_ends: Vec<usize>,
    /// Cleared buffers to swap in for the pending ones, so that batches
    /// reuse their allocations.
    spare: (Vec<u8>, Vec<usize>),
    /// The appenders waiting for the pending events, parked until their
    /// batch is on disk or they are handed the lead.
    pending_waiters: Vec<Thread>,
    /// The tree over the events known to be on disk.
    durable: Frontier,
    /// Leaf hash of the last durable event.
    durable_last_leaf: Hash,
    /// Whether a leader is writing a batch.
    flushing: bool,
    /// Why the log stopped accepting appends, once a write failed.
    failed: Option<String>,
    /// Set when a segment was sealed or the checkpoint interval passed:
    /// the appender that sees it signs a checkpoint.
    checkpoint_due: bool,
    /// When the latest checkpoint was signed (or the log opened). Kept
    /// here rather than read from [`Checkpoints`] so that a leader holding
    /// this lock never waits for that one (lock order: writer, then
    /// checkpoints, then state).
    checkpoint_signed_at: Instant,
}

/// The active segment, written only by the current leader.
struct Writer {
    file: File,
    path: PathBuf,
    bytes: u64,
    /// Time of the segment's first event; `None` while it is empty.
    started_ms: Option<u64>,
}

/// What only the leader touches while it encodes a batch.
struct Encoder {
    /// Leaf hash of the last event encoded, the next record's `prev`.
    last_leaf: Hash,
    /// The batch's encoded lines.
    lines: Vec<u8>,
    /// The batch's leaf hashes.
    leaves: Vec<Hash>,
}

/// The checkpoints file and the latest checkpoint signed.
struct Checkpoints {
    file: File,
    path: PathBuf,
    latest: Option<Checkpoint>,
}

/// One stream's log, open for appending. See the module docs.
pub struct AuditLog {
    stream: StreamId,
    dir: PathBuf,
    options: AuditOptions,
    signer: Arc<Signer>,
    state: Mutex<State>,
    /// The last sequence number on disk, readable without the state lock so
    /// that a woken appender whose event is on disk returns at once instead
    /// of queueing for the lock behind every other one.
    durable_seq: AtomicU64,
    writer: Mutex<Writer>,
    encoder: Mutex<Encoder>,
    checkpoints: Mutex<Checkpoints>,
    /// The locked marker file; the lock lives as long as the handle.
    _marker: File,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("stream", &self.stream)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state is updated only after each step succeeded, so a
    // panic elsewhere leaves it consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What open found to recover.
struct Recovered {
    file: String,
    cut: Vec<u8>,
    cut_seq: Option<u64>,
}

impl AuditLog {
    /// Opens (creating if needed) `stream`'s log under `data_dir`, locks it
    /// for appending, and recovers a torn last record.
    ///
    /// # Errors
    ///
    /// Fails when the directory is not a warden log, another process holds
    /// it, a file cannot be read or written, or the log is damaged in a way
    /// a crash cannot explain.
    pub fn open(
        data_dir: &Path,
        stream: &StreamId,
        options: &AuditOptions,
        signer: Arc<Signer>,
    ) -> Result<Self, AuditLogError> {
        let dir = stream.dir(data_dir);
        let io = |path: &Path, action, source| AuditLogError::Io {
            path: path.to_owned(),
            action,
            source,
        };
        let damaged = |reason: String| AuditLogError::Damaged {
            dir: dir.clone(),
            stream: stream.clone(),
            reason,
        };
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, "create", e))?;
        let marker = open_marker(&dir, stream)?;

        let mut recovered = Vec::new();
        // A retention record is synced before any file is removed, so a
        // torn one means the removal never started.
        let retention_path = dir.join(RETENTION_FILE);
        let torn = torn_tail_len(&retention_path).map_err(|e| io(&retention_path, "read", e))?;
        if torn > 0 {
            recovered.push(Recovered {
                file: RETENTION_FILE.into(),
                cut: truncate_tail(&retention_path, torn)?,
                cut_seq: None,
            });
        }
        let retained = retention::read_latest(&dir, signer.public_key()).map_err(damaged)?;
        let checkpoints_path = dir.join(CHECKPOINTS_FILE);
        let read = read_checkpoints(&checkpoints_path)?;
        if read.torn_bytes > 0 {
            let cut = truncate_tail(&checkpoints_path, read.torn_bytes)?;
            recovered.push(Recovered {
                file: CHECKPOINTS_FILE.into(),
                cut,
                cut_seq: None,
            });
        }
        let latest = read.stored.last().cloned();
        if let Some(stored) = &latest {
            stored
                .checkpoint
                .verify(signer.public_key())
                .map_err(|e| damaged(format!("its latest checkpoint {e}")))?;
        }
        let (frontier, last_leaf) = match (&latest, &retained) {
            (Some(stored), r)
                if r.as_ref()
                    .is_none_or(|r| r.size <= stored.checkpoint.tree_size) =>
            {
                stored
                    .resume_state()
                    .map_err(|e| damaged(format!("its latest checkpoint cannot be resumed: {e}")))?
            }
            (_, Some(r)) => (r.frontier.clone(), r.last_leaf),
            (_, None) => (Frontier::new(), [0; 32]),
        };

        let mut segments = list_segments(&dir).map_err(|e| io(&dir, "list", e))?;
        if let Some(r) = &retained {
            retention::finish_removal(&dir, r, &mut segments).map_err(|e| io(&dir, "remove", e))?;
        }
        let retained_size = retained.as_ref().map_or(0, |r| r.size);
        let scan = scan_tail(&segments, &frontier, &last_leaf, retained_size).map_err(damaged)?;
        if let Some((path, cut_seq, torn)) = &scan.torn {
            let cut = truncate_tail(path, *torn)?;
            recovered.push(Recovered {
                file: file_name(path),
                cut,
                cut_seq: Some(*cut_seq),
            });
        }

        let next_seq = scan.frontier.size() + 1;
        let writer = match segments.last() {
            Some((_, path)) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| io(path, "open", e))?;
                let bytes = file
                    .metadata()
                    .map_err(|e| io(path, "read metadata of", e))?
                    .len();
                Writer {
                    file,
                    path: path.clone(),
                    bytes,
                    started_ms: scan.active_started_ms,
                }
            }
            None => new_segment(&dir, next_seq)?,
        };
        let checkpoints = Checkpoints {
            file: open_checkpoints(&checkpoints_path)?,
            path: checkpoints_path,
            latest: latest.map(|s| s.checkpoint),
        };
        let log = Self {
            stream: stream.clone(),
            dir,
            options: options.clone(),
            signer,
            state: Mutex::new(State {
                next_seq,
                pending: Vec::new(),
                pending_ends: Vec::new(),
                spare: (Vec::new(), Vec::new()),
                pending_waiters: Vec::new(),
                durable: scan.frontier,
                durable_last_leaf: scan.last_leaf,
                flushing: false,
                failed: None,
                checkpoint_due: false,
                checkpoint_signed_at: Instant::now(),
            }),
            durable_seq: AtomicU64::new(next_seq - 1),
            writer: Mutex::new(writer),
            encoder: Mutex::new(Encoder {
                last_leaf: scan.last_leaf,
                lines: Vec::new(),
                leaves: Vec::new(),
            }),
            checkpoints: Mutex::new(checkpoints),
            _marker: marker,
        };
        for r in recovered {
            log.record_recovery(r)?;
        }
        Ok(log)
    }

    fn record_recovery(&self, r: Recovered) -> Result<(), AuditLogError> {
        tracing::warn!(
            stream = self.stream.name(),
            file = %r.file,
            cut_bytes = r.cut.len(),
            "audit log recovered: cut a torn record"
        );
        let scope = HostScope {
            tenant: self.stream.tenant().cloned(),
            component: "warden runtime".into(),
            invocation: format!("recovery-{:x}", now_unix_ms()),
            actor: "warden".into(),
        };
        let body = EventBody::LogRecovered {
            file: r.file,
            cut_bytes: r.cut.len() as u64,
            cut_digest: hex::encode(Sha256::digest(&r.cut)),
            cut_seq: r.cut_seq,
        };
        audit::emit_host(self, &scope, body).map_err(AuditLogError::Append)
    }

    /// The stream this log holds.
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// The stream's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many events are on disk.
    pub fn size(&self) -> u64 {
        lock(&self.state).durable.size()
    }

    /// Makes every acknowledged append durable.
    ///
    /// With [`AuditDurability::Synced`] there is nothing to do: each append
    /// was synced before it returned. With [`AuditDurability::OsBuffered`]
    /// this syncs the active segment, for a caller that wants the events so
    /// far on disk before it goes ahead (for example before committing an
    /// invocation's writes).
    ///
    /// # Errors
    ///
    /// Fails when the segment cannot be synced.
    pub fn sync(&self) -> Result<(), AuditLogError> {
        if self.options.durability == AuditDurability::Synced {
            return Ok(());
        }
        let writer = lock(&self.writer);
        writer.file.sync_data().map_err(|source| AuditLogError::Io {
            path: writer.path.clone(),
            action: "sync",
            source,
        })
    }

    /// Signs a checkpoint of everything on disk, unless the latest one
    /// already covers it, and returns the latest checkpoint.
    ///
    /// # Errors
    ///
    /// Fails when the checkpoints file cannot be written.
    pub fn checkpoint(&self) -> Result<Checkpoint, AuditLogError> {
        let mut cps = lock(&self.checkpoints);
        let (frontier, last_leaf) = {
            let st = lock(&self.state);
            (st.durable.clone(), st.durable_last_leaf)
        };
        if let Some(latest) = &cps.latest
            && latest.tree_size == frontier.size()
        {
            return Ok(latest.clone());
        }
        let checkpoint = Checkpoint::sign(
            &self.signer,
            self.stream.name(),
            frontier.size(),
            &frontier.root(),
            now_unix_ms(),
        );
        let stored = StoredCheckpoint::new(checkpoint.clone(), &frontier, &last_leaf);
        let sync = self.options.durability == AuditDurability::Synced;
        let cps = &mut *cps;
        append_checkpoint(&mut cps.file, &cps.path, &stored, sync)?;
        cps.latest = Some(checkpoint.clone());
        lock(&self.state).checkpoint_signed_at = Instant::now();
        Ok(checkpoint)
    }

    /// Signs a checkpoint when events arrived since the latest one.
    ///
    /// # Errors
    ///
    /// Fails when the checkpoints file cannot be written.
    pub fn checkpoint_if_grown(&self) -> Result<(), AuditLogError> {
        let size = self.size();
        let covered = lock(&self.checkpoints)
            .latest
            .as_ref()
            .map_or(0, |c| c.tree_size);
        if size > covered {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Removes the sealed segments whose every event is older than
    /// `retention`, leaving a signed retention record; see
    /// [`retention`](super::retention).
    ///
    /// # Errors
    ///
    /// Fails when a file cannot be read, written or removed, or the record
    /// of the removal cannot be appended.
    pub fn remove_expired(&self, retention: Duration) -> Result<Option<u64>, AuditLogError> {
        retention::remove_expired(self, retention)
    }

    pub(crate) fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Runs `f` with the writer locked and no batch in flight, so that
    /// segment files can be sealed or removed under it.
    pub(crate) fn with_writer_quiet<R>(
        &self,
        f: impl FnOnce(&mut SealHandle<'_>) -> Result<R, AuditLogError>,
    ) -> Result<R, AuditLogError> {
        let mut st = lock(&self.state);
        while st.flushing {
            // Sealing and retention are rare; polling keeps the appenders'
            // path free of anything they would have to signal.
            drop(st);
            std::thread::sleep(Duration::from_millis(1));
            st = lock(&self.state);
        }
        if let Some(reason) = &st.failed {
            return Err(AuditLogError::Failed {
                stream: self.stream.clone(),
                reason: reason.clone(),
            });
        }
        // Hold the flag so that no appender becomes leader meanwhile; the
        // records they add stay pending until the flag drops.
        st.flushing = true;
        let durable_seq = st.durable.size();
        drop(st);
        let result = {
            let mut writer = lock(&self.writer);
            let mut handle = SealHandle {
                log: self,
                writer: &mut writer,
                durable_seq,
            };
            f(&mut handle)
        };
        let mut st = lock(&self.state);
        st.flushing = false;
        // Whoever queued meanwhile needs a leader.
        let next_leader = st.pending_waiters.first().cloned();
        drop(st);
        if let Some(t) = next_leader {
            t.unpark();
        }
        result
    }

    /// Refuses an event of another tenant: each tenant's events go to its
    /// own stream only.
    pub(crate) fn check_tenant(&self, tenant: &str) -> Result<(), String> {
        match self.stream.tenant() {
            Some(own) if tenant != own.as_str() => Err(format!(
                "event for tenant {tenant} sent to the log of tenant {own}; this is a warden bug, \
                 please report it"
            )),
            _ => Ok(()),
        }
    }

    fn append_event(&self, event: &AuditEvent) -> Result<(), String> {
        self.check_tenant(&event.tenant)?;
        let json = serde_json::to_vec(event).map_err(|e| format!("cannot encode event: {e}"))?;
        self.append_encoded(&json, &[json.len()])
    }

    /// Appends events already encoded as JSON, back to back in `json`,
    /// each ending at the matching offset in `ends`, as consecutive
    /// records; returns once all of them are on disk (synced or written,
    /// as the log's durability says). The caller checked their tenant.
    pub(crate) fn append_encoded(&self, json: &[u8], ends: &[usize]) -> Result<(), String> {
        let Some(count) = u64::try_from(ends.len()).ok().filter(|&n| n > 0) else {
            return Ok(());
        };
        let mut st = lock(&self.state);
        if let Some(reason) = &st.failed {
            return Err(format!(
                "the log stopped after a failed write ({reason}); restart warden"
            ));
        }
        // Only a copy under the lock: the leader encodes the records and
        // computes their leaf hashes outside it.
        st.next_seq += count;
        let seq = st.next_seq - 1;
        let base = st.pending.len();
        st.pending.extend_from_slice(json);
        st.pending_ends.extend(ends.iter().map(|end| base + end));

        if st.flushing {
            st.pending_waiters.push(std::thread::current());
            drop(st);
            loop {
                std::thread::park();
                if self.durable_seq.load(Ordering::Acquire) >= seq {
                    break;
                }
                let st = lock(&self.state);
                if st.durable.size() >= seq || st.failed.is_some() {
                    break;
                }
                if !st.flushing {
                    // Handed the lead (or woken spuriously while nobody
                    // leads): write the batch this event is in.
                    self.lead_batch(st);
                    break;
                }
                // Still in flight: park again; the leader unparks us.
            }
        } else {
            self.lead_batch(st);
        }
        if self.durable_seq.load(Ordering::Acquire) < seq {
            let reason = lock(&self.state).failed.clone();
            return Err(format!(
                "cannot write: {}",
                reason.as_deref().unwrap_or("the batch was not written")
            ));
        }
        let due = std::mem::take(&mut lock(&self.state).checkpoint_due);
        if due && let Err(e) = self.checkpoint() {
            // The event itself is on disk; a late checkpoint only widens
            // the window that the next one covers.
            tracing::error!(stream = self.stream.name(), error = %e, "cannot sign audit checkpoint");
        }
        Ok(())
    }

    /// Writes the whole pending batch as leader, then wakes its appenders
    /// and hands the lead to one of those queued meanwhile.
    fn lead_batch(&self, mut st: MutexGuard<'_, State>) {
        st.flushing = true;
        let waiters = std::mem::take(&mut st.pending_waiters);
        let spare = std::mem::take(&mut st.spare);
        let events = std::mem::replace(&mut st.pending, spare.0);
        let ends = std::mem::replace(&mut st.pending_ends, spare.1);
        let first = st.durable.size() + 1;
        drop(st);

        let mut encoder = lock(&self.encoder);
        let encoder = &mut *encoder;
        encoder.lines.clear();
        encoder.leaves.clear();
        let mut prev = encoder.last_leaf;
        let mut start = 0;
        for (seq, &end) in (first..).zip(&ends) {
            let line_start = encoder.lines.len();
            super::stream::encode_line_into(&mut encoder.lines, seq, &prev, &events[start..end]);
            prev = leaf_hash(&encoder.lines[line_start..]);
            encoder.lines.push(b'\n');
            encoder.leaves.push(prev);
            start = end;
        }
        let result = self.write_batch(&encoder.lines, first);
        if result.is_ok() {
            encoder.last_leaf = prev;
        }

        let mut st = lock(&self.state);
        match result {
            Ok(sealed) => {
                for leaf in &encoder.leaves {
                    st.durable.push(*leaf);
                }
                if let Some(last) = encoder.leaves.last() {
                    st.durable_last_leaf = *last;
                }
                self.durable_seq.store(st.durable.size(), Ordering::Release);
                let interval_passed =
                    st.checkpoint_signed_at.elapsed() >= self.options.checkpoint_interval;
                st.checkpoint_due |= sealed || interval_passed;
            }
            Err(reason) => {
                tracing::error!(stream = self.stream.name(), %reason, "audit log write failed");
                st.failed = Some(reason);
            }
        }
        st.flushing = false;
        let (mut events, mut ends) = (events, ends);
        events.clear();
        ends.clear();
        st.spare = (events, ends);
        // One of those queued for the next batch becomes its leader; after
        // a failure all of them must learn it.
        let wake_next: Vec<Thread> = if st.failed.is_some() {
            st.pending_waiters.clone()
        } else {
            st.pending_waiters.first().cloned().into_iter().collect()
        };
        drop(st);
        for t in wake_next.iter().chain(&waiters) {
            t.unpark();
        }
    }

    /// Writes one batch into the active segment, sealing it first when it
    /// is full or old; returns whether a segment was sealed.
    fn write_batch(&self, batch: &[u8], first_seq: u64) -> Result<bool, String> {
        let mut writer = lock(&self.writer);
        let now = now_unix_ms();
        let full =
            writer.bytes > 0 && writer.bytes + batch.len() as u64 > self.options.max_segment_bytes;
        let old = writer.started_ms.is_some_and(|t| {
            Duration::from_millis(now.saturating_sub(t)) >= self.options.max_segment_age
        });
        let sealed = full || old;
        if sealed {
            // Synced appends are on disk already; buffered ones must not be
            // left behind in a segment that `sync` no longer reaches.
            if self.options.durability == AuditDurability::OsBuffered {
                writer
                    .file
                    .sync_data()
                    .map_err(|e| format!("cannot sync {}: {e}", writer.path.display()))?;
            }
            *writer = new_segment(&self.dir, first_seq).map_err(|e| e.to_string())?;
        }
        writer
            .file
            .write_all(batch)
            .map_err(|e| format!("cannot write {}: {e}", writer.path.display()))?;
        if self.options.durability == AuditDurability::Synced {
            writer
                .file
                .sync_data()
                .map_err(|e| format!("cannot sync {}: {e}", writer.path.display()))?;
        }
        writer.bytes += batch.len() as u64;
        writer.started_ms.get_or_insert(now);
        Ok(sealed)
    }
}

/// Access to the active segment while no batch is in flight; see
/// [`AuditLog::with_writer_quiet`].
pub(crate) struct SealHandle<'a> {
    pub(crate) log: &'a AuditLog,
    writer: &'a mut Writer,
    /// Every event up to here is on disk and nothing else is written.
    pub(crate) durable_seq: u64,
}

impl SealHandle<'_> {
    /// Path of the active segment.
    pub(crate) fn active_path(&self) -> &Path {
        &self.writer.path
    }

    /// Seals the active segment (if it holds anything) and starts a new one
    /// at the next sequence number.
    pub(crate) fn seal(&mut self) -> Result<(), AuditLogError> {
        if self.writer.bytes > 0 {
            self.writer
                .file
                .sync_data()
                .map_err(|source| AuditLogError::Io {
                    path: self.writer.path.clone(),
                    action: "sync",
                    source,
                })?;
            *self.writer = new_segment(&self.log.dir, self.durable_seq + 1)?;
        }
        Ok(())
    }
}

impl AuditLog {
    /// Swaps the active segment for a handle that cannot write, as a full
    /// or failing disk behaves, so that tests can see what fails closed.
    #[cfg(test)]
    pub(crate) fn fail_writes_for_test(&self) {
        let mut writer = lock(&self.writer);
        writer.file = File::open(&writer.path).unwrap();
    }

    /// The [`AuditError`] for a failed append, logged once here.
    pub(crate) fn append_failed(&self, tenant: &str, reason: String) -> AuditError {
        tracing::error!(stream = self.stream.name(), dir = %self.dir.display(), %reason, "audit append failed");
        AuditError {
            tenant: tenant.to_owned(),
            reason,
        }
    }
}

impl AuditSink for AuditLog {
    /// Appends `event` at once: it is on disk when this returns.
    fn append(&self, event: &AuditEvent) -> Result<(), AuditError> {
        self.append_event(event)
            .map_err(|reason| self.append_failed(&event.tenant, reason))
    }
}

impl Drop for AuditLog {
    /// Signs a last checkpoint so that everything appended in this process
    /// is covered by a signature (the shutdown checkpoint).
    fn drop(&mut self) {
        if lock(&self.state).failed.is_some() {
            return;
        }
        if let Err(e) = self.checkpoint_if_grown() {
            tracing::error!(stream = self.stream.name(), error = %e, "cannot sign shutdown checkpoint");
        }
    }
}

/// Creates, locks and checks the marker file that makes `dir` a log.
fn open_marker(dir: &Path, stream: &StreamId) -> Result<File, AuditLogError> {
    let path = dir.join(MARKER_FILE);
    let io = |action, source| AuditLogError::Io {
        path: path.clone(),
        action,
        source,
    };
    let is_new = !path.exists();
    if is_new
        && std::fs::read_dir(dir)
            .map_err(|e| io("list", e))?
            .next()
            .is_some()
    {
        return Err(AuditLogError::NotAWardenLog {
            dir: dir.to_owned(),
            reason: format!("it holds files but no {MARKER_FILE}"),
        });
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io("open", e))?;
    // Another short-lived warden command (a `run`, an operator's `show`)
    // usually lets go within moments; wait a little before giving up.
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditLogError::Locked(dir.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", e)),
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io("read", e))?;
    if text.is_empty() {
        file.write_all(stream.marker_text().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", e))?;
        sync_dir(dir)?;
    } else if text != stream.marker_text() {
        return Err(AuditLogError::NotAWardenLog {
            dir: dir.to_owned(),
            reason: format!("{MARKER_FILE} does not name the stream {}", stream.name()),
        });
    }
    Ok(file)
}

fn new_segment(dir: &Path, first_seq: u64) -> Result<Writer, AuditLogError> {
    let path = dir.join(segment_name(first_seq));
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(|source| AuditLogError::Io {
            path: path.clone(),
            action: "create",
            source,
        })?;
    // The new file's directory entry must be durable before any record in
    // it is acknowledged.
    sync_dir(dir)?;
    Ok(Writer {
        file,
        path,
        bytes: 0,
        started_ms: None,
    })
}

/// Syncs a directory so that files created or removed in it stay so.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditLogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| AuditLogError::Io {
            path: dir.to_owned(),
            action: "sync",
            source,
        })
}

/// Cuts the last `torn` bytes off `path`, syncs it, and returns them.
fn truncate_tail(path: &Path, torn: u64) -> Result<Vec<u8>, AuditLogError> {
    let io = |action, source| AuditLogError::Io {
        path: path.to_owned(),
        action,
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| io("read", e))?;
    let keep = bytes.len() as u64 - torn;
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io("open", e))?;
    file.set_len(keep)
        .and_then(|()| file.seek(SeekFrom::End(0)).map(|_| ()))
        .and_then(|()| file.sync_all())
        .map_err(|e| io("truncate", e))?;
    Ok(bytes[usize::try_from(keep).unwrap_or(bytes.len())..].to_vec())
}

/// How many bytes follow the last newline of the file at `path` (0 when
/// it does not exist).
fn torn_tail_len(path: &Path) -> std::io::Result<u64> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(split_lines(&bytes).1.len() as u64),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// What [`scan_tail`] found.
struct TailScan {
    frontier: Frontier,
    last_leaf: Hash,
    /// The last segment, the sequence number of its torn record, and how
    /// many bytes to cut.
    torn: Option<(PathBuf, u64, u64)>,
    active_started_ms: Option<u64>,
}

/// Reads the records after the resume point and extends the tree with them.
fn scan_tail(
    segments: &[(u64, PathBuf)],
    resume: &Frontier,
    resume_leaf: &Hash,
    retained_size: u64,
) -> Result<TailScan, String> {
    let covered = resume.size();
    let mut frontier = resume.clone();
    let mut last_leaf = *resume_leaf;
    // Events removed by retention are vouched for by the signed record.
    let mut saw_covered_end = covered <= retained_size;
    let mut torn = None;
    let mut active_started_ms = None;
    // The segment holding the first record after the resume point, or the
    // one holding the resume point itself so that it can be checked.
    let start = segments
        .iter()
        .rposition(|(first, _)| *first <= covered.max(1))
        .unwrap_or(0);
    for (i, (first, path)) in segments.iter().enumerate().skip(start) {
        let is_last = i + 1 == segments.len();
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (lines, tail) = split_lines(&bytes);
        let mut expected_first = true;
        for (n, line) in lines.enumerate() {
            let record = Record::parse(line).map_err(|e| {
                format!("line {} of {} is not a record: {e}", n + 1, file_name(path))
            })?;
            if expected_first {
                expected_first = false;
                if record.seq != *first {
                    return Err(format!(
                        "{} starts with event {}, not {first}",
                        file_name(path),
                        record.seq
                    ));
                }
            }
            if is_last && active_started_ms.is_none() {
                active_started_ms = record.time_unix_ms();
            }
            if record.seq <= covered {
                if record.seq == covered {
                    if leaf_hash(line) != *resume_leaf {
                        return Err(format!(
                            "event {covered} does not match the latest checkpoint; it was edited"
                        ));
                    }
                    saw_covered_end = true;
                }
                continue;
            }
            let expected = frontier.size() + 1;
            if record.seq != expected {
                return Err(format!(
                    "{} holds event {} where event {expected} belongs",
                    file_name(path),
                    record.seq
                ));
            }
            if hex::decode(record.prev).ok().as_deref() != Some(&last_leaf[..]) {
                return Err(format!(
                    "event {expected} does not link to event {}",
                    expected - 1
                ));
            }
            last_leaf = leaf_hash(line);
            frontier.push(last_leaf);
        }
        if !tail.is_empty() {
            if !is_last {
                return Err(format!("{} ends inside a record", file_name(path)));
            }
            torn = Some((path.clone(), frontier.size() + 1, tail.len() as u64));
        }
    }
    if !saw_covered_end {
        return Err(format!(
            "the latest checkpoint covers {covered} events but the log ends at event {}; events \
             were cut off",
            frontier.size().min(covered)
        ));
    }
    Ok(TailScan {
        frontier,
        last_leaf,
        torn,
        active_started_ms,
    })
}

#[cfg(test)]
mod tests {
    use warden_host_api::scope::TenantId;

    use super::*;
    use crate::audit::{AuditLogs, VerifyOptions, verify};

    fn tenant() -> TenantId {
        TenantId::new("acme").unwrap()
    }

    fn append(log: &AuditLog, n: u64) -> Result<(), AuditError> {
        let scope = HostScope {
            tenant: Some(tenant()),
            component: "test".into(),
            invocation: format!("inv-{n}"),
            actor: "tester".into(),
        };
        let body = EventBody::AgentDecision {
            subject: format!("s{n}"),
            outcome: "ok".into(),
            reason: "because".into(),
        };
        audit::emit_host(log, &scope, body)
    }

    fn options() -> AuditOptions {
        AuditOptions::default()
    }

    #[test]
    fn concurrent_appenders_get_one_gapless_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), options());
        let log = logs.tenant(&tenant()).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let log = &log;
                s.spawn(move || {
                    for n in 0..50 {
                        append(log, t * 1000 + n).unwrap();
                    }
                });
            }
        });
        assert_eq!(log.size(), 400);
        drop((log, logs));
        let stream = StreamId::Tenant(tenant());
        let report = verify(dir.path(), &stream, &VerifyOptions::default()).unwrap();
        assert_eq!(report.events, 400);
        assert_eq!(
            report.signed_size, 400,
            "the shutdown checkpoint covers all"
        );
    }

    #[test]
    fn full_segments_are_sealed_with_a_checkpoint_and_reopening_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = AuditOptions {
            max_segment_bytes: 2_000,
            ..options()
        };
        {
            let logs = AuditLogs::new(dir.path(), opts.clone());
            let log = logs.tenant(&tenant()).unwrap();
            for n in 0..40 {
                append(&log, n).unwrap();
            }
        }
        let stream = StreamId::Tenant(tenant());
        let segments = list_segments(&stream.dir(dir.path())).unwrap();
        assert!(segments.len() > 3, "{segments:?}");
        let read = read_checkpoints(&stream.dir(dir.path()).join(CHECKPOINTS_FILE)).unwrap();
        assert!(
            read.stored.len() >= segments.len(),
            "one checkpoint per seal"
        );

        // A second process continues the same tree where the first stopped.
        {
            let logs = AuditLogs::new(dir.path(), opts);
            let log = logs.tenant(&tenant()).unwrap();
            assert_eq!(log.size(), 40);
            append(&log, 40).unwrap();
        }
        let report = verify(dir.path(), &stream, &VerifyOptions::default()).unwrap();
        assert_eq!(report.events, 41);
    }

    #[test]
    fn a_checkpoint_is_signed_at_the_interval_without_a_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let opts = AuditOptions {
            checkpoint_interval: Duration::from_millis(30),
            ..options()
        };
        let logs = AuditLogs::new(dir.path(), opts);
        let log = logs.tenant(&tenant()).unwrap();
        append(&log, 0).unwrap();
        let path = log.dir().join(CHECKPOINTS_FILE);
        let started = Instant::now();
        while read_checkpoints(&path).unwrap().stored.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "no checkpoint");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            read_checkpoints(&path).unwrap().stored[0]
                .checkpoint
                .tree_size,
            1
        );
    }

    #[test]
    fn a_failed_write_fails_every_later_append_closed() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), options());
        let log = logs.tenant(&tenant()).unwrap();
        append(&log, 0).unwrap();
        // Swap the segment for a handle that cannot write, as a full or
        // failing disk would behave.
        {
            let mut writer = lock(&log.writer);
            writer.file = File::open(&writer.path).unwrap();
        }
        let err = append(&log, 1).unwrap_err();
        assert!(err.reason.contains("cannot write"), "{err}");
        let err = append(&log, 2).unwrap_err();
        assert!(err.reason.contains("stopped after a failed write"), "{err}");
        assert_eq!(log.size(), 1);

        // The next process starts from what is on disk.
        drop((log, logs));
        let logs = AuditLogs::new(dir.path(), options());
        let log = logs.tenant(&tenant()).unwrap();
        assert_eq!(log.size(), 1);
        append(&log, 3).unwrap();
    }

    #[test]
    fn an_event_for_another_tenant_is_refused_as_a_bug() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), options());
        let log = logs.tenant(&tenant()).unwrap();
        let scope = HostScope {
            tenant: Some(TenantId::new("globex").unwrap()),
            component: "test".into(),
            invocation: "x".into(),
            actor: "x".into(),
        };
        let body = EventBody::AgentDecision {
            subject: "s".into(),
            outcome: "o".into(),
            reason: "r".into(),
        };
        let err = audit::emit_host(&*log, &scope, body).unwrap_err();
        assert!(err.reason.contains("warden bug"), "{err}");
        assert_eq!(log.size(), 0);
    }
}

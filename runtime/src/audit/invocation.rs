//! [`InvocationLog`]: one invocation's events, appended in batches.
//!
//! Appending each event on its own costs a lock, a `write` and (synced) an
//! `fdatasync` per event, most of an invocation's time when the guest does
//! little. An invocation instead records its events here, in order, as
//! encoded JSON in memory, and they reach its tenant's [`AuditLog`] as one
//! batch (one lock, one `write`, one sync shared with concurrent appenders)
//! at each barrier:
//!
//! - before the invocation's record writes are committed (the runtime
//!   flushes before [`Transaction::commit`]);
//! - before an outgoing request leaves the host (`wasi:http` flushes after
//!   recording the decision and before it connects);
//! - before the invocation returns to its caller (the runtime flushes after
//!   the finish event);
//! - when more than [`MAX_HELD_EVENT_BYTES`] are held, so that a guest
//!   making thousands of calls cannot make the host hold their events
//!   without bound;
//! - when the handle is dropped (an invocation cancelled by its caller),
//!   so that the attempt is still on record.
//!
//! What is kept is the guarantee that matters to a reader of the log: no
//! effect of an invocation can be seen outside it (a committed write, a
//! request sent, an output returned) before every event leading up to it
//! is durable. A crash can lose the events since the last barrier, but
//! nothing those events describe left the invocation: its writes were not
//! committed, no request was sent and the caller got no answer.
//!
//! Each event is still recorded before the backend is touched: a refused
//! call's event is in the batch before the guest sees the refusal, and an
//! allowed write's event before the write is held for commit.
//!
//! [`Transaction::commit`]: crate::state::Transaction::commit

use std::{
    cell::Cell,
    io::Write as _,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use warden_host_api::{
    audit::{AuditError, AuditEvent, AuditSink, EventBody},
    scope::InstanceScope,
};

use super::AuditLog;

/// Encoded events held by one invocation before they are appended
/// anyway, without waiting for a barrier: 1 MiB.
pub const MAX_HELD_EVENT_BYTES: usize = 1024 * 1024;

/// Largest buffer kept for reuse by the next invocation on a thread.
const MAX_SPARE_BYTES: usize = 64 * 1024;

thread_local! {
    /// The buffers of the last invocation dropped on this thread, empty, so
    /// that the next one does not allocate its own.
    static SPARE: Cell<Option<Held>> = const { Cell::new(None) };
}

/// Events not yet appended: their JSON back to back, and where each ends.
#[derive(Default)]
struct Held {
    json: Vec<u8>,
    ends: Vec<usize>,
}

/// One invocation's audit sink over its tenant's log. See the module docs.
pub struct InvocationLog {
    log: Arc<AuditLog>,
    scope: Arc<InstanceScope>,
    /// The encoded fields every event of the invocation shares, from
    /// `,"tenant":` to `,"body":`, made once: most of an event's bytes.
    attribution: Vec<u8>,
    held: Mutex<Held>,
}

impl std::fmt::Debug for InvocationLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationLog")
            .field("stream", self.log.stream())
            .finish_non_exhaustive()
    }
}

impl InvocationLog {
    /// A sink holding the events of the invocation `scope` for `log`
    /// until the next barrier.
    pub fn new(log: Arc<AuditLog>, scope: Arc<InstanceScope>) -> Self {
        // `try_with` fails only while the thread is being torn down; a
        // fresh buffer does then.
        let spare = SPARE.try_with(Cell::take).ok().flatten();
        let held = spare.unwrap_or_else(|| Held {
            // Room for a typical invocation's events, so that encoding them
            // does not grow the buffer step by step.
            json: Vec::with_capacity(4096),
            ends: Vec::with_capacity(8),
        });
        Self {
            log,
            attribution: encode_attribution(&scope),
            scope,
            held: Mutex::new(held),
        }
    }

    /// How many events are held, not yet appended to the log.
    pub fn held_events(&self) -> usize {
        self.lock().ends.len()
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // Held events are updated only after each step succeeded; a panic
        // elsewhere leaves complete events behind.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Encodes one event with `encode` at the end of the held ones, and
    /// appends them all once they pass [`MAX_HELD_EVENT_BYTES`].
    fn hold(
        &self,
        tenant: &str,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<(), AuditError> {
        let mut held = self.lock();
        let start = held.json.len();
        if let Err(e) = encode(&mut held.json) {
            held.json.truncate(start);
            let reason = format!("cannot encode event: {e}");
            return Err(self.log.append_failed(tenant, reason));
        }
        let end = held.json.len();
        held.ends.push(end);
        if end >= MAX_HELD_EVENT_BYTES {
            self.append_held(&mut held)?;
        }
        Ok(())
    }

    /// Appends the held events to the log as one batch and forgets them,
    /// whether or not the append succeeded: after a failed write the log
    /// refuses every later append anyway.
    fn append_held(&self, held: &mut Held) -> Result<(), AuditError> {
        if held.ends.is_empty() {
            return Ok(());
        }
        let appended = self.log.append_encoded(&held.json, &held.ends);
        held.json.clear();
        held.ends.clear();
        appended.map_err(|reason| self.log.append_failed(self.log.stream().name(), reason))
    }
}

impl AuditSink for InvocationLog {
    /// Encodes `event` and holds it until the next barrier.
    fn append(&self, event: &AuditEvent) -> Result<(), AuditError> {
        self.log
            .check_tenant(&event.tenant)
            .map_err(|reason| self.log.append_failed(&event.tenant, reason))?;
        self.hold(&event.tenant, |json| serde_json::to_writer(json, event))
    }

    /// Encodes an event of this invocation from the shared attribution and
    /// `body`, to the same bytes [`AuditSink::append`] would write.
    fn append_body(
        &self,
        scope: &InstanceScope,
        time_unix_ms: u64,
        body: EventBody,
    ) -> Result<(), AuditError> {
        if !std::ptr::eq(scope, &*self.scope) {
            return self.append(&AuditEvent::new(scope, time_unix_ms, body));
        }
        let tenant = scope.tenant.as_str();
        self.log
            .check_tenant(tenant)
            .map_err(|reason| self.log.append_failed(tenant, reason))?;
        self.hold(tenant, |json| {
            json.extend_from_slice(b"{\"time_unix_ms\":");
            // Writing to a Vec cannot fail.
            let _ = write!(json, "{time_unix_ms}");
            json.extend_from_slice(&self.attribution);
            serde_json::to_writer(&mut *json, &body)?;
            json.push(b'}');
            Ok(())
        })
    }

    /// Appends the held events to the log in one batch and returns once
    /// they are on disk.
    fn flush(&self) -> Result<(), AuditError> {
        let mut held = self.lock();
        self.append_held(&mut held)
    }
}

/// The fields of [`AuditEvent`] after `time_unix_ms` and before `body`, as
/// serde_json encodes them, with the separators around them.
fn encode_attribution(scope: &InstanceScope) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    let fields: [(&str, &str); 6] = [
        ("tenant", scope.tenant.as_str()),
        ("agent", &scope.agent),
        ("component_digest", &scope.component_digest.to_hex()),
        ("grant_digest", &scope.grant_digest.to_hex()),
        ("invocation", &scope.invocation),
        ("actor", &scope.actor),
    ];
    for (name, value) in fields {
        out.push(b',');
        // Encoding a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, name);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.extend_from_slice(b",\"body\":");
    out
}

impl Drop for InvocationLog {
    /// Appends what an invocation dropped before its last barrier still
    /// held (its caller gave up on it), so that the attempt is on record.
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut held = std::mem::take(held);
        // A failure is logged by `append_failed`; there is no caller left
        // to fail.
        let _ = self.append_held(&mut held);
        // The emptied buffers serve the next invocation on this thread,
        // unless an unusual one grew them large.
        if held.json.capacity() <= MAX_SPARE_BYTES {
            held.json.clear();
            held.ends.clear();
            let _ = SPARE.try_with(|spare| spare.set(Some(held)));
        }
    }
}

#[cfg(test)]
mod tests {
    use warden_host_api::{
        audit::{self, EventBody, HostScope},
        scope::{Digest, TenantId},
    };

    use super::*;
    use crate::audit::{AuditLogs, AuditOptions, StreamId, VerifyOptions, verify};

    fn scope(tenant: &str) -> HostScope {
        HostScope {
            tenant: Some(TenantId::new(tenant).unwrap()),
            component: "test".into(),
            invocation: "inv".into(),
            actor: "tester".into(),
        }
    }

    fn instance(tenant: &str) -> Arc<InstanceScope> {
        Arc::new(InstanceScope {
            tenant: TenantId::new(tenant).unwrap(),
            agent: "agent \"quoted\" é\u{7}".into(),
            component_digest: Digest::of(b"component"),
            grant_digest: Digest::of(b"grant"),
            invocation: "inv-1".into(),
            actor: "ops\\bob".into(),
        })
    }

    #[test]
    fn events_of_the_invocation_encode_as_the_event_type_does() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let log = logs.tenant(&TenantId::new("acme").unwrap()).unwrap();
        let scope = instance("acme");
        let held = InvocationLog::new(Arc::clone(&log), Arc::clone(&scope));
        let body = || EventBody::StreamLine {
            stream: audit::StreamName::Stdout,
            line: "a \"line\"\n\u{1}ü".into(),
        };
        held.append_body(&scope, 17, body()).unwrap();
        let want = serde_json::to_vec(&AuditEvent::new(&scope, 17, body())).unwrap();
        assert_eq!(
            String::from_utf8(held.lock().json.clone()).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    fn decision(n: u32) -> EventBody {
        EventBody::AgentDecision {
            subject: format!("s{n}"),
            outcome: "ok".into(),
            reason: "because".into(),
        }
    }

    #[test]
    fn events_reach_the_log_in_order_at_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let acme = TenantId::new("acme").unwrap();
        let log = logs.tenant(&acme).unwrap();
        let held = InvocationLog::new(Arc::clone(&log), instance("acme"));
        for n in 0..3 {
            audit::emit_host(&held, &scope("acme"), decision(n)).unwrap();
        }
        assert_eq!(log.size(), 0, "nothing appended before the barrier");
        assert_eq!(held.held_events(), 3);

        // Another appender meanwhile goes first; the batch stays together.
        audit::emit_host(&*log, &scope("acme"), decision(9)).unwrap();
        held.flush().unwrap();
        assert_eq!(log.size(), 4);
        assert_eq!(held.held_events(), 0);
        held.flush().unwrap();
        assert_eq!(log.size(), 4, "an empty flush appends nothing");

        drop((held, log, logs));
        let stream = StreamId::Tenant(acme);
        let mut subjects = Vec::new();
        crate::audit::for_each_record(dir.path(), &stream, |record, _| {
            let event: serde_json::Value = serde_json::from_slice(record.event).unwrap();
            subjects.push(event["body"]["subject"].as_str().unwrap().to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(subjects, ["s9", "s0", "s1", "s2"]);
        let report = verify(dir.path(), &stream, &VerifyOptions::default()).unwrap();
        assert_eq!(report.events, 4);
    }

    #[test]
    fn a_dropped_invocation_still_leaves_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let log = logs.tenant(&TenantId::new("acme").unwrap()).unwrap();
        let held = InvocationLog::new(Arc::clone(&log), instance("acme"));
        audit::emit_host(&held, &scope("acme"), decision(1)).unwrap();
        drop(held);
        assert_eq!(log.size(), 1);
    }

    #[test]
    fn held_events_are_bounded_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let log = logs.tenant(&TenantId::new("acme").unwrap()).unwrap();
        let held = InvocationLog::new(Arc::clone(&log), instance("acme"));
        let body = || EventBody::AgentDecision {
            subject: "s".into(),
            outcome: "o".into(),
            reason: "r".repeat(4096),
        };
        let mut appended = 0;
        while log.size() == 0 {
            audit::emit_host(&held, &scope("acme"), body()).unwrap();
            appended += 1;
            assert!(
                appended <= (2 * MAX_HELD_EVENT_BYTES / 4096) as u64,
                "never appended"
            );
        }
        assert_eq!(held.held_events(), 0);
        assert_eq!(log.size(), appended);
    }

    #[test]
    fn an_event_for_another_tenant_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let log = logs.tenant(&TenantId::new("acme").unwrap()).unwrap();
        let held = InvocationLog::new(Arc::clone(&log), instance("acme"));
        let err = audit::emit_host(&held, &scope("globex"), decision(1)).unwrap_err();
        assert!(err.reason.contains("warden bug"), "{err}");
        assert_eq!(held.held_events(), 0);
    }
}

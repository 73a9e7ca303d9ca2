//! Audit events and the one function that emits them.
//!
//! Every scope decision a capability makes, allowed or refused, becomes one
//! [`AuditEvent`] passed to [`emit`] before the capability touches its
//! backend. Where the events go is the runtime's business: it implements
//! [`AuditSink`] over its tamper-evident log. If the sink cannot record, the
//! capability call fails instead of going ahead unrecorded (fail closed).
//!
//! Events carry names, digests and sizes, never stored values, secrets or
//! guest payloads; a value shows up only as its sha256 digest.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::scope::{Digest, InstanceScope, TenantId};

/// Where audit events go. Implemented by the runtime's audit log.
///
/// A sink may hold the events of one invocation in memory and write them in
/// batches, as long as it keeps their order and makes each durable before
/// any effect of the call it records can be seen outside the invocation.
/// Inside a capability, the one such effect that does not pass through the
/// runtime is a request leaving the host, so a capability that sends one
/// calls [`AuditSink::flush`] after recording it and before sending it. The
/// runtime flushes before it commits an invocation's writes and before it
/// returns to the caller.
pub trait AuditSink: Send + Sync {
    /// Appends `event` to the stream of `event.tenant`, after every event
    /// this sink accepted before it.
    ///
    /// # Errors
    ///
    /// Returns [`AuditError`] when the event could not be recorded; the caller
    /// must then fail the operation it was about to perform.
    fn append(&self, event: &AuditEvent) -> Result<(), AuditError>;

    /// Appends the event `body` of the invocation described by `scope`,
    /// made at `time_unix_ms`; what [`emit`] calls. The default builds the
    /// [`AuditEvent`] and calls [`AuditSink::append`]; a sink made for one
    /// invocation may encode the event without building it, as long as the
    /// bytes are those of the [`AuditEvent`].
    ///
    /// # Errors
    ///
    /// As [`AuditSink::append`].
    fn append_body(
        &self,
        scope: &InstanceScope,
        time_unix_ms: u64,
        body: EventBody,
    ) -> Result<(), AuditError> {
        self.append(&AuditEvent::new(scope, time_unix_ms, body))
    }

    /// Makes every event appended so far durable. The default does nothing,
    /// for a sink whose appends are durable when they return.
    ///
    /// # Errors
    ///
    /// Returns [`AuditError`] when the events could not be written; the
    /// caller must not let the effect it was about to allow happen.
    fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// The audit stream could not record an event.
#[derive(Debug, Error)]
#[error("audit stream of tenant {tenant} cannot record: {reason}")]
pub struct AuditError {
    /// The tenant whose stream failed.
    pub tenant: String,
    /// What failed, without the event's content.
    pub reason: String,
}

/// Whether a scope decision allowed the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The grant covers the call; the backend was (or is about to be) used.
    Allow,
    /// The call was refused before any backend was touched.
    Deny,
}

/// Who is at fault when a call does not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blame {
    /// The guest asked for something outside its grant or sent bad input.
    Guest,
    /// The host failed (backend error, broken invariant).
    Host,
}

/// How an invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The agent returned an output.
    Ok,
    /// The agent returned its `invalid-input` error.
    InvalidInput,
    /// The agent returned its `failed` error.
    Failed,
    /// The guest trapped, ran out of time or hit a limit.
    Trap,
    /// The invocation never ran: the tenant was busy or the input too large.
    Refused,
}

/// Which standard stream a captured line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamName {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

/// One audit event: who, then what.
///
/// The field order here is the order of the serialized form, which the audit
/// log hashes; changing it changes every digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch when the event was made.
    pub time_unix_ms: u64,
    /// The tenant the event belongs to.
    pub tenant: String,
    /// The agent's name.
    pub agent: String,
    /// sha256 of the component.
    pub component_digest: String,
    /// sha256 of the agent's grant.
    pub grant_digest: String,
    /// The invocation id.
    pub invocation: String,
    /// Who caused the invocation.
    pub actor: String,
    /// What happened.
    pub body: EventBody,
}

impl AuditEvent {
    /// The event `body` of the invocation described by `scope`, made at
    /// `time_unix_ms`.
    pub fn new(scope: &InstanceScope, time_unix_ms: u64, body: EventBody) -> Self {
        Self {
            time_unix_ms,
            tenant: scope.tenant.as_str().to_owned(),
            agent: scope.agent.clone(),
            component_digest: scope.component_digest.to_hex(),
            grant_digest: scope.grant_digest.to_hex(),
            invocation: scope.invocation.clone(),
            actor: scope.actor.clone(),
            body,
        }
    }
}

/// What an event records.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventBody {
    /// An invocation is about to run.
    InvocationStart {
        /// sha256 of the agent manifest file.
        manifest_digest: String,
        /// sha256 of the input.
        input_digest: String,
        /// Size of the input.
        input_bytes: u64,
    },
    /// An invocation ended.
    InvocationFinish {
        /// How it ended.
        outcome: Outcome,
        /// The agent's error message or the trap reason.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        detail: Option<String>,
        /// sha256 of the output, when there is one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        output_digest: Option<String>,
        /// Wall-clock duration in microseconds.
        duration_us: u64,
    },
    /// One capability call and the scope decision taken on it.
    HostCall {
        /// WIT interface, for example `warden:agent/records`.
        interface: String,
        /// WIT function, for example `get`.
        function: String,
        /// The resource named by the guest (a key, a prefix), as sent, cut to
        /// [`MAX_RESOURCE_BYTES`] by [`bounded_resource`].
        resource: String,
        /// Allowed or refused.
        decision: Decision,
        /// Why: the grant entry that matched, or the rule that refused.
        reason: String,
        /// Who is at fault when the call was refused or failed.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        blame: Option<Blame>,
        /// sha256 of the value written (put) or, for a read, of the value
        /// found; absent when no value was involved.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        value_digest: Option<String>,
        /// For a write (put, delete), sha256 of the value it replaces;
        /// absent when there was none.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        old_value_digest: Option<String>,
    },
    /// One outbound `wasi:http` request and the egress decision on it,
    /// recorded before any DNS answer is used to connect.
    HttpRequest {
        /// The request method, as sent by the guest.
        method: String,
        /// An allowed request's canonical URL; a refused request's URL as
        /// the guest spelt it, cut by [`bounded_resource`]. Query values are
        /// replaced by `[redacted]` in both, because they often carry tokens
        /// or personal data.
        url: String,
        /// The address the host checked and connects to; absent when the
        /// request was refused before resolving.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        address: Option<String>,
        /// Allowed or refused.
        decision: Decision,
        /// The grant entry that matched, or the rule that refused.
        reason: String,
        /// Who is at fault when the request was refused.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        blame: Option<Blame>,
        /// Headers the grant made the host add to this allowed request,
        /// by name and the names of the secrets in them; never a value.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        injected: Vec<HeaderInjection>,
    },
    /// How an allowed outbound request ended.
    HttpResponse {
        /// The canonical URL, query values redacted, as in the request event.
        url: String,
        /// The response status, when a response arrived.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        status: Option<u16>,
        /// Why the exchange failed or was cut, when it did.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<String>,
        /// Request body bytes sent.
        request_bytes: u64,
        /// Response body bytes received by the guest.
        response_bytes: u64,
        /// From the decision to the end of the response body, in
        /// microseconds.
        duration_us: u64,
    },
    /// A limit of the tenant stopped or refused something outside a host
    /// call: a deadline, memory or table growth, concurrency, input or
    /// output size.
    LimitHit {
        /// The limit's name as in the tenant configuration, for example
        /// `cpu_timeout` or `max_memory_bytes`.
        limit: String,
        /// What happened, in one phrase.
        detail: String,
    },
    /// The invocation's record writes were applied together.
    Commit {
        /// How many writes (puts and deletes) were applied.
        writes: u64,
    },
    /// The invocation failed and its record writes were discarded.
    Rollback {
        /// How many writes (puts and deletes) were discarded.
        discarded_writes: u64,
        /// Why the invocation failed.
        reason: String,
    },
    /// A decision the agent recorded through `warden:agent/decisions`.
    AgentDecision {
        /// What the decision is about.
        subject: String,
        /// The outcome the agent chose.
        outcome: String,
        /// The agent's reason.
        reason: String,
    },
    /// The runtime found a record cut short at the end of the log when it
    /// opened it (a crash during a write), removed it, and goes on from
    /// the last complete record. The cut record was never acknowledged:
    /// the call it recorded did not get a result.
    LogRecovered {
        /// The file the bytes were cut from.
        file: String,
        /// How many bytes were cut.
        cut_bytes: u64,
        /// sha256 of the cut bytes, so that a copy of them can be matched.
        cut_digest: String,
        /// The sequence number the cut record would have had, when it was
        /// an event (absent when a checkpoint line was cut).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cut_seq: Option<u64>,
    },
    /// Whole sealed segments older than the retention period were removed.
    /// The signed retention record beside the log keeps the tree hashes
    /// that the rest of the log still verifies against.
    RetentionRemoved {
        /// First removed sequence number.
        first_seq: u64,
        /// Last removed sequence number.
        last_seq: u64,
        /// How many segment files were removed.
        segments: u64,
        /// The retention period applied, for example `90days`.
        retention: String,
        /// Root hash of the tree of events 1..=`last_seq`, hex.
        root_hash: String,
    },
    /// Someone read a stream's events through warden (shown, exported,
    /// proved or verified). Recorded in the control-plane stream before
    /// the read happens.
    AuditRead {
        /// The stream read: a tenant id or `_control`.
        stream: String,
        /// What was done: `show`, `export`, `prove` or `verify`.
        action: String,
        /// Which part: a sequence number, a time range, or `all`.
        range: String,
    },
    /// An operator changed what a tenant's agents may do: allowed or
    /// revoked an agent, set or unset a config value. Recorded in the
    /// control-plane stream before the change is stored; guests have no
    /// path to these operations.
    ControlChange {
        /// What was done, as the command spells it, for example
        /// `agents allow` or `config set`.
        action: String,
        /// The agent the change is about.
        agent: String,
        /// sha256 of the grant the tenant allowed for the agent before the
        /// change; absent when the agent was not allowed.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        before_grant_digest: Option<String>,
        /// sha256 of the grant allowed after the change; absent when the
        /// agent is no longer allowed.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        after_grant_digest: Option<String>,
        /// What changed, in plain words, for example
        /// `records: + read-write invoices/; http: - api.example.com`.
        /// Names only: a config value appears as its digest, never itself.
        change: String,
    },
    /// The agent asked a person to approve an action
    /// (`warden:agent/approvals`), recorded before anyone is asked.
    ApprovalRequested {
        /// The request's id, which the answer's event repeats.
        request: String,
        /// What the agent is about to do, as it wrote it.
        action: String,
        /// Why, as it wrote it.
        detail: String,
    },
    /// How an approval request was answered, recorded before the agent
    /// sees the answer.
    ApprovalDecided {
        /// The request's id, as in its [`EventBody::ApprovalRequested`].
        request: String,
        /// `approved`, `denied`, `no-answer` (the deadline passed) or
        /// `unavailable` (nobody could be asked).
        answer: String,
        /// Who answered, for `approved` and `denied`.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        approver: Option<String>,
        /// The approver's reason, or why nobody answered.
        reason: String,
    },
    /// An operator's request to the control plane (the daemon's API or a
    /// `warden token` command) and how it ended. Recorded in the
    /// control-plane stream; the event's `tenant` is the tenant acted on
    /// and its `actor` the caller named by the token or `--actor`.
    ControlRequest {
        /// The caller's role: `platform-admin`, `tenant-admin`, `auditor`,
        /// `invoker`, or `operator` for a command run on the host.
        role: String,
        /// What was asked, for example `agents.deploy` or `tokens.revoke`.
        operation: String,
        /// The object acted on (an agent, a run, a token id); empty when
        /// the operation names none.
        resource: String,
        /// Whether the caller's role allowed the operation.
        decision: Decision,
        /// `ok`, or the one-line error the caller was given.
        outcome: String,
        /// The HTTP status answered, for a request to the daemon.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        status: Option<u16>,
    },
    /// An operator changed one of a tenant's secrets. Recorded in the
    /// control-plane stream, with the tenant in the event's `tenant` field,
    /// before the change is made. Names only: neither the value nor a
    /// digest of it, since a digest of a short token lets anyone who reads
    /// the trail test guesses of it.
    SecretChanged {
        /// The secret's name.
        name: String,
        /// `set` (created or replaced) or `remove`.
        action: String,
    },
    /// One line the guest wrote to stdout or stderr.
    StreamLine {
        /// Which stream.
        stream: StreamName,
        /// The line, lossily decoded as UTF-8 and truncated to the
        /// runtime's maximum line length.
        line: String,
    },
}

/// A header the host added to an allowed outbound request, as the request
/// event records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderInjection {
    /// The header's name, lower case.
    pub header: String,
    /// The names of the secrets its value was made from.
    pub secrets: Vec<String>,
    /// Whether the guest had set a header of that name, which the host
    /// replaced.
    pub replaced: bool,
}

/// Records `body` for the invocation described by `scope`.
///
/// This is the only way capabilities emit audit events, so that every event
/// carries the same attribution fields; the runtime's own events go through
/// [`emit_host`].
///
/// # Errors
///
/// Returns the sink's [`AuditError`]; the caller must fail closed.
pub fn emit(
    sink: &dyn AuditSink,
    scope: &InstanceScope,
    body: EventBody,
) -> Result<(), AuditError> {
    sink.append_body(scope, now_unix_ms(), body)
}

/// Attribution for events the runtime itself causes rather than an agent:
/// recovery after a crash, retention, and control-plane actions such as an
/// operator reading a tenant's log.
#[derive(Clone, Debug)]
pub struct HostScope {
    /// The tenant the event is about; `None` for events about the control
    /// plane itself, recorded with an empty tenant field.
    pub tenant: Option<TenantId>,
    /// The host component acting, for example `warden audit` or
    /// `warden runtime`; recorded in the `agent` field.
    pub component: String,
    /// An id tying together the events of one action.
    pub invocation: String,
    /// Who caused it: an operator, or `warden` for the runtime itself.
    pub actor: String,
}

/// Records `body` for an action of the host itself, described by `scope`.
///
/// The event has the same fields as an agent's, so that one verifier and
/// one reader handle both: `agent` holds the host component and the two
/// digests are all zeros, since no component or grant is involved.
///
/// # Errors
///
/// Returns the sink's [`AuditError`]; the caller must not go ahead with an
/// action it could not record.
pub fn emit_host(
    sink: &dyn AuditSink,
    scope: &HostScope,
    body: EventBody,
) -> Result<(), AuditError> {
    let zero = Digest([0; 32]).to_hex();
    let event = AuditEvent {
        time_unix_ms: now_unix_ms(),
        tenant: scope
            .tenant
            .as_ref()
            .map_or_else(String::new, |t| t.as_str().to_owned()),
        agent: scope.component.clone(),
        component_digest: zero.clone(),
        grant_digest: zero,
        invocation: scope.invocation.clone(),
        actor: scope.actor.clone(),
        body,
    };
    sink.append(&event)
}

/// Longest guest-supplied name (key, prefix) recorded in an event, in bytes.
pub const MAX_RESOURCE_BYTES: usize = 1024;

/// Longest free text (an agent's error message, a trap reason) recorded in an
/// event, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// `resource` as recorded: the guest's own spelling, cut at
/// [`MAX_RESOURCE_BYTES`] by [`bounded`], so that a guest cannot grow the
/// audit trail by megabytes per call.
pub fn bounded_resource(resource: &str) -> String {
    bounded(resource, MAX_RESOURCE_BYTES)
}

/// `text` cut at `max` bytes on a character boundary and marked with its
/// full size; unchanged when it fits.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}[cut: {} bytes]", &text[..end], text.len())
}

/// sha256 of `bytes` as hex, the form values take in audit events.
pub fn value_digest(bytes: &[u8]) -> String {
    Digest::of(bytes).to_hex()
}

fn now_unix_ms() -> u64 {
    // A clock before 1970 is a broken host clock; record 0 rather than fail
    // the call, the log's sequence numbers still order the events.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_resources_are_cut_on_a_char_boundary_and_marked() {
        assert_eq!(bounded_resource("a/b"), "a/b");
        let long = "é".repeat(MAX_RESOURCE_BYTES);
        let cut = bounded_resource(&long);
        assert!(cut.len() < MAX_RESOURCE_BYTES + 40, "{}", cut.len());
        assert!(
            cut.ends_with(&format!("[cut: {} bytes]", long.len())),
            "{cut}"
        );
    }
}

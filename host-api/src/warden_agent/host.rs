//! Trait impls for the generated `warden:agent` bindings, one block per
//! interface in WIT order.

use std::sync::Arc;

use tracing::debug_span;

use super::{
    AgentCtx, REFUSALS_BEFORE_TRAP,
    approver::{
        ApprovalAnswer, ApprovalRequest, MAX_ACTION_BYTES, MAX_APPROVALS, MAX_DETAIL_BYTES,
    },
    bindings::warden::agent::{approvals, config, decisions, records},
    scope::{
        Need, canonical_prefix,
        config::{ConfigKeyError, validate_config_key},
        fields::project,
        validate_key,
    },
};
use crate::audit::{self, Blame, Decision, EventBody, MAX_TEXT_BYTES, value_digest};

const RECORDS: &str = "warden:agent/records";
const DECISIONS: &str = "warden:agent/decisions";
const CONFIG: &str = "warden:agent/config";
const APPROVALS: &str = "warden:agent/approvals";

/// One scope decision, ready to be recorded.
struct Call<'a> {
    interface: &'static str,
    function: &'static str,
    resource: &'a str,
}

impl AgentCtx {
    /// Records one host-call event; an audit failure traps the invocation
    /// (fail closed: the call must not go ahead unrecorded).
    fn audit_call(
        &self,
        call: &Call<'_>,
        decision: Decision,
        reason: String,
        blame: Option<Blame>,
        value_digest: Option<String>,
        old_value_digest: Option<String>,
    ) -> wasmtime::Result<()> {
        let body = EventBody::HostCall {
            interface: call.interface.to_owned(),
            function: call.function.to_owned(),
            resource: audit::bounded_resource(call.resource),
            decision,
            reason,
            blame,
            value_digest,
            old_value_digest,
        };
        audit::emit(&*self.audit, &self.scope, body).map_err(wasmtime::Error::new)
    }

    /// Records a refusal the guest caused.
    fn deny(&self, call: &Call<'_>, reason: String) -> wasmtime::Result<()> {
        self.audit_call(call, Decision::Deny, reason, Some(Blame::Guest), None, None)
    }

    /// Notes that `limit` refused a call, for the runtime's metrics.
    fn hit(&mut self, limit: &'static str) {
        *self.limit_hits.entry(limit).or_default() += 1;
    }

    /// Counts a call against the per-invocation cap; `Ok(Err(_))` holds the
    /// refusal text once the cap is passed.
    ///
    /// A guest that keeps calling after [`REFUSALS_BEFORE_TRAP`] refusals is
    /// trapped: each refusal is an audit event, and a loop of refused calls
    /// would otherwise grow the audit trail until the CPU deadline.
    fn count_call(&mut self) -> wasmtime::Result<Result<(), String>> {
        self.host_calls = self.host_calls.saturating_add(1);
        let max = self.limits.max_host_calls;
        if self.host_calls > max {
            self.hit("max_host_calls");
            if self.host_calls - max > REFUSALS_BEFORE_TRAP {
                return Err(wasmtime::Error::msg(format!(
                    "max_host_calls ({max}) reached and the guest kept calling after \
                     {REFUSALS_BEFORE_TRAP} refusals"
                )));
            }
            return Ok(Err(format!(
                "host calls per invocation exceed max_host_calls ({max})"
            )));
        }
        Ok(Ok(()))
    }

    /// Runs the checks every records call shares: the call cap, the key
    /// rules and the grant. On refusal the event is recorded and the guest's
    /// error returned in `Ok(Err(_))`.
    fn check_key(
        &mut self,
        call: &Call<'_>,
        need: Need,
        allow_trailing_slash: bool,
    ) -> wasmtime::Result<Result<String, records::Error>> {
        if let Err(reason) = self.count_call()? {
            self.deny(call, reason.clone())?;
            return Ok(Err(records::Error::LimitReached(reason)));
        }
        if let Err(e) = validate_key(
            call.resource,
            self.limits.max_key_bytes,
            allow_trailing_slash,
        ) {
            self.deny(call, e.to_string())?;
            return Ok(Err(records::Error::InvalidKey(e.to_string())));
        }
        let key = canonical_prefix(call.resource);
        match self.grant.decide(key, need) {
            Ok(prefix) => Ok(Ok(format!("granted by prefix {prefix:?}"))),
            Err(refusal) => {
                self.deny(call, refusal.to_string())?;
                Ok(Err(records::Error::NotPermitted(refusal.to_string())))
            }
        }
    }

    fn store_failed(
        &self,
        call: &Call<'_>,
        error: &crate::error::StoreError,
    ) -> wasmtime::Result<records::Error> {
        tracing::error!(tenant = %self.scope.tenant, error = %error, "record store failed");
        self.audit_call(
            call,
            Decision::Allow,
            "record store failed".into(),
            Some(Blame::Host),
            None,
            None,
        )?;
        Ok(records::Error::Other("record store failed".into()))
    }
}

impl records::Host for AgentCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Vec<u8>, records::Error>> {
        let _span = debug_span!("records.get", tenant = %self.scope.tenant, key = %key).entered();
        let call = Call {
            interface: RECORDS,
            function: "get",
            resource: &key,
        };
        let reason = match self.check_key(&call, Need::Read, false)? {
            Ok(reason) => reason,
            Err(e) => return Ok(Err(e)),
        };
        // The entry that allowed the read, for its field list: a second
        // match over the compiled prefixes, nothing parsed.
        let grant = Arc::clone(&self.grant);
        let fields = grant
            .decide_entry(canonical_prefix(&key), Need::Read)
            .ok()
            .and_then(|entry| entry.fields.as_deref());
        // A read changes nothing, so its event is written after the backend
        // answers and before the guest sees the value: the event can then
        // carry the digest of exactly what the guest received.
        match self.store.get(&self.scope.tenant, &key) {
            Ok(Some(value)) if fields.is_some() => {
                let fields = fields.unwrap_or_default();
                match project(&value, fields) {
                    Ok(projection) => {
                        let withheld = if projection.withheld.is_empty() {
                            "no field withheld".to_owned()
                        } else {
                            format!("fields withheld: {}", projection.withheld.join(", "))
                        };
                        let why = audit::bounded(&format!("{reason}; {withheld}"), MAX_TEXT_BYTES);
                        let digest = Some(value_digest(&projection.value));
                        self.audit_call(&call, Decision::Allow, why, None, digest, None)?;
                        Ok(Ok(projection.value))
                    }
                    Err(e) => {
                        self.deny(&call, e.to_string())?;
                        Ok(Err(records::Error::NotPermitted(e.to_string())))
                    }
                }
            }
            Ok(Some(value)) => {
                let digest = Some(value_digest(&value));
                self.audit_call(&call, Decision::Allow, reason, None, digest, None)?;
                Ok(Ok(value))
            }
            Ok(None) => {
                self.audit_call(
                    &call,
                    Decision::Allow,
                    format!("{reason}; not found"),
                    None,
                    None,
                    None,
                )?;
                Ok(Err(records::Error::NotFound))
            }
            Err(e) => Ok(Err(self.store_failed(&call, &e)?)),
        }
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), records::Error>> {
        let _span = debug_span!("records.put", tenant = %self.scope.tenant, key = %key).entered();
        let call = Call {
            interface: RECORDS,
            function: "put",
            resource: &key,
        };
        let reason = match self.check_key(&call, Need::Write, false)? {
            Ok(reason) => reason,
            Err(e) => return Ok(Err(e)),
        };
        if value.len() > self.limits.max_value_bytes {
            let why = format!(
                "value is {} bytes, over max_value_bytes ({})",
                value.len(),
                self.limits.max_value_bytes
            );
            self.hit("max_value_bytes");
            self.deny(&call, why.clone())?;
            return Ok(Err(records::Error::LimitReached(why)));
        }
        // Pending writes stay in host memory until the invocation commits;
        // their total is bounded per invocation.
        let pending = self.store.pending_write_bytes() + (key.len() + value.len()) as u64;
        if pending > self.limits.max_write_bytes {
            let why = format!(
                "invocation would hold {pending} bytes of pending writes, over max_write_bytes ({})",
                self.limits.max_write_bytes
            );
            self.hit("max_write_bytes");
            self.deny(&call, why.clone())?;
            return Ok(Err(records::Error::LimitReached(why)));
        }
        // The digest of the value being replaced makes the event say what
        // changed, not only what was written.
        let old = match self.store.get(&self.scope.tenant, &key) {
            Ok(old) => old,
            Err(e) => return Ok(Err(self.store_failed(&call, &e)?)),
        };
        let stored = match self.store.stored_bytes(&self.scope.tenant) {
            Ok(stored) => stored,
            Err(e) => return Ok(Err(self.store_failed(&call, &e)?)),
        };
        let freed = old.as_ref().map_or(0, |v| (key.len() + v.len()) as u64);
        let after = stored.saturating_sub(freed) + (key.len() + value.len()) as u64;
        if after > self.limits.max_stored_bytes {
            let why = format!(
                "tenant would hold {after} bytes of records, over max_stored_bytes ({})",
                self.limits.max_stored_bytes
            );
            self.hit("max_stored_bytes");
            self.deny(&call, why.clone())?;
            return Ok(Err(records::Error::LimitReached(why)));
        }
        let old_digest = old.as_deref().map(value_digest);
        self.audit_call(
            &call,
            Decision::Allow,
            reason,
            None,
            Some(value_digest(&value)),
            old_digest,
        )?;
        match self.store.put(&self.scope.tenant, &key, &value) {
            Ok(()) => Ok(Ok(())),
            Err(e) => Ok(Err(self.store_failed(&call, &e)?)),
        }
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), records::Error>> {
        let _span =
            debug_span!("records.delete", tenant = %self.scope.tenant, key = %key).entered();
        let call = Call {
            interface: RECORDS,
            function: "delete",
            resource: &key,
        };
        let reason = match self.check_key(&call, Need::Write, false)? {
            Ok(reason) => reason,
            Err(e) => return Ok(Err(e)),
        };
        let old = match self.store.get(&self.scope.tenant, &key) {
            Ok(Some(old)) => old,
            Ok(None) => {
                let why = format!("{reason}; not found");
                self.audit_call(&call, Decision::Allow, why, None, None, None)?;
                return Ok(Err(records::Error::NotFound));
            }
            Err(e) => return Ok(Err(self.store_failed(&call, &e)?)),
        };
        let old_digest = Some(value_digest(&old));
        self.audit_call(&call, Decision::Allow, reason, None, None, old_digest)?;
        match self.store.delete(&self.scope.tenant, &key) {
            Ok(true) => Ok(Ok(())),
            Ok(false) => Ok(Err(records::Error::NotFound)),
            Err(e) => Ok(Err(self.store_failed(&call, &e)?)),
        }
    }

    fn list(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, records::Error>> {
        let _span =
            debug_span!("records.list", tenant = %self.scope.tenant, prefix = %prefix).entered();
        let call = Call {
            interface: RECORDS,
            function: "list",
            resource: &prefix,
        };
        let reason = match self.check_key(&call, Need::Read, true)? {
            Ok(reason) => reason,
            Err(e) => return Ok(Err(e)),
        };
        // Ask for one more than the cap so that "exactly at the cap" and
        // "over it" can be told apart without counting the whole range.
        let max = self.limits.max_list_keys;
        let keys = match self
            .store
            .list(&self.scope.tenant, canonical_prefix(&prefix), max + 1)
        {
            Ok(keys) => keys,
            Err(e) => return Ok(Err(self.store_failed(&call, &e)?)),
        };
        if keys.len() > max {
            let why = format!("list returns more than max_list_keys ({max}) keys");
            self.hit("max_list_keys");
            self.audit_call(
                &call,
                Decision::Deny,
                why.clone(),
                Some(Blame::Guest),
                None,
                None,
            )?;
            return Ok(Err(records::Error::LimitReached(why)));
        }
        self.audit_call(
            &call,
            Decision::Allow,
            format!("{reason}; {} keys", keys.len()),
            None,
            None,
            None,
        )?;
        Ok(Ok(keys))
    }
}

impl decisions::Host for AgentCtx {
    fn record(
        &mut self,
        decision: decisions::Decision,
    ) -> wasmtime::Result<Result<(), decisions::Error>> {
        let _span = debug_span!("decisions.record", tenant = %self.scope.tenant).entered();
        let call = Call {
            interface: DECISIONS,
            function: "record",
            resource: "decision",
        };
        if let Err(reason) = self.count_call()? {
            self.deny(&call, reason.clone())?;
            return Ok(Err(decisions::Error::LimitReached(reason)));
        }
        self.decisions = self.decisions.saturating_add(1);
        let max_text = self.limits.max_decision_text_bytes;
        let refusal = if self.decisions > self.limits.max_decisions {
            Some(format!(
                "decisions exceed max_decisions ({})",
                self.limits.max_decisions
            ))
        } else if [&decision.subject, &decision.outcome, &decision.reason]
            .iter()
            .any(|t| t.len() > max_text)
        {
            Some(format!(
                "a decision field is over max_decision_text_bytes ({max_text})"
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.hit("max_decisions");
            self.deny(&call, reason.clone())?;
            return Ok(Err(decisions::Error::LimitReached(reason)));
        }
        let body = EventBody::AgentDecision {
            subject: decision.subject,
            outcome: decision.outcome,
            reason: decision.reason,
        };
        audit::emit(&*self.audit, &self.scope, body).map_err(wasmtime::Error::new)?;
        Ok(Ok(()))
    }
}

impl config::Host for AgentCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<String, config::Error>> {
        let _span = debug_span!("config.get", tenant = %self.scope.tenant, key = %key).entered();
        let call = Call {
            interface: CONFIG,
            function: "get",
            resource: &key,
        };
        if let Err(reason) = self.count_call()? {
            self.deny(&call, reason.clone())?;
            return Ok(Err(config::Error::LimitReached(reason)));
        }
        // The key rule first: a 10 MB key is refused by its length alone,
        // and the refusal records it cut to the audit resource bound.
        if let Err(e) = validate_config_key(&key) {
            let why = e.to_string();
            self.deny(&call, why.clone())?;
            return Ok(Err(match e {
                ConfigKeyError::TooLong(_) => {
                    self.hit("max_config_key_bytes");
                    config::Error::LimitReached(why)
                }
                ConfigKeyError::Empty | ConfigKeyError::BadCharacter => {
                    config::Error::NotPermitted(why)
                }
            }));
        }
        if !self.config_grant.decide(&key) {
            let why = "config key is not granted to this agent".to_owned();
            self.deny(&call, why.clone())?;
            return Ok(Err(config::Error::NotPermitted(why)));
        }
        match self.config_values.get(&key) {
            Some(value) => {
                let digest = Some(value_digest(value.as_bytes()));
                let value = value.clone();
                self.audit_call(
                    &call,
                    Decision::Allow,
                    "granted config key".into(),
                    None,
                    digest,
                    None,
                )?;
                Ok(Ok(value))
            }
            None => {
                self.audit_call(
                    &call,
                    Decision::Allow,
                    "granted config key; not set".into(),
                    None,
                    None,
                    None,
                )?;
                Ok(Err(config::Error::NotFound))
            }
        }
    }
}

impl approvals::Host for AgentCtx {
    fn request(
        &mut self,
        action: String,
        detail: String,
    ) -> wasmtime::Result<Result<approvals::Decision, approvals::Error>> {
        let _span = debug_span!("approvals.request", tenant = %self.scope.tenant).entered();
        let call = Call {
            interface: APPROVALS,
            function: "request",
            resource: &action,
        };
        if let Err(reason) = self.count_call()? {
            self.deny(&call, reason.clone())?;
            return Ok(Err(approvals::Error::LimitReached(reason)));
        }
        self.approvals = self.approvals.saturating_add(1);
        // Bounded before anything is recorded or shown to a person: the
        // texts go to the audit trail and to an approver's screen.
        let refusal = if self.approvals > MAX_APPROVALS {
            Some(format!(
                "approval requests exceed {MAX_APPROVALS} per invocation"
            ))
        } else if action.len() > MAX_ACTION_BYTES {
            Some(format!("action is over {MAX_ACTION_BYTES} bytes"))
        } else if detail.len() > MAX_DETAIL_BYTES {
            Some(format!("detail is over {MAX_DETAIL_BYTES} bytes"))
        } else if action.trim().is_empty() {
            Some("action is empty; say what the agent is about to do".into())
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.hit("max_approvals");
            self.deny(&call, reason.clone())?;
            return Ok(Err(approvals::Error::LimitReached(reason)));
        }

        let request = ApprovalRequest {
            id: format!("{}-a{}", self.scope.invocation, self.approvals),
            tenant: self.scope.tenant.clone(),
            invocation: self.scope.invocation.clone(),
            agent: self.scope.agent.clone(),
            actor: self.scope.actor.clone(),
            action,
            detail,
            deadline: self.deadline,
        };
        let asked = EventBody::ApprovalRequested {
            request: request.id.clone(),
            action: request.action.clone(),
            detail: request.detail.clone(),
        };
        audit::emit(&*self.audit, &self.scope, asked).map_err(wasmtime::Error::new)?;
        // A person is about to see the request: its event, and every one
        // before it, must be durable first.
        self.audit.flush().map_err(wasmtime::Error::new)?;

        let answer = self.approver.ask(&request);
        let (word, approver, reason, result) = match answer {
            ApprovalAnswer::Approved { approver } => (
                "approved",
                Some(approver),
                String::new(),
                Ok(approvals::Decision::Approved),
            ),
            ApprovalAnswer::Denied { approver, reason } => (
                "denied",
                Some(approver),
                reason,
                Ok(approvals::Decision::Denied),
            ),
            ApprovalAnswer::NoAnswer => {
                let why = "nobody answered before the invocation's deadline".to_owned();
                self.hit("approval_deadline");
                (
                    "no-answer",
                    None,
                    why.clone(),
                    Err(approvals::Error::LimitReached(why)),
                )
            }
            ApprovalAnswer::Unavailable(why) => (
                "unavailable",
                None,
                why.clone(),
                Err(approvals::Error::NotPermitted(why)),
            ),
        };
        let decided = EventBody::ApprovalDecided {
            request: request.id,
            answer: word.to_owned(),
            approver,
            reason: audit::bounded(&reason, audit::MAX_TEXT_BYTES),
        };
        audit::emit(&*self.audit, &self.scope, decided).map_err(wasmtime::Error::new)?;
        Ok(result)
    }
}

//! Control-plane events: one per operator request that changes state or
//! reads audit data, naming the actor, role, tenant, operation and outcome.
//!
//! They go to the `_control` stream through the audit module's one emit
//! function, like every other event, so that the same verifier checks them.

use warden_host_api::audit::{self, Decision, EventBody, HostScope};
use warden_runtime::{
    TenantId,
    audit::{AuditLogError, AuditLogs},
};

/// The `agent` field of events recorded by the daemon.
pub(crate) const DAEMON_COMPONENT: &str = "warden serve";
/// The `agent` field of events recorded by `warden token`.
pub(crate) const TOKEN_COMPONENT: &str = "warden token";
/// The role recorded for commands run on the host, which need no token.
pub(crate) const OPERATOR_ROLE: &str = "operator";

/// One control-plane request, as recorded.
#[derive(Clone, Debug)]
pub(crate) struct ControlRecord<'a> {
    /// The recording component: [`DAEMON_COMPONENT`] or [`TOKEN_COMPONENT`].
    pub(crate) component: &'static str,
    /// The request id (the daemon's) or the command's.
    pub(crate) request: &'a str,
    /// The tenant acted on, if any.
    pub(crate) tenant: Option<&'a TenantId>,
    /// Who asked.
    pub(crate) actor: &'a str,
    /// Their role.
    pub(crate) role: &'a str,
    /// What was asked.
    pub(crate) operation: &'a str,
    /// The object acted on.
    pub(crate) resource: &'a str,
    /// Whether the role allowed it.
    pub(crate) decision: Decision,
    /// `ok` or the error answered.
    pub(crate) outcome: &'a str,
    /// The HTTP status answered.
    pub(crate) status: Option<u16>,
}

/// Appends `record` to the control-plane stream.
///
/// # Errors
///
/// Fails when the stream cannot record; the caller then reports a failure
/// instead of a success nobody can account for.
pub(crate) fn record(logs: &AuditLogs, record: &ControlRecord<'_>) -> Result<(), AuditLogError> {
    let control = logs.control()?;
    let scope = HostScope {
        tenant: record.tenant.cloned(),
        component: record.component.into(),
        invocation: record.request.into(),
        actor: record.actor.into(),
    };
    audit::emit_host(
        &*control,
        &scope,
        EventBody::ControlRequest {
            role: record.role.into(),
            operation: record.operation.into(),
            resource: audit::bounded_resource(record.resource),
            decision: record.decision,
            outcome: audit::bounded(record.outcome, audit::MAX_TEXT_BYTES),
            status: record.status,
        },
    )
    .map_err(AuditLogError::Append)
}

//! `/v1/tenants/{tenant}/agents/{agent}/invoke` and
//! `/v1/tenants/{tenant}/runs/{run}`: invoke an agent, synchronously or
//! as a run to poll, and read a run with its audit events.

use std::{sync::Arc, time::Instant};

use axum::{
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use warden_runtime::{Agent, InvokeError, TenantId, secrets::SecretError};

use super::{
    super::{
        roles::Operation,
        runs::{Run, RunStatus},
    },
    ApiError, Caller, ErrorBody, Request, Shared, answer,
    audit::read_events,
    guarded, json_body, tenant_id, unknown_tenant,
};

/// `POST .../invoke` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvokeRequest {
    /// The agent's input: a string is passed as its UTF-8 bytes, any
    /// other JSON value as its JSON text.
    #[schema(value_type = Object)]
    pub(crate) input: serde_json::Value,
    /// Answer at once with a run id to poll (202) instead of waiting for
    /// the outcome (200). Default false.
    #[serde(default, rename = "async")]
    pub(crate) run_async: bool,
}

/// A run with its audit events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunWithEvents {
    /// The run.
    #[serde(flatten)]
    pub(crate) run: Run,
    /// The run's events from the tenant's audit log, in order.
    #[schema(value_type = Vec<Object>)]
    pub(crate) events: Vec<serde_json::Value>,
}

/// Invokes an agent. Synchronous by default: the answer carries the
/// outcome (the run's status is `failed` when the agent returned an error
/// or trapped). With `"async": true` the answer is 202 with the run to
/// poll.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/agents/{agent}/invoke", tag = "runs",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("agent" = String, Path, description = "Agent name")),
    request_body = InvokeRequest,
    responses((status = 200, body = Run), (status = 202, body = Run),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn invoke(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, agent)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let run_id = state.runtime.next_invocation_id();
    let resource = format!("{agent} run {run_id}");
    let req = Request {
        op: Operation::Invoke,
        name: "agents.invoke",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &resource,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let body: InvokeRequest = json_body(body)?;
        let input = match body.input {
            serde_json::Value::String(s) => s.into_bytes(),
            other => serde_json::to_vec(&other)
                .map_err(|e| ApiError::internal(format!("cannot encode the input: {e}")))?,
        };
        let loaded =
            tokio::task::block_in_place(|| state.agents.get(&state.runtime, &tenant, &agent))?;
        let run = state.runs.start(&run_id, &tenant, &agent, &caller);
        if body.run_async {
            let task_state = Arc::clone(&state);
            let actor = caller.actor.clone();
            let tenant = tenant.clone();
            tokio::spawn(async move {
                // The outcome lands in the run; how it ended is in the audit
                // log either way.
                let _ = execute(&task_state, &tenant, &loaded, input, &actor, run_id).await;
            });
            return answer(StatusCode::ACCEPTED, &run);
        }
        let (status, run) = execute(&state, &tenant, &loaded, input, &caller.actor, run_id).await?;
        answer(status, &run)
    })
    .await
}

/// Runs the invocation and records its end in the run and the metrics.
async fn execute(
    state: &Shared,
    tenant: &TenantId,
    agent: &Agent,
    input: Vec<u8>,
    actor: &str,
    run_id: String,
) -> Result<(StatusCode, Run), ApiError> {
    let started = Instant::now();
    let result = state
        .runtime
        .invoke_as(tenant, agent, &input, actor, run_id.clone())
        .await;
    let (outcome, status) = match &result {
        Ok(_) => ("ok", StatusCode::OK),
        Err(InvokeError::Busy { .. }) => ("busy", StatusCode::TOO_MANY_REQUESTS),
        Err(InvokeError::InputTooLarge { .. }) => ("refused", StatusCode::PAYLOAD_TOO_LARGE),
        Err(InvokeError::InvalidInput { .. }) => ("invalid-input", StatusCode::OK),
        Err(InvokeError::Failed { .. }) => ("failed", StatusCode::OK),
        Err(InvokeError::Trap { .. } | InvokeError::Commit { .. }) => ("trap", StatusCode::OK),
        // The tenant lacks a secret the agent's grant names, or its store
        // is not in a state warden will read: the operator's to fix.
        Err(InvokeError::Secret(
            SecretError::Missing { .. }
            | SecretError::NotASecret { .. }
            | SecretError::Permissions { .. },
        )) => ("refused", StatusCode::CONFLICT),
        Err(_) => ("host-error", StatusCode::INTERNAL_SERVER_ERROR),
    };
    state.metrics.invocation(tenant, outcome, started.elapsed());
    let run = state
        .runs
        .finish(&run_id, result.map_err(|e| e.to_string()))
        .ok_or_else(|| {
            ApiError::internal(format!(
                "run {run_id} was forgotten while running; this is a warden bug, please report it"
            ))
        })?;
    if status.is_success() {
        Ok((status, run))
    } else {
        Err(ApiError::new(
            status,
            run.error.unwrap_or_else(|| "the invocation failed".into()),
        ))
    }
}

/// A run: status, outcome and its audit events. Reading the events is
/// recorded in the control-plane stream.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/runs/{run}", tag = "runs",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("run" = String, Path, description = "Run id")),
    responses((status = 200, body = RunWithEvents), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn show(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, run_id)): Path<(String, String)>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let req = Request {
        op: Operation::RunsRead,
        name: "runs.show",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &run_id,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let run = state.runs.get(&tenant, &run_id).ok_or_else(|| {
            ApiError::not_found(format!(
                "no run {run_id} in tenant {tenant}; runs are kept in memory until the daemon \
                 restarts, the audit log keeps their events"
            ))
        })?;
        let mut run = run;
        if run.status == RunStatus::Running
            && let Some(approval) = state.approvals.waiting_for(&run.id)
        {
            run.status = RunStatus::Waiting;
            run.approval = Some(approval);
        }
        let events = if matches!(run.status, RunStatus::Running | RunStatus::Waiting) {
            Vec::new()
        } else {
            let filter = super::audit::EventFilter {
                invocation: Some(run_id.clone()),
                ..Default::default()
            };
            read_events(
                &state,
                &warden_runtime::audit::StreamId::Tenant(tenant.clone()),
                &caller.actor,
                &filter,
            )?
        };
        answer(StatusCode::OK, &RunWithEvents { run, events })
    })
    .await
}

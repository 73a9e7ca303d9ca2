//! `/v1/tenants/{tenant}/agents`: deploy, list, show and remove agents.

use std::sync::OnceLock;

use axum::{
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::Response,
};
use base64::Engine as _;
use serde::Deserialize;

use super::{
    super::{agents::AgentInfo, roles::Operation},
    ApiError, Caller, ErrorBody, Request, Shared, answer, guarded, json_body, tenant_id,
    unknown_tenant,
};

/// `POST /v1/tenants/{tenant}/agents` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployAgent {
    /// The text of the agent's `agent.toml`; its `component` field is
    /// replaced by the uploaded component.
    pub(crate) manifest: String,
    /// The component's bytes, base64 (standard alphabet, padded).
    pub(crate) component_base64: String,
    /// The component's sha256, hex: the deployment is admitted only when
    /// the uploaded bytes have this digest.
    pub(crate) sha256: String,
}

/// Deploys an agent: admitted by its component's sha256, validated exactly
/// as `warden run` loads one, and shown with its effective grant.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/agents", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = DeployAgent,
    responses((status = 201, body = AgentInfo), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn deploy(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path(tenant): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let named = OnceLock::new();
    let req = Request {
        op: Operation::AgentsDeploy,
        name: "agents.deploy",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: "",
        late: Some(&named),
    };
    guarded(&state, &caller, req, || async {
        let body: DeployAgent = json_body(body)?;
        let component = base64::engine::general_purpose::STANDARD
            .decode(body.component_base64.as_bytes())
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "component_base64 is not base64: {e}; encode the .wasm file with the \
                     standard alphabet"
                ))
            })?;
        let info = tokio::task::block_in_place(|| {
            state.agents.deploy(
                &state.runtime,
                &tenant,
                &body.manifest,
                &component,
                &body.sha256,
                &caller.actor,
            )
        })?;
        let _ = named.set(info.name.clone());
        answer(StatusCode::CREATED, &info)
    })
    .await
}

/// Lists a tenant's agents with their effective grants.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/agents", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, body = [AgentInfo]), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path(tenant): Path<String>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let req = Request {
        op: Operation::AgentsRead,
        name: "agents.list",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let list = tokio::task::block_in_place(|| state.agents.list(&state.runtime, &tenant))?;
        answer(StatusCode::OK, &list)
    })
    .await
}

/// Shows one agent with its effective grant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/agents/{agent}", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("agent" = String, Path, description = "Agent name")),
    responses((status = 200, body = AgentInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn show(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, agent)): Path<(String, String)>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let req = Request {
        op: Operation::AgentsRead,
        name: "agents.show",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &agent,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let loaded =
            tokio::task::block_in_place(|| state.agents.get(&state.runtime, &tenant, &agent))?;
        answer(
            StatusCode::OK,
            &super::super::agents::info(&tenant, &loaded),
        )
    })
    .await
}

/// Removes an agent; runs already going finish.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/agents/{agent}", tag = "agents",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("agent" = String, Path, description = "Agent name")),
    responses((status = 200, body = AgentInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, agent)): Path<(String, String)>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let req = Request {
        op: Operation::AgentsRemove,
        name: "agents.remove",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &agent,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let removed = tokio::task::block_in_place(|| {
            state
                .agents
                .remove(&state.runtime, &tenant, &agent, &caller.actor)
        })?;
        answer(StatusCode::OK, &removed)
    })
    .await
}

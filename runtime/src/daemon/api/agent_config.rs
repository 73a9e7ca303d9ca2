//! `/v1/tenants/{tenant}/agents/{agent}/config`: the non-secret values an
//! agent reads through `warden:agent/config`, set by a tenant admin.
//!
//! The same operations as `warden config set|unset|list`: each goes
//! through [`ControlPlane`](warden_runtime::ControlPlane), which records a
//! `control-change` event with the digests of the old and new value (never
//! the value) before the change is stored.

use axum::{
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use warden_runtime::{ControlError, control::Change};

use super::{
    super::roles::Operation, ApiError, Caller, ErrorBody, Request, Shared, answer, guarded,
    json_body, tenant_id, unknown_tenant,
};

/// `PUT .../config/{key}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetConfig {
    /// The value: at most 4 KiB of printable text.
    pub(crate) value: String,
}

/// One config value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ConfigValue {
    /// The key.
    pub(crate) key: String,
    /// The value.
    pub(crate) value: String,
}

/// What a set or unset did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ConfigChange {
    /// The key.
    pub(crate) key: String,
    /// False when the value was already as asked: nothing was recorded.
    pub(crate) changed: bool,
    /// What changed, in plain words, as the control-plane event says it.
    pub(crate) change: String,
}

impl ConfigChange {
    fn new(key: &str, change: Change) -> Self {
        Self {
            key: key.to_owned(),
            changed: change.changed,
            change: change.change,
        }
    }
}

/// The status a control-plane error is answered with.
pub(crate) fn control_error(e: ControlError) -> ApiError {
    let status = match &e {
        ControlError::Actor(_)
        | ControlError::AgentName(_)
        | ControlError::ConfigKey { .. }
        | ControlError::ConfigValue { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ControlError::TooManyConfigKeys { .. } | ControlError::TooManyConfigAgents { .. } => {
            StatusCode::CONFLICT
        }
        ControlError::ConfigNotSet { .. } | ControlError::NotAllowed { .. } => {
            StatusCode::NOT_FOUND
        }
        ControlError::State(_)
        | ControlError::Store(_)
        | ControlError::AuditLog(_)
        | ControlError::Audit(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.to_string())
}

/// Lists the config values set for an agent of a tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/agents/{agent}/config", tag = "config",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("agent" = String, Path, description = "Agent name, as in its manifest")),
    responses((status = 200, body = [ConfigValue]), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, agent)): Path<(String, String)>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let req = Request {
        op: Operation::Config,
        name: "config.list",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &agent,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let values =
            tokio::task::block_in_place(|| state.runtime.control().config_values(&tenant, &agent))
                .map_err(control_error)?;
        let values: Vec<ConfigValue> = values
            .into_iter()
            .map(|(key, value)| ConfigValue { key, value })
            .collect();
        answer(StatusCode::OK, &values)
    })
    .await
}

/// Sets a config value; the agent reads it when its grant names the key.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/agents/{agent}/config/{key}", tag = "config",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("agent" = String, Path, description = "Agent name, as in its manifest"),
        ("key" = String, Path, description = "1 to 64 of a-z, 0-9, '_', '-' and '.', starting with a letter")),
    request_body = SetConfig,
    responses((status = 200, body = ConfigChange), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn set(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, agent, key)): Path<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let resource = format!("{agent}/{key}");
    let req = Request {
        op: Operation::Config,
        name: "config.set",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &resource,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let body: SetConfig = json_body(body)?;
        let change = tokio::task::block_in_place(|| {
            state
                .runtime
                .control()
                .set_config(&tenant, &agent, &key, &body.value, &caller.actor)
        })
        .map_err(control_error)?;
        answer(StatusCode::OK, &ConfigChange::new(&key, change))
    })
    .await
}

/// Removes a config value.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/agents/{agent}/config/{key}", tag = "config",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("agent" = String, Path, description = "Agent name, as in its manifest"),
        ("key" = String, Path, description = "The key")),
    responses((status = 200, body = ConfigChange), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn unset(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, agent, key)): Path<(String, String, String)>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let resource = format!("{agent}/{key}");
    let req = Request {
        op: Operation::Config,
        name: "config.unset",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &resource,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let change = tokio::task::block_in_place(|| {
            state
                .runtime
                .control()
                .unset_config(&tenant, &agent, &key, &caller.actor)
        })
        .map_err(control_error)?;
        answer(StatusCode::OK, &ConfigChange::new(&key, change))
    })
    .await
}

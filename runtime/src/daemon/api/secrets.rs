//! `/v1/tenants/{tenant}/secrets`: a tenant admin lists secret names, sets
//! and removes secrets.
//!
//! The same store and the same operations as `warden secrets`: each change
//! is a `secret-changed` event in the control-plane stream, naming the
//! actor and the secret, before the change is made. A value is accepted in
//! a request body and never answered, logged or recorded; its digest is
//! not recorded either.

use std::time::UNIX_EPOCH;

use axum::{
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use warden_host_api::secrets::SecretValue;
use warden_runtime::secrets::SecretError;
use zeroize::Zeroizing;

use super::{
    super::roles::Operation, ApiError, Caller, ErrorBody, Request, Shared, answer, guarded,
    json_body, tenant_id, unknown_tenant,
};

/// `PUT .../secrets/{name}` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSecret {
    /// The value, as UTF-8 text. Never answered or recorded.
    pub(crate) value: String,
}

/// A secret as the API shows it: never its value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SecretEntry {
    /// The secret's name.
    pub(crate) name: String,
    /// When it was last set, milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) set_unix_ms: Option<u64>,
}

/// The status a secret store error is answered with. Host paths stay in
/// the daemon's log.
fn secret_error(e: SecretError) -> ApiError {
    match e {
        SecretError::Name(_)
        | SecretError::Actor(_)
        | SecretError::Empty { .. }
        | SecretError::TooLarge { .. } => ApiError::unprocessable(e.to_string()),
        SecretError::NotFound { .. } | SecretError::Missing { .. } => {
            ApiError::not_found(e.to_string())
        }
        SecretError::Audit(_) => ApiError::internal(e.to_string()),
        SecretError::Permissions { .. }
        | SecretError::NotASecret { .. }
        | SecretError::Io { .. } => {
            let cause = std::error::Error::source(&e).map(ToString::to_string);
            tracing::error!(error = %e, cause = cause.as_deref().unwrap_or(""), "the secret store failed");
            ApiError::internal(
                "the tenant's secret store cannot be used; the operator finds the cause in the \
                 daemon's log",
            )
        }
    }
}

/// Lists a tenant's secrets by name, with when each was set.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/secrets", tag = "secrets",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, body = [SecretEntry]), (status = 404, body = ErrorBody)),
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
        op: Operation::Secrets,
        name: "secrets.list",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let list = tokio::task::block_in_place(|| state.runtime.secret_store().list(&tenant))
            .map_err(secret_error)?;
        let list: Vec<SecretEntry> = list
            .into_iter()
            .map(|info| SecretEntry {
                name: info.name,
                set_unix_ms: info
                    .set_at
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .and_then(|d| u64::try_from(d.as_millis()).ok()),
            })
            .collect();
        answer(StatusCode::OK, &list)
    })
    .await
}

/// Sets (creates or replaces) a tenant's secret.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/secrets/{name}", tag = "secrets",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("name" = String, Path, description = "1 to 64 of a-z, 0-9, '-' and '_'")),
    request_body = SetSecret,
    responses((status = 200, body = SecretEntry), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn set(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let req = Request {
        op: Operation::Secrets,
        name: "secrets.set",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &name,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let body: SetSecret = json_body(body)?;
        let value = SecretValue::new(Zeroizing::new(body.value.into_bytes()));
        tokio::task::block_in_place(|| {
            state.runtime.secret_store().set(
                state.runtime.audit_logs(),
                &caller.actor,
                &tenant,
                &name,
                &value,
            )
        })
        .map_err(secret_error)?;
        answer(
            StatusCode::OK,
            &SecretEntry {
                name: name.clone(),
                set_unix_ms: None,
            },
        )
    })
    .await
}

/// Removes a tenant's secret; agents whose grant names it stop loading.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/secrets/{name}", tag = "secrets",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("name" = String, Path, description = "The secret's name")),
    responses((status = 200, body = SecretEntry), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let req = Request {
        op: Operation::Secrets,
        name: "secrets.remove",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &name,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        tokio::task::block_in_place(|| {
            state.runtime.secret_store().remove(
                state.runtime.audit_logs(),
                &caller.actor,
                &tenant,
                &name,
            )
        })
        .map_err(secret_error)?;
        answer(
            StatusCode::OK,
            &SecretEntry {
                name: name.clone(),
                set_unix_ms: None,
            },
        )
    })
    .await
}

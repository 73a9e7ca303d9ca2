//! `/v1/tokens`: create, list and revoke API tokens (platform admin).
//!
//! The same [`TokenStore`](super::super::tokens::TokenStore) operations as
//! `warden token create|list|revoke`.

use axum::{
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use warden_runtime::TenantId;

use super::{
    super::{
        roles::{Operation, Role},
        tokens::{NewToken, TokenInfo},
    },
    ApiError, Caller, ErrorBody, Request, Shared, answer, guarded, json_body,
};

/// `POST /v1/tokens` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    /// The actor the token names in every event.
    pub(crate) actor: String,
    /// The role.
    pub(crate) role: Role,
    /// The tenant, for tenant-admin and invoker (and a one-tenant auditor).
    #[serde(default)]
    pub(crate) tenant: Option<String>,
    /// How long it works, for example `30days`; until revoked when absent.
    #[serde(default)]
    pub(crate) expires: Option<String>,
}

/// A new token: its secret is shown here once and never again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedToken {
    /// The bearer token to hand to its holder.
    pub(crate) token: String,
    /// The token as listed.
    pub(crate) info: TokenInfo,
}

/// Creates a token.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<Shared>,
    Caller(caller): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let named = std::sync::OnceLock::new();
    let req = Request {
        op: Operation::Tokens,
        name: "tokens.create",
        tenant: None,
        tenant_must_exist: false,
        resource: "",
        late: Some(&named),
    };
    guarded(&state, &caller, req, || async {
        let body: CreateToken = json_body(body)?;
        let tenant = body
            .tenant
            .as_deref()
            .map(TenantId::new)
            .transpose()
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        if let Some(t) = &tenant
            && !state.tenant_exists(t)
        {
            return Err(ApiError::unprocessable(format!(
                "no tenant {t}; create it first with POST /v1/tenants"
            )));
        }
        let expires = body
            .expires
            .as_deref()
            .map(humantime::parse_duration)
            .transpose()
            .map_err(|e| {
                ApiError::unprocessable(format!(
                    "expires is not a duration ({e}); use for example 30days"
                ))
            })?;
        let new = NewToken {
            actor: body.actor,
            role: body.role,
            tenant,
            expires,
        };
        let (info, token) = state
            .tokens
            .create(&new)
            .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        let _ = named.set(info.id.clone());
        answer(StatusCode::CREATED, &CreatedToken { token, info })
    })
    .await
}

/// Lists tokens, without their secrets.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = [TokenInfo]), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(State(state): State<Shared>, Caller(caller): Caller) -> Response {
    let req = Request {
        op: Operation::Tokens,
        name: "tokens.list",
        tenant: None,
        tenant_must_exist: false,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let list = state
            .tokens
            .list()
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        answer(StatusCode::OK, &list)
    })
    .await
}

/// Revokes a token; it stays listed.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Response {
    let req = Request {
        op: Operation::Tokens,
        name: "tokens.revoke",
        tenant: None,
        tenant_must_exist: false,
        resource: &id,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        match state.tokens.get(&id) {
            Ok(Some(_)) => {}
            Ok(None) => return Err(ApiError::not_found(format!("no token {id}"))),
            Err(e) => return Err(ApiError::internal(format!("{e:#}"))),
        }
        let info = state
            .tokens
            .revoke(&id)
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, format!("{e:#}")))?;
        answer(StatusCode::OK, &info)
    })
    .await
}

//! `/v1/tenants`: list and create tenants.
//!
//! A tenant exists once it has a configuration file,
//! `<data-dir>/tenants/<id>.toml`, the same file `warden run` reads its
//! limits from. Creating a tenant writes that file, validated first.

use axum::{
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use warden_runtime::{TenantId, tenant::config::config_path};

use super::{
    super::roles::Operation, ApiError, Caller, ErrorBody, Request, Shared, answer, guarded,
    json_body,
};

/// A tenant as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct TenantInfo {
    /// The tenant id.
    pub(crate) id: String,
}

/// `POST /v1/tenants` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    /// The new tenant's id: 1 to 64 of a-z, 0-9, `-` and `_`.
    pub(crate) id: String,
    /// The text of its configuration file (TOML, `[limits]`); the defaults
    /// when absent.
    #[serde(default)]
    pub(crate) config: Option<String>,
}

/// Lists the tenants the caller may see: all of them for a platform admin
/// or an auditor of all tenants, otherwise the caller's own.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, body = [TenantInfo]), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn list(State(state): State<Shared>, Caller(caller): Caller) -> Response {
    let req = Request {
        op: Operation::TenantsList,
        name: "tenants.list",
        tenant: None,
        tenant_must_exist: false,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let dir = state.runtime.data_dir().join("tenants");
        let mut ids = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".toml")) else {
                    continue;
                };
                let Ok(id) = TenantId::new(id) else { continue };
                if caller.tenant.as_ref().is_none_or(|own| *own == id) {
                    ids.push(TenantInfo {
                        id: id.as_str().to_owned(),
                    });
                }
            }
        }
        ids.sort_by(|a, b| a.id.cmp(&b.id));
        answer(StatusCode::OK, &ids)
    })
    .await
}

/// Creates a tenant (platform admin only).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantInfo), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<Shared>,
    Caller(caller): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The id is recorded as the resource even when the body turns out bad.
    let named = body
        .as_ref()
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("id")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    let req = Request {
        op: Operation::TenantsCreate,
        name: "tenants.create",
        tenant: None,
        tenant_must_exist: false,
        resource: &named,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let body: CreateTenant = json_body(body)?;
        let id = TenantId::new(&body.id).map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let text = body.config.unwrap_or_default();
        state
            .runtime
            .parse_tenant_config(&text)
            .map_err(|e| ApiError::unprocessable(format!("tenant {id} config: {e}")))?;
        let path = config_path(state.runtime.data_dir(), &id);
        let dir = path.parent().unwrap_or(state.runtime.data_dir());
        std::fs::create_dir_all(dir)
            .map_err(|e| ApiError::internal(format!("cannot create the tenants directory: {e}")))?;
        // Written aside and linked into place: the file appears whole or
        // not at all, and link(2) refuses to replace an existing tenant.
        let tmp = dir.join(format!(".{id}.toml.new-{}", std::process::id()));
        std::fs::write(&tmp, &text)
            .map_err(|e| ApiError::internal(format!("cannot write tenant {id}'s config: {e}")))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => answer(
                StatusCode::CREATED,
                &TenantInfo {
                    id: id.as_str().to_owned(),
                },
            ),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("tenant {id} exists already"),
            )),
            Err(e) => Err(ApiError::internal(format!(
                "cannot write tenant {id}'s config: {e}"
            ))),
        }
    })
    .await
}

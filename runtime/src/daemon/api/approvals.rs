//! `/v1/tenants/{tenant}/approvals`: the requests agents are waiting on,
//! and their answers.

use axum::{
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;
use warden_host_api::warden_agent::ApprovalAnswer;

use super::{
    super::{
        approvals::{AnswerError, PendingApproval},
        roles::Operation,
    },
    ApiError, Caller, ErrorBody, Request, Shared, answer, guarded, json_body, tenant_id,
    unknown_tenant,
};

/// `POST .../approvals/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerApproval {
    /// True to approve, false to deny.
    pub(crate) approve: bool,
    /// Why, recorded with the answer.
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// Longest reason accepted, in bytes.
const MAX_REASON_BYTES: usize = 4 * 1024;

/// Lists the approval requests a tenant's agents are waiting on.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/approvals", tag = "approvals",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, body = [PendingApproval]), (status = 404, body = ErrorBody)),
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
        op: Operation::Approve,
        name: "approvals.list",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        answer(StatusCode::OK, &state.approvals.list(&tenant))
    })
    .await
}

/// Approves or denies a waiting request. The answer names the caller; a
/// caller may not answer a request their own token caused.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/approvals/{id}", tag = "approvals",
    params(("tenant" = String, Path, description = "Tenant id"),
        ("id" = String, Path, description = "Approval request id")),
    request_body = AnswerApproval,
    responses((status = 200, description = "Answered"), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn decide(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path((tenant, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let tenant = match tenant_id(&tenant) {
        Ok(t) => t,
        Err(e) => return unknown_tenant(&state, &caller, &tenant, e),
    };
    let req = Request {
        op: Operation::Approve,
        name: "approvals.decide",
        tenant: Some(&tenant),
        tenant_must_exist: true,
        resource: &id,
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let body: AnswerApproval = json_body(body)?;
        let reason = body.reason.unwrap_or_default();
        if reason.len() > MAX_REASON_BYTES {
            return Err(ApiError::bad_request(format!(
                "reason is over {MAX_REASON_BYTES} bytes; say it shorter"
            )));
        }
        let missing = || {
            ApiError::not_found(format!(
                "no approval request {id} is waiting in tenant {tenant}; it may have been \
                 answered or reached its deadline"
            ))
        };
        let run = state.approvals.run_of(&tenant, &id).ok_or_else(missing)?;
        // Four eyes: the token that started the run cannot answer for it.
        if state.runs.token_of(&run).as_deref() == Some(caller.token_id.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "approval request {id} was caused by this token's own run; another \
                     approver must answer it"
                ),
            ));
        }
        let approver = format!("{} ({})", caller.actor, caller.role);
        let decision = if body.approve {
            ApprovalAnswer::Approved { approver }
        } else {
            ApprovalAnswer::Denied { approver, reason }
        };
        state
            .approvals
            .answer(&tenant, &id, decision)
            .map_err(|AnswerError::NotFound| missing())?;
        answer(
            StatusCode::OK,
            &serde_json::json!({ "id": id, "approved": body.approve }),
        )
    })
    .await
}

//! The HTTP API: routes, authentication, the role check and the
//! control-plane event every request leaves.
//!
//! Each `/v1` handler goes through [`guarded`]: it authenticates the bearer
//! token (an [`Caller`] extractor, before the body is read), asks
//! [`authorize`] whether the role may do the operation on the tenant named,
//! checks that the tenant exists, runs the operation, and records one
//! control-plane event with the decision and the outcome. Errors are JSON,
//! `{"error": "..."}`, with one line naming the problem and the fix.
//!
//! The handlers live in one file per resource: `api/tenants.rs`,
//! `api/agents.rs`, `api/agent_config.rs`, `api/secrets.rs`, `api/runs.rs`,
//! `api/approvals.rs`, `api/audit.rs`, `api/tokens.rs`.

pub(crate) mod agent_config;
pub(crate) mod agents;
pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod runs;
pub(crate) mod secrets;
pub(crate) mod tenants;
pub(crate) mod tokens;

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequestParts, State, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use serde::{Serialize, de::DeserializeOwned};
use warden_host_api::audit::Decision;
use warden_runtime::{Runtime, TenantId, tenant::config::config_path};

use super::{
    agents::AgentStore,
    approvals::Approvals,
    control::{self, ControlRecord, DAEMON_COMPONENT},
    metrics::Metrics,
    roles::{Operation, Principal, Refusal, authorize},
    runs::Runs,
    tokens::{AuthError, TokenStore},
};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) tokens: TokenStore,
    pub(crate) agents: AgentStore,
    pub(crate) runs: Runs,
    pub(crate) approvals: Arc<Approvals>,
    pub(crate) metrics: Metrics,
    /// False once shutdown began: `/readyz` then answers 503.
    pub(crate) ready: AtomicBool,
    requests: AtomicU64,
}

impl AppState {
    /// State over `runtime`, with the token store opened.
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        approvals: Arc<Approvals>,
        tokens: TokenStore,
        max_runs: usize,
    ) -> Self {
        Self {
            approvals,
            agents: AgentStore::new(runtime.data_dir()),
            runtime,
            tokens,
            runs: Runs::new(max_runs),
            metrics: Metrics::new(),
            ready: AtomicBool::new(true),
            requests: AtomicU64::new(0),
        }
    }

    /// A request id for the control-plane event, unique in this process.
    fn next_request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        format!(
            "req-{:x}-{:x}-{n}",
            crate::audit_cmd::now_ms(),
            std::process::id()
        )
    }

    /// Whether `tenant` has been created (has a configuration file).
    fn tenant_exists(&self, tenant: &TenantId) -> bool {
        config_path(self.runtime.data_dir(), tenant).is_file()
    }
}

/// The shared state as handlers receive it.
pub(crate) type Shared = Arc<AppState>;

/// An error answered as `{"error": message}` with `status`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    /// An error with any status.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such thing, or nothing the caller may see.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 422: well-formed but invalid content (a manifest, a component).
    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 500: the host failed.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The JSON body of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// One line naming the problem and, where the caller can, the fix.
    pub(crate) error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = warden_host_api::scope::printable(&self.message);
        (self.status, Json(ErrorBody { error: message })).into_response()
    }
}

/// A successful answer: a status and a JSON body.
pub(crate) type Answer = (StatusCode, serde_json::Value);

/// Serialises `value` as the answer's body.
pub(crate) fn answer<T: Serialize>(status: StatusCode, value: &T) -> Result<Answer, ApiError> {
    serde_json::to_value(value)
        .map(|v| (status, v))
        .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))
}

/// The caller, authenticated from the `Authorization: Bearer` header.
#[derive(Debug)]
pub(crate) struct Caller(pub(crate) Principal);

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let result = match token {
            None => Err(AuthError::Missing),
            Some(token) => state.tokens.authenticate(token),
        };
        match result {
            Ok(who) => Ok(Caller(who)),
            Err(e) => {
                // A token we made but that no longer works names an actor:
                // its refusal is recorded. Requests with no token or a
                // forged one are not, so that anyone who can reach the port
                // cannot grow the audit log; they are counted instead.
                if let AuthError::Revoked { id, actor } | AuthError::Expired { id, actor } = &e {
                    let request = state.next_request_id();
                    let outcome = e.to_string();
                    let recorded = control::record(
                        state.runtime.audit_logs(),
                        &ControlRecord {
                            component: DAEMON_COMPONENT,
                            request: &request,
                            tenant: None,
                            actor,
                            role: "unauthenticated",
                            operation: "authenticate",
                            resource: id,
                            decision: Decision::Deny,
                            outcome: &outcome,
                            status: Some(401),
                        },
                    );
                    if let Err(e) = recorded {
                        tracing::error!(error = %e, "cannot record a refused token");
                    }
                }
                state.metrics.denial(None, "authenticate");
                Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
            }
        }
    }
}

/// Parses a JSON request body, naming what is wrong with it.
pub(crate) fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "request body is over the daemon's max_body_bytes; send a smaller body or raise \
                 max_body_bytes in the daemon config",
            )
        } else {
            ApiError::new(
                status,
                format!("cannot read the request body: {}", rejection.body_text()),
            )
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "request body is not valid JSON for this endpoint: {}; see /v1/openapi.json",
            body_error(&e)
        ))
    })
}

/// serde_json's message about a body, without any value from the body:
/// "invalid type: string \"...\"" would copy what the caller sent (a
/// secret, say) into the answer and the control-plane audit event.
fn body_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m);
    let message = if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("invalid length")
    {
        match message.split_once(", expected ") {
            Some((_, expected)) => {
                format!("a value has the wrong type or form, expected {expected}")
            }
            None => "a value has the wrong type or form".to_owned(),
        }
    } else {
        message.to_owned()
    };
    format!("{message} at line {} column {}", e.line(), e.column())
}

/// Parses a tenant id from a path; an invalid one is a tenant that does
/// not exist.
pub(crate) fn tenant_id(text: &str) -> Result<TenantId, ApiError> {
    TenantId::new(text).map_err(|e| ApiError::not_found(format!("no tenant {text:?}: {e}")))
}

/// Answers a request whose path names a tenant id that cannot exist (bad
/// characters, too long) with the 404 any unknown tenant gets, and records
/// the refusal in the control-plane stream like every other.
pub(crate) fn unknown_tenant(
    state: &Shared,
    caller: &Principal,
    text: &str,
    e: ApiError,
) -> Response {
    let resource = warden_host_api::audit::bounded_resource(text);
    state.metrics.denial(None, "tenant");
    let recorded = record_request(
        state,
        caller,
        None,
        "tenant.resolve",
        &resource,
        Decision::Deny,
        &e.message,
        e.status,
    );
    if let Err(err) = recorded {
        tracing::error!(error = %err, "cannot record a request for an impossible tenant id");
    }
    e.into_response()
}

/// Records one request in the control-plane stream. The append waits for
/// its group commit to reach the disk: off the async workers, like every
/// other blocking step.
#[expect(clippy::too_many_arguments, reason = "one per field of the event")]
fn record_request(
    state: &Shared,
    caller: &Principal,
    tenant: Option<&TenantId>,
    operation: &str,
    resource: &str,
    decision: Decision,
    outcome: &str,
    status: StatusCode,
) -> Result<(), warden_runtime::audit::AuditLogError> {
    let request = state.next_request_id();
    tokio::task::block_in_place(|| {
        control::record(
            state.runtime.audit_logs(),
            &ControlRecord {
                component: DAEMON_COMPONENT,
                request: &request,
                tenant,
                actor: &caller.actor,
                role: caller.role.as_str(),
                operation,
                resource,
                decision,
                outcome,
                status: Some(status.as_u16()),
            },
        )
    })
}

/// What a guarded request does, for the check and the record.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// The role question asked.
    pub(crate) op: Operation,
    /// The name recorded, for example `agents.deploy`.
    pub(crate) name: &'static str,
    /// The tenant named, which must exist unless `tenant_must_exist` is off.
    pub(crate) tenant: Option<&'a TenantId>,
    /// Whether the tenant must have been created.
    pub(crate) tenant_must_exist: bool,
    /// The object acted on, recorded.
    pub(crate) resource: &'a str,
    /// The object when only the operation learns it (an agent's name from
    /// its manifest); recorded instead of `resource` once set.
    pub(crate) late: Option<&'a OnceLock<String>>,
}

/// Runs `work` for `caller` if the role allows `req`, and records one
/// control-plane event with the decision and outcome.
pub(crate) async fn guarded<F, Fut>(
    state: &Shared,
    caller: &Principal,
    req: Request<'_>,
    work: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let refused = authorize(caller, req.op, req.tenant).map_err(|refusal| match refusal {
        Refusal::Forbidden => ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "role {} may not {}; use a token with a role that may",
                caller.role, req.name
            ),
        ),
        Refusal::NotFound => not_found_tenant(req.tenant),
    });
    let (decision, result) = match refused {
        Err(e) => {
            // Labelled only with a tenant that exists: a caller must not
            // be able to add label values (or learn tenants) by naming them.
            let label = req.tenant.filter(|t| state.tenant_exists(t));
            state.metrics.denial(label, req.name);
            (Decision::Deny, Err(e))
        }
        Ok(()) => match req.tenant {
            Some(t) if req.tenant_must_exist && !state.tenant_exists(t) => {
                (Decision::Allow, Err(not_found_tenant(Some(t))))
            }
            _ => (Decision::Allow, work().await),
        },
    };
    let (status, outcome) = match &result {
        Ok((status, _)) => (*status, "ok".to_owned()),
        Err(e) => (e.status, e.message.clone()),
    };
    let resource = req
        .late
        .and_then(OnceLock::get)
        .map_or(req.resource, String::as_str);
    let recorded = record_request(
        state, caller, req.tenant, req.name, resource, decision, &outcome, status,
    );
    if let Err(e) = recorded {
        // TODO: an operation that changed state before its event failed to
        // record stays done; the caller sees 500 and the daemon's log has
        // the error. Recording a "started" event first would close the gap
        // at the cost of two events per request.
        tracing::error!(error = %e, operation = req.name, "cannot record a control-plane request");
        return ApiError::internal(format!(
            "the control-plane audit stream cannot record ({e}); the operator must fix the data \
             directory"
        ))
        .into_response();
    }
    match result {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn not_found_tenant(tenant: Option<&TenantId>) -> ApiError {
    match tenant {
        Some(t) => ApiError::not_found(format!(
            "no tenant {t}; a platform admin creates tenants with POST /v1/tenants"
        )),
        None => ApiError::not_found("not found"),
    }
}

/// The daemon's routes.
pub(crate) fn router(state: Shared, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(super::openapi::serve))
        .route("/v1/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/v1/tenants/{tenant}/agents",
            get(agents::list).post(agents::deploy),
        )
        .route(
            "/v1/tenants/{tenant}/agents/{agent}",
            get(agents::show).delete(agents::remove),
        )
        .route(
            "/v1/tenants/{tenant}/agents/{agent}/invoke",
            post(runs::invoke),
        )
        .route(
            "/v1/tenants/{tenant}/agents/{agent}/config",
            get(agent_config::list),
        )
        .route(
            "/v1/tenants/{tenant}/agents/{agent}/config/{key}",
            put(agent_config::set).delete(agent_config::unset),
        )
        .route("/v1/tenants/{tenant}/secrets", get(secrets::list))
        .route(
            "/v1/tenants/{tenant}/secrets/{name}",
            put(secrets::set).delete(secrets::remove),
        )
        .route("/v1/tenants/{tenant}/runs/{run}", get(runs::show))
        .route("/v1/tenants/{tenant}/approvals", get(approvals::list))
        .route(
            "/v1/tenants/{tenant}/approvals/{id}",
            post(approvals::decide),
        )
        .route("/v1/audit/{stream}/events", get(audit::events))
        .route("/v1/audit/{stream}/verify", post(audit::verify))
        .route("/v1/audit/{stream}/checkpoint", post(audit::checkpoint))
        .route("/v1/audit/{stream}/proof", get(audit::proof))
        .route("/v1/audit/{stream}/export", post(audit::export))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The daemon is alive")))]
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the daemon takes requests (503 once shutdown began).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "Shutting down")))]
pub(crate) async fn readyz(State(state): State<Shared>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    }
}

/// Prometheus metrics in the text exposition format. They are labelled by
/// tenant, so only a platform admin or an auditor of every tenant may read
/// them (a scraper is given such a token).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn metrics(State(state): State<Shared>, Caller(caller): Caller) -> Response {
    if authorize(&caller, Operation::Metrics, None).is_err() {
        state.metrics.denial(None, "metrics.read");
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "role {} may not read metrics, which name every tenant; use a platform-admin \
                 token or an auditor token for all tenants",
                caller.role
            ),
        );
        // Refusals are recorded; allowed reads are not, so that a scraper
        // does not grow the control-plane log every few seconds.
        let recorded = record_request(
            &state,
            &caller,
            None,
            "metrics.read",
            "",
            Decision::Deny,
            &e.message,
            e.status,
        );
        if let Err(err) = recorded {
            tracing::error!(error = %err, "cannot record a refused metrics read");
        }
        return e.into_response();
    }
    let text = state.metrics.render(&state.runtime);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint; see /v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint; see /v1/openapi.json",
    )
}

//! `/v1/audit/{stream}/...`: events with filters, verify, checkpoint,
//! proof and export, for a tenant's stream or `_control`.
//!
//! Each calls the same operation as its `warden audit` command (in
//! `audit_cmd.rs`), which records the read in the control-plane stream
//! before it reads anything.

use axum::{
    body::Bytes,
    extract::{Path, Query, State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use warden_runtime::audit::{
    StreamId, VerifyError, VerifyOptions,
    export::{CHECKPOINT_FILE, EVENTS_FILE, PROOFS_FILE},
    for_each_record,
    stream::MARKER_FILE,
};

use super::{
    super::roles::Operation, ApiError, Caller, ErrorBody, Request, Shared, answer, guarded,
    json_body, tenant_id,
};
use crate::audit_cmd::{self, ProofOf};

/// Default most events one request returns.
const DEFAULT_EVENT_LIMIT: usize = 1000;
/// Most events one request may ask for.
const MAX_EVENT_LIMIT: usize = 10_000;

/// Filters for `GET .../events`; all optional.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventFilter {
    /// Only events of this invocation (a run id).
    pub(crate) invocation: Option<String>,
    /// Only events of this agent (or host component).
    pub(crate) agent: Option<String>,
    /// Only events whose body has this type, for example `host-call`.
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    /// Only events after this sequence number.
    pub(crate) after: Option<u64>,
    /// At most this many events; default 1000, at most 10000.
    pub(crate) limit: Option<usize>,
}

impl EventFilter {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(i) = &self.invocation {
            parts.push(format!("invocation {i}"));
        }
        if let Some(a) = &self.agent {
            parts.push(format!("agent {a}"));
        }
        if let Some(k) = &self.kind {
            parts.push(format!("type {k}"));
        }
        if let Some(n) = self.after {
            parts.push(format!("after {n}"));
        }
        if parts.is_empty() {
            "all".into()
        } else {
            parts.join(", ")
        }
    }
}

/// One stored event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StoredEvent {
    /// Its sequence number in the stream.
    pub(crate) seq: u64,
    /// The event as stored.
    #[schema(value_type = Object)]
    pub(crate) event: serde_json::Value,
}

/// `_control` or a tenant id, and the role question it asks.
fn stream(text: &str) -> Result<(StreamId, Operation), ApiError> {
    if text == StreamId::Control.name() {
        return Ok((StreamId::Control, Operation::ControlAuditRead));
    }
    Ok((StreamId::Tenant(tenant_id(text)?), Operation::AuditRead))
}

/// 404 unless `stream` has a log.
fn require_log(state: &Shared, stream: &StreamId) -> Result<(), ApiError> {
    if stream
        .dir(state.runtime.data_dir())
        .join(MARKER_FILE)
        .exists()
    {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no audit log for {stream} yet; it starts with the first invocation"
        )))
    }
}

/// Records the read, then returns the events of `stream` that pass
/// `filter`; shared with the runs endpoint.
pub(crate) fn read_events(
    state: &Shared,
    stream: &StreamId,
    actor: &str,
    filter: &EventFilter,
) -> Result<Vec<serde_json::Value>, ApiError> {
    require_log(state, stream)?;
    let limit = filter.limit.unwrap_or(DEFAULT_EVENT_LIMIT);
    if !(1..=MAX_EVENT_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is outside 1..={MAX_EVENT_LIMIT}; page with `after`"
        )));
    }
    let logs = state.runtime.audit_logs();
    tokio::task::block_in_place(|| {
        audit_cmd::record_show(logs, stream, actor, &filter.describe())
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        let mut out = Vec::new();
        let read = for_each_record(logs.data_dir(), stream, |record, _| {
            if out.len() >= limit || filter.after.is_some_and(|a| record.seq <= a) {
                return Ok(());
            }
            let event: serde_json::Value =
                serde_json::from_slice(record.event).unwrap_or(serde_json::Value::Null);
            let field = |k: &str| event.get(k).and_then(serde_json::Value::as_str);
            let keep = filter
                .invocation
                .as_deref()
                .is_none_or(|i| field("invocation") == Some(i))
                && filter
                    .agent
                    .as_deref()
                    .is_none_or(|a| field("agent") == Some(a))
                && filter.kind.as_deref().is_none_or(|k| {
                    event
                        .get("body")
                        .and_then(|b| b.get("type"))
                        .and_then(serde_json::Value::as_str)
                        == Some(k)
                });
            if keep {
                out.push(serde_json::json!({ "seq": record.seq, "event": event }));
            }
            Ok(())
        });
        read.map_err(|e: VerifyError| ApiError::internal(e.to_string()))?;
        Ok(out)
    })
}

/// A stream's events, filtered.
#[utoipa::path(get, path = "/v1/audit/{stream}/events", tag = "audit",
    params(("stream" = String, Path, description = "A tenant id or `_control`"), EventFilter),
    responses((status = 200, body = [StoredEvent]), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn events(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    filter: Result<Query<EventFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (stream, op) = match stream(&name) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let req = Request {
        op,
        name: "audit.events",
        tenant: stream.tenant(),
        tenant_must_exist: true,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let Query(filter) =
            filter.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
        let events = read_events(&state, &stream, &caller.actor, &filter)?;
        answer(StatusCode::OK, &events)
    })
    .await
}

/// The outcome of a verification.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct VerifyAnswer {
    /// Whether the log verified.
    pub(crate) ok: bool,
    /// What was checked, or the first problem found.
    pub(crate) summary: String,
    /// Events checked, when it verified.
    pub(crate) events: Option<u64>,
}

/// Verifies a stream against its signed checkpoints with the data
/// directory's key. A log that fails is a 200 with `ok: false`.
#[utoipa::path(post, path = "/v1/audit/{stream}/verify", tag = "audit",
    params(("stream" = String, Path, description = "A tenant id or `_control`")),
    responses((status = 200, body = VerifyAnswer), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn verify(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Response {
    let (stream, op) = match stream(&name) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let req = Request {
        op,
        name: "audit.verify",
        tenant: stream.tenant(),
        tenant_must_exist: true,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        require_log(&state, &stream)?;
        let logs = state.runtime.audit_logs();
        let result = tokio::task::block_in_place(|| {
            audit_cmd::verify_stream(logs, &stream, &VerifyOptions::default(), &caller.actor)
        });
        let body = match result {
            Ok(report) => VerifyAnswer {
                ok: true,
                summary: audit_cmd::describe_report(&stream, &report),
                events: Some(report.events),
            },
            Err(e) => VerifyAnswer {
                ok: false,
                summary: format!("{e:#}"),
                events: None,
            },
        };
        answer(StatusCode::OK, &body)
    })
    .await
}

/// Signs (if needed) and returns a checkpoint of everything recorded.
#[utoipa::path(post, path = "/v1/audit/{stream}/checkpoint", tag = "audit",
    params(("stream" = String, Path, description = "A tenant id or `_control`")),
    responses((status = 200, description = "A signed checkpoint"),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn checkpoint(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Response {
    let (stream, op) = match stream(&name) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let req = Request {
        op,
        name: "audit.checkpoint",
        tenant: stream.tenant(),
        tenant_must_exist: true,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        require_log(&state, &stream)?;
        let checkpoint = tokio::task::block_in_place(|| {
            audit_cmd::checkpoint(state.runtime.audit_logs(), &stream)
        })
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
        answer(StatusCode::OK, &checkpoint)
    })
    .await
}

/// `GET .../proof` query: exactly one of the two.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProofQuery {
    /// Prove this event (sequence number) is in the log.
    pub(crate) event: Option<u64>,
    /// Prove the log extends the tree of its first N events.
    pub(crate) old_size: Option<u64>,
}

/// An inclusion or consistency proof against the latest checkpoint.
#[utoipa::path(get, path = "/v1/audit/{stream}/proof", tag = "audit",
    params(("stream" = String, Path, description = "A tenant id or `_control`"), ProofQuery),
    responses((status = 200, description = "The proof"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn proof(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    query: Result<Query<ProofQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (stream, op) = match stream(&name) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let req = Request {
        op,
        name: "audit.proof",
        tenant: stream.tenant(),
        tenant_must_exist: true,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let Query(query) =
            query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
        let of = match (query.event, query.old_size) {
            (Some(seq), None) => ProofOf::Event(seq),
            (None, Some(n)) => ProofOf::OldSize(n),
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one of ?event=SEQ or ?old_size=N",
                ));
            }
        };
        require_log(&state, &stream)?;
        let proof = tokio::task::block_in_place(|| {
            audit_cmd::prove(state.runtime.audit_logs(), &stream, of, &caller.actor)
        })
        .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        answer(StatusCode::OK, &proof)
    })
    .await
}

/// `POST .../export` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    /// Start: an RFC 3339 time, a date, or an age such as `24h`.
    pub(crate) since: String,
    /// End, in the same forms; default now.
    #[serde(default)]
    pub(crate) until: Option<String>,
}

/// An export: the files `warden audit export` writes, inline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ExportAnswer {
    /// `events.jsonl`: the events in the range.
    pub(crate) events_jsonl: String,
    /// `proofs.jsonl`: an inclusion proof per event.
    pub(crate) proofs_jsonl: String,
    /// `checkpoint.json`: the checkpoint they are proved against.
    pub(crate) checkpoint_json: String,
}

/// Exports a time range with its checkpoint and proofs, verifiable with
/// `warden audit verify-export` once written to files.
#[utoipa::path(post, path = "/v1/audit/{stream}/export", tag = "audit",
    params(("stream" = String, Path, description = "A tenant id or `_control`")),
    request_body = ExportRequest,
    responses((status = 200, body = ExportAnswer), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<Shared>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (stream, op) = match stream(&name) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let req = Request {
        op,
        name: "audit.export",
        tenant: stream.tenant(),
        tenant_must_exist: true,
        resource: "",
        late: None,
    };
    guarded(&state, &caller, req, || async {
        let body: ExportRequest = json_body(body)?;
        let since = audit_cmd::parse_time("since", &body.since)
            .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        let until = match &body.until {
            Some(u) => audit_cmd::parse_time("until", u)
                .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?,
            None => audit_cmd::now_ms(),
        };
        if until < since {
            return Err(ApiError::unprocessable(
                "until is before since; give a range that moves forward in time",
            ));
        }
        require_log(&state, &stream)?;
        let dir = state
            .runtime
            .data_dir()
            .join("exports")
            .join(state.runtime.next_invocation_id());
        let result = tokio::task::block_in_place(|| {
            let report = audit_cmd::export_range(
                state.runtime.audit_logs(),
                &stream,
                (since, until),
                &dir,
                &caller.actor,
            );
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let files = ExportAnswer {
                events_jsonl: read(EVENTS_FILE),
                proofs_jsonl: read(PROOFS_FILE),
                checkpoint_json: read(CHECKPOINT_FILE),
            };
            let _ = std::fs::remove_dir_all(&dir);
            report.map(|_| files)
        });
        let files = result.map_err(|e| ApiError::internal(format!("{e:#}")))?;
        answer(StatusCode::OK, &files)
    })
    .await
}

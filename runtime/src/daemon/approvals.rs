//! The daemon's approval queue: the [`Approver`] of its runtime.
//!
//! An agent's `approvals.request` lands here and its invocation thread
//! waits (at most until the invocation's deadline) while the request is
//! listed at `GET /v1/tenants/{tenant}/approvals` and its run shows as
//! `waiting`. A tenant admin or platform admin answers it with `POST
//! /v1/tenants/{tenant}/approvals/{id}`; the answer names them, and the
//! capability records it in the tenant's audit trail before the agent
//! sees it. Nobody may answer a request that their own token caused.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError, mpsc},
    time::Instant,
};

use serde::Serialize;
use warden_host_api::warden_agent::{ApprovalAnswer, ApprovalRequest, Approver};
use warden_runtime::TenantId;

/// A waiting request, as the API lists it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PendingApproval {
    /// The request id.
    pub(crate) id: String,
    /// The run (invocation) waiting for it.
    pub(crate) run: String,
    /// The agent asking.
    pub(crate) agent: String,
    /// Who started the run.
    pub(crate) actor: String,
    /// What the agent is about to do.
    pub(crate) action: String,
    /// Why.
    pub(crate) detail: String,
    /// Milliseconds left before the run's deadline refuses it.
    pub(crate) remaining_ms: u64,
}

struct Waiting {
    request: ApprovalRequest,
    answer: mpsc::SyncSender<ApprovalAnswer>,
}

/// Requests waiting for a person.
#[derive(Default)]
pub(crate) struct Approvals {
    waiting: Mutex<HashMap<String, Waiting>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

/// Why an answer was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AnswerError {
    /// No such request is waiting in this tenant.
    NotFound,
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The requests of `tenant` waiting now, oldest deadline first.
    pub(crate) fn list(&self, tenant: &TenantId) -> Vec<PendingApproval> {
        let now = Instant::now();
        let mut out: Vec<PendingApproval> = self
            .lock()
            .values()
            .filter(|w| w.request.tenant == *tenant)
            .map(|w| PendingApproval {
                id: w.request.id.clone(),
                run: w.request.invocation.clone(),
                agent: w.request.agent.clone(),
                actor: w.request.actor.clone(),
                action: w.request.action.clone(),
                detail: w.request.detail.clone(),
                remaining_ms: u64::try_from(
                    w.request
                        .deadline
                        .saturating_duration_since(now)
                        .as_millis(),
                )
                .unwrap_or(u64::MAX),
            })
            .collect();
        out.sort_by_key(|p| p.remaining_ms);
        out
    }

    /// The waiting request of run `invocation`, if any.
    pub(crate) fn waiting_for(&self, invocation: &str) -> Option<String> {
        self.lock()
            .values()
            .find(|w| w.request.invocation == invocation)
            .map(|w| w.request.id.clone())
    }

    /// The run that request `id` of `tenant` belongs to.
    pub(crate) fn run_of(&self, tenant: &TenantId, id: &str) -> Option<String> {
        self.lock()
            .get(id)
            .filter(|w| w.request.tenant == *tenant)
            .map(|w| w.request.invocation.clone())
    }

    /// Answers request `id` of `tenant`.
    pub(crate) fn answer(
        &self,
        tenant: &TenantId,
        id: &str,
        answer: ApprovalAnswer,
    ) -> Result<(), AnswerError> {
        let waiting = {
            let mut map = self.lock();
            match map.get(id) {
                Some(w) if w.request.tenant == *tenant => map.remove(id),
                _ => None,
            }
        };
        let waiting = waiting.ok_or(AnswerError::NotFound)?;
        // The waiting thread may have given up at its deadline a moment
        // ago; then the answer is dropped and the event says no-answer.
        waiting
            .answer
            .try_send(answer)
            .map_err(|_| AnswerError::NotFound)
    }
}

impl Approver for Approvals {
    fn ask(&self, request: &ApprovalRequest) -> ApprovalAnswer {
        let (tx, rx) = mpsc::sync_channel(1);
        self.lock().insert(
            request.id.clone(),
            Waiting {
                request: request.clone(),
                answer: tx,
            },
        );
        let wait = request.deadline.saturating_duration_since(Instant::now());
        let wait_for = || rx.recv_timeout(wait).unwrap_or(ApprovalAnswer::NoAnswer);
        // A short guest runs in place on the async worker that invoked it;
        // a wait of minutes must not hold that worker, so the worker's
        // other tasks move to another thread while this one waits.
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait_for)
            }
            _ => wait_for(),
        };
        self.lock().remove(&request.id);
        answer
    }
}

//! Runs: invocations made through the daemon, kept for polling.
//!
//! A run's id is its invocation id, so that its events are found in the
//! tenant's audit log by that id. Runs are kept in memory, up to
//! `max_runs`; beyond that the oldest finished run is forgotten. The record
//! of what happened stays in the audit log either way.
//!
//! TODO: runs do not survive a restart of the daemon; a client polling a
//! run across a restart gets 404 and reads the run's events from the
//! audit endpoints instead.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
};

use serde::Serialize;
use tokio::sync::watch;
use warden_runtime::TenantId;

use super::roles::Principal;
use crate::audit_cmd::now_ms;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RunStatus {
    /// The agent is running or waiting for a slot.
    Running,
    /// The agent is waiting for a person to answer an approval request.
    Waiting,
    /// The agent returned an output.
    Succeeded,
    /// The agent returned an error, trapped, hit a limit or was refused.
    Failed,
}

/// A run as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Run {
    /// The run id, also the invocation id in the tenant's audit events.
    pub(crate) id: String,
    /// The tenant it runs for.
    pub(crate) tenant: String,
    /// The agent.
    pub(crate) agent: String,
    /// Who started it.
    pub(crate) actor: String,
    /// Where it is.
    pub(crate) status: RunStatus,
    /// The agent's output (lossily decoded as UTF-8), once it succeeded.
    pub(crate) output: Option<String>,
    /// Why it failed, once it did.
    pub(crate) error: Option<String>,
    /// When it started, ms since the Unix epoch.
    pub(crate) started_unix_ms: u64,
    /// When it finished.
    pub(crate) finished_unix_ms: Option<u64>,
    /// The approval request it waits on, while it does.
    pub(crate) approval: Option<String>,
    /// The token that started it; never shown.
    #[serde(skip)]
    pub(crate) token_id: String,
}

/// The runs of this daemon.
#[derive(Debug)]
pub(crate) struct Runs {
    inner: Mutex<Inner>,
    max: usize,
    /// The number of runs going on, watched by the shutdown.
    running: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    runs: HashMap<String, Run>,
    order: VecDeque<String>,
}

impl Runs {
    /// Keeps at most `max` runs.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max,
            running: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that run `id` started.
    pub(crate) fn start(&self, id: &str, tenant: &TenantId, agent: &str, who: &Principal) -> Run {
        let run = Run {
            id: id.to_owned(),
            tenant: tenant.as_str().to_owned(),
            agent: agent.to_owned(),
            actor: who.actor.clone(),
            status: RunStatus::Running,
            output: None,
            error: None,
            started_unix_ms: now_ms(),
            finished_unix_ms: None,
            approval: None,
            token_id: who.token_id.clone(),
        };
        let mut inner = self.lock();
        while inner.order.len() >= self.max {
            // Forget the oldest finished run; running ones stay, since a
            // client is waiting for them.
            let Some(pos) = inner.order.iter().position(|id| {
                inner
                    .runs
                    .get(id)
                    .is_some_and(|r| r.status != RunStatus::Running)
            }) else {
                break;
            };
            if let Some(old) = inner.order.remove(pos) {
                inner.runs.remove(&old);
            }
        }
        inner.runs.insert(id.to_owned(), run.clone());
        inner.order.push_back(id.to_owned());
        drop(inner);
        self.running.send_modify(|n| *n += 1);
        run
    }

    /// Records how run `id` ended; returns it.
    pub(crate) fn finish(&self, id: &str, result: Result<Vec<u8>, String>) -> Option<Run> {
        let mut inner = self.lock();
        let run = inner.runs.get_mut(id)?;
        match result {
            Ok(output) => {
                run.status = RunStatus::Succeeded;
                run.output = Some(String::from_utf8_lossy(&output).into_owned());
            }
            Err(error) => {
                run.status = RunStatus::Failed;
                run.error = Some(error);
            }
        }
        run.finished_unix_ms = Some(now_ms());
        let run = run.clone();
        drop(inner);
        self.running.send_modify(|n| *n = n.saturating_sub(1));
        Some(run)
    }

    /// Run `id` of `tenant`; `None` also when it belongs to another tenant.
    pub(crate) fn get(&self, tenant: &TenantId, id: &str) -> Option<Run> {
        self.lock()
            .runs
            .get(id)
            .filter(|r| r.tenant == tenant.as_str())
            .cloned()
    }

    /// The token that started run `id`.
    pub(crate) fn token_of(&self, id: &str) -> Option<String> {
        self.lock().runs.get(id).map(|r| r.token_id.clone())
    }

    /// Waits until no run is going on.
    pub(crate) async fn idle(&self) {
        let mut rx = self.running.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

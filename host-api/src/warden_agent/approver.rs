//! Who answers an agent's `approvals.request`: the [`Approver`] the runtime
//! was given.
//!
//! The capability (in `host.rs`) bounds and records the request, asks the
//! approver, and records the answer; the approver only finds a person and
//! waits. An approver must never wait past [`ApprovalRequest::deadline`]:
//! the guest is blocked in the call meanwhile, where the invocation's
//! wall-clock deadline cannot reach it.

use std::time::Instant;

use crate::scope::TenantId;

/// Longest `action` text accepted, in bytes.
pub const MAX_ACTION_BYTES: usize = 256;
/// Longest `detail` text accepted, in bytes.
pub const MAX_DETAIL_BYTES: usize = 4 * 1024;
/// Most approval requests one invocation may make.
pub const MAX_APPROVALS: u32 = 8;

/// One request for approval, as an approver sees it.
#[derive(Clone, Debug)]
pub struct ApprovalRequest {
    /// Unique id: the invocation id and a counter.
    pub id: String,
    /// The tenant the agent runs for.
    pub tenant: TenantId,
    /// The invocation asking.
    pub invocation: String,
    /// The agent asking.
    pub agent: String,
    /// Who caused the invocation.
    pub actor: String,
    /// What the agent is about to do, one line.
    pub action: String,
    /// Why.
    pub detail: String,
    /// The invocation's wall-clock deadline; no answer may be awaited past
    /// it.
    pub deadline: Instant,
}

/// How an approval request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApprovalAnswer {
    /// `approver` approved.
    Approved {
        /// Who approved, as recorded.
        approver: String,
    },
    /// `approver` denied.
    Denied {
        /// Who denied, as recorded.
        approver: String,
        /// Why, when they said.
        reason: String,
    },
    /// Nobody answered before the deadline.
    NoAnswer,
    /// Nobody can be asked; the string says why.
    Unavailable(String),
}

/// Finds a person to answer approval requests.
pub trait Approver: Send + Sync + std::fmt::Debug {
    /// Asks for a decision on `request`, waiting at most until its
    /// deadline.
    fn ask(&self, request: &ApprovalRequest) -> ApprovalAnswer;
}

/// The approver of a runtime that has none: every request is unavailable.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoApprover;

impl Approver for NoApprover {
    fn ask(&self, _request: &ApprovalRequest) -> ApprovalAnswer {
        ApprovalAnswer::Unavailable("no approver is configured for this runtime".into())
    }
}

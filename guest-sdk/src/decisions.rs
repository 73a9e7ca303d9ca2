//! The agent's own account of what it decided and why.
//!
//! Decisions land in the tenant's audit trail beside the calls that led to
//! them. No grant is needed.

use crate::bindings::warden::agent::decisions as wit;

/// Why a decision was not recorded: `LimitReached` when a field is over
/// 4 KiB or more than 100 decisions were recorded in one invocation.
pub use wit::Error;

/// Records that the agent decided `outcome` about `subject`, because of
/// `reason`.
///
/// # Errors
///
/// [`Error::LimitReached`] when a field is too long or the invocation has
/// recorded too many decisions.
pub fn record(subject: &str, outcome: &str, reason: &str) -> Result<(), Error> {
    wit::record(&wit::Decision {
        subject: subject.to_owned(),
        outcome: outcome.to_owned(),
        reason: reason.to_owned(),
    })
}

//! Human approval for actions an agent should not take on its own.
//!
//! The agent describes the action and waits for a person's answer, at most
//! until its invocation's deadline. The request and the answer, with who
//! answered and when, are in the tenant's audit trail. No grant is needed.

use crate::bindings::warden::agent::approvals as wit;

/// The answer: [`Decision::Approved`] or [`Decision::Denied`].
pub use wit::Decision;
/// Why no answer came: `NotPermitted` when nobody can be asked (for
/// example `warden run` without a terminal), `LimitReached` when the
/// deadline passed, the agent asked more than 8 times, or a text is too
/// long.
pub use wit::Error;

/// Asks a person to approve `action` (one line, at most 256 bytes),
/// explained by `detail` (at most 4 KiB), and waits for the answer.
///
/// # Errors
///
/// [`Error::NotPermitted`] when nobody can be asked, [`Error::LimitReached`]
/// when nobody answered in time or a limit was passed.
pub fn request(action: &str, detail: &str) -> Result<Decision, Error> {
    wit::request(action, detail)
}

//! Config values the operator set for this agent of the invoking tenant.
//!
//! Values are non-secret text (at most 4 KiB) an operator sets with
//! `warden config set --tenant T --agent A KEY VALUE`. The agent's manifest
//! names the keys it may read:
//!
//! ```toml
//! [grants]
//! config = ["currency", "approval_limit"]
//! ```
//!
//! Every read is recorded in the tenant's audit trail with the key and the
//! digest of the value.

use crate::bindings::warden::agent::config as wit;

/// Why a config read did not succeed.
///
/// - `NotPermitted(why)`: the grant does not name the key (or the key is not
///   a valid key);
/// - `NotFound`: the key is granted but no value is set;
/// - `LimitReached(which)`: the key is over 64 bytes, or the calls per
///   invocation are used up;
/// - `Other(text)`: the host failed.
pub use wit::Error;

/// Returns the value set for `key`.
///
/// # Errors
///
/// [`Error::NotPermitted`] unless the manifest's config grant names `key`;
/// [`Error::NotFound`] when it is granted but not set.
pub fn get(key: &str) -> Result<String, Error> {
    wit::get(key)
}

/// Returns the value set for `key`, or `None` when the key is granted but
/// not set: for a setting with a default.
///
/// # Errors
///
/// [`Error::NotPermitted`] unless the manifest's config grant names `key`,
/// and the other errors of [`get`] except [`Error::NotFound`].
pub fn get_optional(key: &str) -> Result<Option<String>, Error> {
    match wit::get(key) {
        Ok(value) => Ok(Some(value)),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

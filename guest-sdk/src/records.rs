//! The tenant's key-value records.
//!
//! Keys are `/`-separated paths such as `vendors/ACME-001`: non-empty, at most
//! 512 bytes, no control characters, no empty, `.` or `..` segments, and in
//! Unicode NFC. The agent's manifest grants key prefixes, read or read-write;
//! a prefix matches whole segments only, so `invoices` never covers
//! `invoices-archive/1`. Every call is recorded in the tenant's audit trail.

use crate::bindings::warden::agent::records as wit;

/// Why a records call did not succeed.
///
/// - `NotPermitted(why)`: outside the agent's grant, or a write to a
///   read-only prefix;
/// - `NotFound`: no record under the key;
/// - `LimitReached(which)`: value size, list size or calls per invocation;
/// - `InvalidKey(rule)`: the key breaks a key rule;
/// - `Other(text)`: the store failed.
pub use wit::Error;

/// Returns the value stored under `key`.
///
/// # Errors
///
/// [`Error::NotFound`] when there is none; [`Error::NotPermitted`] when no
/// granted prefix covers `key`.
pub fn get(key: &str) -> Result<Vec<u8>, Error> {
    wit::get(key)
}

/// Stores `value` under `key`, replacing any previous value.
///
/// # Errors
///
/// [`Error::NotPermitted`] unless a read-write prefix covers `key`;
/// [`Error::LimitReached`] for a value over the host's maximum (1 MiB by
/// default).
pub fn put(key: &str, value: &[u8]) -> Result<(), Error> {
    wit::put(key, value)
}

/// Deletes the record under `key`.
///
/// # Errors
///
/// [`Error::NotFound`] when there is none; [`Error::NotPermitted`] unless a
/// read-write prefix covers `key`.
pub fn delete(key: &str) -> Result<(), Error> {
    wit::delete(key)
}

/// Lists the keys equal to `prefix` or under `prefix/`, in byte order.
///
/// # Errors
///
/// [`Error::NotPermitted`] unless a granted prefix covers `prefix`;
/// [`Error::LimitReached`] when more keys match than the host returns at once
/// (1,000 by default).
pub fn list(prefix: &str) -> Result<Vec<String>, Error> {
    wit::list(prefix)
}

//! The tenant's secrets, by name.
//!
//! Secrets stay on the host. An agent usually never reads one: its manifest
//! grants the secret and says where the host uses it, for example
//!
//! ```toml
//! [[grants.secrets]]
//! name = "payments-key"
//!
//! [[grants.http]]
//! scheme = "https"
//! host = "api.payments.test"
//! headers = { authorization = "Bearer {{secret:payments-key}}" }
//! ```
//!
//! and the host adds the header to each request that entry allows. Only a
//! grant entry with `reveal = true` lets [`reveal`] return the value. Every
//! call is recorded in the tenant's audit trail by the secret's name.

use crate::bindings::warden::agent::secrets as wit;

/// Why a secret could not be read.
///
/// - `NotPermitted(why)`: the grant does not name it, or not with
///   `reveal = true`;
/// - `NotFound`: the tenant holds no value under that name;
/// - `LimitReached(which)`: a name over 64 bytes, or too many reads in one
///   invocation;
/// - `Other(text)`: anything else.
pub use wit::Error;

/// Returns the value of the secret `name`.
///
/// Keep it out of the agent's output, stdout and stderr: those reach the
/// caller and the audit trail as written.
///
/// # Errors
///
/// [`Error::NotPermitted`] unless the manifest grants `name` with
/// `reveal = true`.
pub fn reveal(name: &str) -> Result<Vec<u8>, Error> {
    wit::reveal(name)
}

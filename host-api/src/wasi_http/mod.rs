//! Host side of `wasi:http`: outbound requests checked against the agent's
//! egress grant.
//!
//! [`scope`] decides, from strings and addresses alone, whether a request
//! may go out: it canonicalises the target, matches it against the
//! [`HttpGrant`] and checks every resolved address.

pub mod scope;

pub use scope::{EgressRule, HttpGrant};

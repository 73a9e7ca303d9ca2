//! warden's runtime: run tenants' agents as WebAssembly components, each
//! invocation in its own store, with every capability call checked and
//! recorded.
//!
//! A [`Runtime`] owns the process's one wasmtime engine (pooling allocator,
//! epoch deadlines), the compiled components, the SQLite state database and
//! each tenant's audit log. [`Runtime::load_agent`] reads an agent manifest
//! and compiles its component once; [`Runtime::invoke`] runs it for one
//! [`TenantId`] in a fresh store whose host capabilities (from
//! `warden-host-api`) check the agent's grant and write every decision to
//! that tenant's Merkle audit log (signed checkpoints, proofs) before
//! touching any backend.
//!
//! Modules:
//!
//! - [`engine`]: engine configuration and the epoch ticker;
//! - [`tenant`]: tenant ids and configuration, limits, the concurrency gate,
//!   the resource limiter and the store data type;
//! - [`manifest`]: agent manifests and their grants;
//! - [`grants`]: grants in plain words, for review and for control-plane
//!   events;
//! - [`control`]: the control plane, the operator's changes to which agents
//!   each tenant may run, each recorded in the `_control` audit stream;
//! - [`agent`]: a loaded agent;
//! - [`state`]: tenant records in SQLite, written per invocation through a
//!   transaction;
//! - [`audit`]: the per-tenant audit log and its verifier;
//! - [`runtime`]: [`Runtime`] and [`RuntimeBuilder`];
//! - [`secrets`]: each tenant's secrets on disk, owner-only, every change
//!   recorded in the control-plane stream;
//! - [`toml_file`]: bounded reads of operator files and one-line TOML errors.
//! - [`toml_file`]: bounded reads of operator files and one-line TOML errors;
//! - `wasi`: the standard WASI interfaces linked beside warden's own
//!   `wasi:filesystem`.
//!
//! The `warden` binary is a thin command-line layer over this crate.

#![warn(missing_docs)]

pub mod agent;
pub mod audit;
pub mod control;
pub mod engine;
pub mod grants;
pub mod manifest;
pub mod runtime;
pub mod secrets;
pub mod state;
pub mod tenant;
pub mod toml_file;
mod wasi;

pub use agent::{Agent, LoadError};
pub use control::{ControlError, ControlPlane};
pub use runtime::{AuditDurability, InvokeError, Runtime, RuntimeBuilder};
pub use tenant::{
    TenantId,
    config::TenantConfig,
    limits::{Ceilings, TenantLimits},
};

//! The host side of warden's WIT capabilities.
//!
//! For every call a guest makes, this crate decides the scope, records the
//! decision, then touches the backend. It knows nothing about engines or
//! processes: the runtime creates stores, picks backends and implements the
//! audit sink, then lends each store's state to the code here.
//!
//! How the pieces fit:
//!
//! - [`scope`] holds [`scope::TenantId`] and [`scope::InstanceScope`], the
//!   tenant and attribution the runtime binds to each store. Guests never
//!   name their tenant.
//! - [`audit`] defines [`audit::AuditEvent`], the [`audit::AuditSink`] trait
//!   the runtime implements, and [`audit::emit`], the only function that
//!   emits events.
//! - [`warden_agent`] implements the `warden:agent` package (`records`,
//!   `decisions`, `config`) over an [`warden_agent::AgentCtx`]; its `scope`
//!   module is the pure decision "may this agent touch this key, read this
//!   config value, see this field?".
//! - [`wasi_http`] guards outbound HTTP (`wasi:http`): its `scope` module
//!   is the pure decision "may this agent send this request there?".
//! - [`secrets`] holds secret values (redacted, zeroed on drop) and the
//!   pure decision "may this agent read this secret?"; the `secrets`
//!   interface of [`warden_agent`] and the egress headers of [`wasi_http`]
//!   use it.
//! - [`wasi_filesystem`] serves `wasi:filesystem` over the agent's granted
//!   directories: its `scope` module is the pure decision "may this agent
//!   reach this path, this way?".
//! - [`error`] holds errors shared by capabilities.
//!
//! # Example
//!
//! Linking the capabilities into a wasmtime linker for a store type that
//! lends out its [`warden_agent::AgentCtx`]:
//!
//! ```
//! use warden_host_api::warden_agent::{self, AgentCtx, AgentView};
//! use wasmtime::{Engine, component::Linker};
//!
//! struct InstanceState {
//!     agent: AgentCtx,
//! }
//!
//! impl AgentView for InstanceState {
//!     fn agent_ctx(&mut self) -> &mut AgentCtx {
//!         &mut self.agent
//!     }
//! }
//!
//! let engine = Engine::default();
//! let mut linker = Linker::<InstanceState>::new(&engine);
//! warden_agent::add_to_linker(&mut linker)?;
//! # Ok::<(), wasmtime::Error>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod audit;
pub mod error;
pub mod scope;
pub mod secrets;
pub mod warden_agent;
pub mod wasi_filesystem;
pub mod wasi_http;

//! The data type of one invocation's store.

use warden_host_api::warden_agent::{AgentCtx, AgentView};
use wasmtime::{StoreLimits, component::ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Everything one instance's host calls need, owned by its store.
///
/// Lives exactly as long as one invocation: a fresh one is built for every
/// call, bound to one tenant, and dropped with the store.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) agent: AgentCtx,
    pub(crate) limits: StoreLimits,
}

impl std::fmt::Debug for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceState")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl AgentView for InstanceState {
    fn agent_ctx(&mut self) -> &mut AgentCtx {
        &mut self.agent
    }
}

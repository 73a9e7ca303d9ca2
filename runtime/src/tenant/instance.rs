//! The data type of one invocation's store.

use warden_host_api::{
    warden_agent::{AgentCtx, AgentView, SecretsCtx, SecretsView},
    wasi_filesystem::{FilesCtx, FilesCtxView, FilesView},
    wasi_http::{HttpCtx, HttpView, WasiHttpCtxView, WasiHttpView},
};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limiter::TenantLimiter;

/// Everything one instance's host calls need, owned by its store.
///
/// Lives exactly as long as one invocation: a fresh one is built for every
/// call, bound to one tenant, and dropped with the store.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) agent: AgentCtx,
    pub(crate) http: HttpCtx,
    pub(crate) secrets: SecretsCtx,
    pub(crate) files: FilesCtx,
    pub(crate) limiter: TenantLimiter,
    /// CPU time the invocation has used, metered per poll.
    pub(crate) cpu: std::sync::Arc<crate::runtime::drive::CpuMeter>,
    /// The tenant's `cpu_timeout`.
    pub(crate) cpu_timeout: std::time::Duration,
}

impl std::fmt::Debug for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceState")
            .field("agent", &self.agent)
            .field("cpu_timeout", &self.cpu_timeout)
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

impl SecretsView for InstanceState {
    fn secrets_ctx(&mut self) -> &mut SecretsCtx {
        &mut self.secrets
    }
}

impl HttpView for InstanceState {
    fn http_ctx(&mut self) -> &mut HttpCtx {
        &mut self.http
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.http.view(&mut self.table)
    }
}

impl FilesView for InstanceState {
    fn files(&mut self) -> FilesCtxView<'_> {
        FilesCtxView {
            ctx: &mut self.files,
            table: &mut self.table,
        }
    }
}

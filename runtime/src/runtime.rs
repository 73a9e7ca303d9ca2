//! [`Runtime`]: load agents, invoke them for tenants.
//!
//! An invocation goes through these steps, each recorded in the tenant's
//! audit log:
//!
//! 1. start event; input size checked against `max_input_bytes`;
//! 2. a running slot from the tenant's gate (or a busy refusal);
//! 3. a fresh store bound to the tenant, with the tenant's limiter, CPU
//!    ticks and a transaction for its record writes;
//! 4. the guest runs under the tenant's wall-clock deadline;
//! 5. limit hits, std stream lines;
//! 6. on success the writes are committed, otherwise rolled back;
//! 7. finish event.
//!
//! The events are held in memory by the invocation's [`InvocationLog`] and
//! appended to the tenant's log in batches: before the writes are
//! committed, before any outgoing request, and before the invocation
//! returns (see [`AuditDurability`] for the guarantee). The guest runs in
//! place on the caller's task until it proves busy (see `drive.rs`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use thiserror::Error;
use warden_host_api::{
    audit::{self, AuditError, AuditSink as _, EventBody, Outcome, StreamName},
    scope::{Digest, InstanceScope, TenantId},
    secrets::TenantSecrets,
    warden_agent::{
        self, AgentCtx, Approver, NoApprover, SecretsCtx,
        bindings::{AgentPre, exports::warden::agent::handler},
    },
    wasi_filesystem::{self, FilesCtx},
    wasi_http::{self, HttpCtx, Resolver, SystemResolver},
};
use wasmtime::{
    Engine, Store, Trap, UpdateDeadline,
    component::{Component, Linker, ResourceTable},
};
use wasmtime_wasi::{WasiCtxBuilder, p2::pipe::MemoryOutputPipe};

use crate::{
    agent::{Agent, LoadError, check_preamble, one_line},
    audit::{
        AuditLogError, AuditLogs, AuditOptions, InvocationLog, StreamId, VerifyError,
        VerifyOptions, VerifyReport,
    },
    control::ControlPlane,
    engine::{DEFAULT_POOL_INSTANCES, EngineSettings, EpochTicker, build_engine},
    manifest::Manifest,
    secrets::{SecretError, SecretStore},
    state::{CommitError, OpenStateError, Records, Transaction},
    tenant::{
        TenantError, TenantState, Tenants,
        config::TenantConfig,
        files::{FilesDirError, open_granted},
        instance::InstanceState,
        limiter::TenantLimiter,
        limits::{Ceilings, DEFAULT_MAX_STREAM_BYTES, MAX_STREAM_LINE_BYTES, TenantLimits},
    },
    toml_file::{MAX_COMPONENT_FILE_BYTES, read_bounded},
};

pub(crate) mod drive;

/// Default largest memory a pool slot holds: 512 MiB. A tenant's
/// `max_memory_bytes` may not exceed it.
pub const DEFAULT_POOL_MAX_MEMORY_BYTES: u64 = 512 * 1024 * 1024;
/// Default largest table a pool slot holds. A tenant's `max_table_elements`
/// may not exceed it.
pub const DEFAULT_POOL_MAX_TABLE_ELEMENTS: u64 = 100_000;

pub use crate::audit::AuditDurability;

/// Configures and builds a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    data_dir: PathBuf,
    default_limits: TenantLimits,
    audit: AuditOptions,
    ceilings: Ceilings,
    fuel: bool,
    resolver: Arc<dyn Resolver>,
    approver: Arc<dyn Approver>,
    tls_roots_pem: Vec<u8>,
}

impl RuntimeBuilder {
    /// A builder keeping state and audit logs under `data_dir`, with these
    /// defaults:
    ///
    /// - tenant limits: [`TenantLimits::default`] for tenants without a
    ///   configuration file (64 MiB memory, 5 s of guest code, 10 s wall
    ///   clock, 4 concurrent and 16 queued invocations, 1 MiB input and
    ///   output, 10,000 host calls, 256 MiB stored);
    /// - audit: [`AuditOptions::default`] (an invocation's events synced
    ///   before its writes are committed, before any request it sends and
    ///   before it returns; checkpoints every 60 s; no retention);
    /// - resolver for `wasi:http` egress: [`SystemResolver`];
    /// - approver for `warden:agent/approvals`: [`NoApprover`], which
    ///   answers every request "not permitted";
    /// - roots https egress trusts: the Mozilla roots of webpki-roots, no
    ///   others (see [`RuntimeBuilder::tls_root_certificates`]);
    /// - pool: [`DEFAULT_POOL_INSTANCES`] live instances, each slot sized for
    ///   [`DEFAULT_POOL_MAX_MEMORY_BYTES`] of memory and
    ///   [`DEFAULT_POOL_MAX_TABLE_ELEMENTS`] table elements.
    ///
    /// Nothing is created on disk until the first invocation.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            default_limits: TenantLimits::default(),
            audit: AuditOptions::default(),
            ceilings: Ceilings {
                max_memory_bytes: DEFAULT_POOL_MAX_MEMORY_BYTES,
                max_table_elements: DEFAULT_POOL_MAX_TABLE_ELEMENTS,
                pool_instances: u64::from(DEFAULT_POOL_INSTANCES),
            },
            fuel: false,
            resolver: Arc::new(SystemResolver),
            approver: Arc::new(NoApprover),
            tls_roots_pem: Vec::new(),
        }
    }

    /// Trusts the root certificates in `pem` (PEM text, one or more
    /// `CERTIFICATE` blocks) for https egress, besides the Mozilla roots:
    /// for a service behind a private certificate authority. Certificates
    /// are still verified, for the host the guest named; nothing here turns
    /// verification off. May be called more than once; the PEM is parsed by
    /// [`RuntimeBuilder::build`].
    pub fn tls_root_certificates(&mut self, pem: &[u8]) -> &mut Self {
        self.tls_roots_pem.extend_from_slice(pem);
        self.tls_roots_pem.push(b'\n');
        self
    }

    /// Sets who answers agents' approval requests: a person at a terminal,
    /// or the daemon's approval queue. The approver never waits past an
    /// invocation's wall-clock deadline.
    pub fn approver(&mut self, approver: Arc<dyn Approver>) -> &mut Self {
        self.approver = approver;
        self
    }

    /// Meters guest code with fuel, so that each tenant's `max_fuel` ends a
    /// run after a deterministic amount of work. Off by default: it slows
    /// every guest instruction a little.
    pub fn fuel_metering(&mut self, enable: bool) -> &mut Self {
        self.fuel = enable;
        self
    }

    /// Sets how egress resolves host names. Every address it returns is
    /// still checked against the agent's grant, so a resolver cannot widen
    /// what an agent reaches.
    pub fn resolver(&mut self, resolver: Arc<dyn Resolver>) -> &mut Self {
        self.resolver = resolver;
        self
    }

    /// Sets the limits of tenants that have no configuration file.
    pub fn default_limits(&mut self, limits: TenantLimits) -> &mut Self {
        self.default_limits = limits;
        self
    }

    /// Sets when audit events reach the disk.
    pub fn audit_durability(&mut self, durability: AuditDurability) -> &mut Self {
        self.audit.durability = durability;
        self
    }

    /// Sets how audit logs are written, checkpointed and kept.
    pub fn audit_options(&mut self, options: AuditOptions) -> &mut Self {
        self.audit = options;
        self
    }

    /// Sets how many instances may be live at once, across all tenants.
    pub fn pool_instances(&mut self, count: u32) -> &mut Self {
        self.ceilings.pool_instances = u64::from(count);
        self
    }

    /// Builds the engine, links the capabilities and starts the epoch ticker.
    ///
    /// # Errors
    ///
    /// Fails when the default limits are out of range, wasmtime rejects the
    /// configuration, or the ticker thread cannot start.
    pub fn build(&self) -> Result<Runtime, BuildError> {
        self.default_limits
            .validate(&self.ceilings)
            .map_err(|e| BuildError(format!("default tenant {e}")))?;
        let engine = build_engine(EngineSettings {
            max_memory_bytes: usize::try_from(self.ceilings.max_memory_bytes).unwrap_or(usize::MAX),
            max_table_elements: usize::try_from(self.ceilings.max_table_elements)
                .unwrap_or(usize::MAX),
            pool_instances: u32::try_from(self.ceilings.pool_instances).unwrap_or(u32::MAX),
            fuel: self.fuel,
        })
        .map_err(|e| BuildError(one_line(&e)))?;
        let tls = self.tls_config()?;
        let mut linker = Linker::new(&engine);
        // wasi:filesystem is warden's checked wrapper, linked in place of
        // wasmtime-wasi's own (see `wasi.rs`).
        crate::wasi::add_to_linker(&mut linker)
            .and_then(|()| wasi_filesystem::add_to_linker(&mut linker))
            .and_then(|()| warden_agent::add_to_linker(&mut linker))
            .and_then(|()| warden_agent::add_secrets_to_linker(&mut linker))
            .and_then(|()| wasi_http::add_to_linker(&mut linker))
            .map_err(|e| BuildError(one_line(&e)))?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|e| BuildError(format!("cannot start the epoch thread: {e}")))?;
        // One registry of audit streams for tenants and the control plane:
        // each stream may be open once per process.
        let audit = Arc::new(AuditLogs::new(self.data_dir.clone(), self.audit.clone()));
        Ok(Runtime {
            engine,
            linker,
            components: Mutex::new(BTreeMap::new()),
            control: ControlPlane::with_audit(self.data_dir.clone(), Arc::clone(&audit)),
            tenants: Tenants::new(
                self.data_dir.clone(),
                audit,
                self.default_limits,
                self.ceilings,
            ),
            secrets: SecretStore::new(&self.data_dir),
            data_dir: self.data_dir.clone(),
            durability: self.audit.durability,
            fuel: self.fuel,
            resolver: Arc::clone(&self.resolver),
            approver: Arc::clone(&self.approver),
            tls,
            invocations: AtomicU64::new(0),
            limit_hits: Mutex::new(BTreeMap::new()),
            _ticker: ticker,
        })
    }
}

impl RuntimeBuilder {
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, BuildError> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};

        let roots = CertificateDer::pem_slice_iter(&self.tls_roots_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BuildError(format!("TLS root certificates do not parse as PEM: {e}")))?;
        if roots.is_empty() && !self.tls_roots_pem.is_empty() {
            return Err(BuildError(
                "TLS root certificates hold no CERTIFICATE block; give PEM certificates".into(),
            ));
        }
        wasi_http::client_config(&roots).map_err(|e| BuildError(e.to_string()))
    }
}

/// The runtime could not be built.
#[derive(Debug, Error)]
#[error("cannot build the runtime: {0}")]
pub struct BuildError(String);

/// Why an invocation did not return an output.
#[derive(Debug, Error)]
pub enum InvokeError {
    /// The input is over the tenant's `max_input_bytes`.
    #[error("input is {size} bytes, over the maximum of {max}; send a smaller input")]
    InputTooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// The tenant's running slots and queue are full.
    #[error(
        "tenant {tenant} is busy: {max_concurrent} invocations running and {max_queued} \
         waiting; retry later or raise max_concurrent or max_queued in its configuration"
    )]
    Busy {
        /// The tenant.
        tenant: TenantId,
        /// Its concurrency limit.
        max_concurrent: u64,
        /// Its queue limit.
        max_queued: u64,
    },
    /// The agent returned its `invalid-input` error.
    #[error("agent {agent} rejected the input: {message}")]
    InvalidInput {
        /// The agent.
        agent: String,
        /// The agent's message.
        message: String,
    },
    /// The agent returned its `failed` error.
    #[error("agent {agent} failed: {message}")]
    Failed {
        /// The agent.
        agent: String,
        /// The agent's message.
        message: String,
    },
    /// The guest trapped, hit a limit or could not be instantiated.
    #[error("agent {agent} trapped: {reason}")]
    Trap {
        /// The agent.
        agent: String,
        /// Which limit or fault ended it.
        reason: String,
    },
    /// The invocation's writes could not be committed; none were applied.
    #[error("agent {agent} finished but its writes were rolled back")]
    Commit {
        /// The agent.
        agent: String,
        /// Why the commit failed.
        #[source]
        source: CommitError,
    },
    /// The tenant has not allowed this agent, or allowed another grant.
    #[error("{}", not_allowed(.tenant, .agent, .allowed.as_deref(), .actual))]
    NotAllowed {
        /// The tenant.
        tenant: TenantId,
        /// The agent.
        agent: String,
        /// The grant digest the tenant allowed, hex; `None` when it allowed
        /// no grant of this agent.
        allowed: Option<String>,
        /// The agent's grant digest, hex.
        actual: String,
    },
    /// The control-plane tables (allowed agents, config values) could not
    /// be read.
    #[error("cannot read the tenant's allowed agents or config values")]
    Store(#[source] warden_host_api::error::StoreError),
    /// The actor is not a valid actor name.
    #[error("{0}")]
    Actor(String),
    /// The tenant could not be loaded.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// The state database could not be opened.
    #[error(transparent)]
    State(#[from] OpenStateError),
    /// The tenant's audit log could not be synced.
    #[error(transparent)]
    AuditLog(#[from] AuditLogError),
    /// An audit event could not be recorded; the invocation was stopped.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The agent's granted secrets could not be loaded for the tenant
    /// (one is missing, or the store is unreadable); nothing ran.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A granted directory could not be opened; the guest did not run.
    #[error(transparent)]
    Files(#[from] FilesDirError),
}

fn not_allowed(tenant: &TenantId, agent: &str, allowed: Option<&str>, actual: &str) -> String {
    match allowed {
        None => format!(
            "agent {agent} is not allowed for tenant {tenant}; an operator allows it with \
             `warden agents allow <manifest> --tenant {tenant}`"
        ),
        Some(allowed) => format!(
            "agent {agent} has grant sha256:{actual} but tenant {tenant} allowed sha256:{allowed}; \
             the manifest changed: review it with `warden grants show` and run \
             `warden agents allow <manifest> --tenant {tenant}`"
        ),
    }
}

/// The CPU deadline passed; raised from the epoch callback.
#[derive(Debug, Error)]
#[error("cpu_timeout reached")]
struct CpuDeadline;

/// The warden runtime: one engine, compiled components, tenants' state and
/// audit logs.
///
/// Build it once per process with [`Runtime::builder`], load agents with
/// [`Runtime::load_agent`], and run them with [`Runtime::invoke`] for the
/// tenants that allowed them through [`Runtime::control`]. Each
/// invocation gets a fresh store bound to one tenant. Invocations are async
/// and must run inside a tokio runtime. The guest runs in place on the
/// calling task until the first epoch tick finds it still running; from then
/// on it runs on a thread of tokio's blocking pool, so a busy guest holds an
/// async worker thread for at most one tick.
///
/// # Example
///
/// An embedding service running an agent for one tenant:
///
/// ```no_run
/// use warden_runtime::{Runtime, TenantId};
///
/// # async fn service() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = Runtime::builder("/var/lib/warden").build()?;
/// let agent = runtime.load_agent("examples/invoice-triage/agent.toml".as_ref())?;
/// let tenant = TenantId::new("acme")?;
/// // Once, by an operator: the tenant may run this agent with this grant.
/// // The change is recorded in the control-plane audit stream.
/// runtime.control().allow_agent(&tenant, agent.manifest(), "ops@acme")?;
/// let output =
///     runtime.invoke(&tenant, &agent, br#"{"invoice_id": "INV-1"}"#, "billing-service").await?;
/// println!("{}", String::from_utf8_lossy(&output));
/// # Ok(())
/// # }
/// ```
pub struct Runtime {
    engine: Engine,
    linker: Linker<InstanceState>,
    components: Mutex<BTreeMap<Digest, Component>>,
    control: ControlPlane,
    tenants: Tenants,
    secrets: SecretStore,
    data_dir: PathBuf,
    durability: AuditDurability,
    fuel: bool,
    resolver: Arc<dyn Resolver>,
    approver: Arc<dyn Approver>,
    tls: Arc<rustls::ClientConfig>,
    invocations: AtomicU64,
    limit_hits: Mutex<BTreeMap<(TenantId, &'static str), u64>>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.data_dir)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// How one run of the guest ended, before commit.
enum RunEnd {
    Output(Vec<u8>),
    Error(InvokeError),
}

impl Runtime {
    /// A builder keeping state under `data_dir`; see [`RuntimeBuilder::new`]
    /// for the defaults.
    pub fn builder(data_dir: impl Into<PathBuf>) -> RuntimeBuilder {
        RuntimeBuilder::new(data_dir)
    }

    /// The engine every invocation runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Loads the agent described by the manifest at `manifest_path`.
    ///
    /// The component is compiled once per process and cached by its sha256
    /// digest; loading the same bytes again reuses the compiled code.
    ///
    /// # Errors
    ///
    /// Returns [`LoadError`] when the manifest is invalid, the component is
    /// missing, not a component, does not compile, or does not fit the
    /// `agent` world.
    pub fn load_agent(&self, manifest_path: &Path) -> Result<Agent, LoadError> {
        let manifest = Manifest::load(manifest_path)?;
        let path = manifest.component_path.clone();
        let bytes = read_bounded(&path, MAX_COMPONENT_FILE_BYTES).map_err(|source| {
            LoadError::ComponentRead {
                path: path.clone(),
                source,
            }
        })?;
        check_preamble(&path, &bytes)?;
        let digest = Digest::of(&bytes);
        let component = self.component(digest, &bytes, &path)?;
        let world = |e: wasmtime::Error| LoadError::World {
            path: path.clone(),
            message: one_line(&e),
        };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(world)?;
        let pre = AgentPre::new(instance_pre).map_err(world)?;
        let grant = Arc::new(manifest.grant.records.clone());
        let http_grant = Arc::new(manifest.grant.http.clone());
        let config_grant = Arc::new(manifest.grant.config.clone());
        let secrets_grant = Arc::new(manifest.grant.secrets.clone());
        Ok(Agent {
            manifest,
            component_digest: digest,
            grant,
            http_grant,
            config_grant,
            secrets_grant,
            pre,
        })
    }

    fn component(&self, digest: Digest, bytes: &[u8], path: &Path) -> Result<Component, LoadError> {
        if let Some(c) = self
            .components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
        {
            return Ok(c.clone());
        }
        // Compile outside the lock: it takes a while and another thread may
        // be loading a different agent.
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile {
            path: path.to_owned(),
            message: one_line(&e),
        })?;
        self.components
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest, component.clone());
        Ok(component)
    }

    /// Sets `tenant`'s configuration for this process, instead of its
    /// configuration file.
    ///
    /// # Errors
    ///
    /// Fails when a limit is out of range or the tenant's audit log cannot
    /// be opened.
    pub fn configure_tenant(
        &self,
        tenant: &TenantId,
        config: TenantConfig,
    ) -> Result<(), TenantError> {
        self.tenants.configure(tenant, config)
    }

    /// The audit streams of the data directory, shared with every
    /// invocation: the control-plane stream and the tenants' logs are
    /// opened once per process, since a second handle on a stream's files
    /// would be refused by their lock.
    pub fn audit_logs(&self) -> &AuditLogs {
        self.tenants.audit_logs()
    }

    /// Parses and validates the text of a tenant configuration file with
    /// this runtime's defaults and ceilings, without writing anything.
    ///
    /// # Errors
    ///
    /// Returns a one-line message naming the field that is wrong.
    pub fn parse_tenant_config(&self, text: &str) -> Result<TenantConfig, String> {
        TenantConfig::parse(text, &self.tenants.defaults(), &self.tenants.ceilings())
    }

    /// The secret store of this runtime's data directory, for listing.
    pub fn secret_store(&self) -> &SecretStore {
        &self.secrets
    }

    /// Sets `tenant`'s secret `name` on behalf of `actor`, recording the
    /// change in the control-plane stream this runtime holds open (a second
    /// handle on it from the same process would be refused).
    ///
    /// # Errors
    ///
    /// See [`SecretStore::set`].
    pub fn set_secret(
        &self,
        actor: &str,
        tenant: &TenantId,
        name: &str,
        value: &warden_host_api::secrets::SecretValue,
    ) -> Result<(), SecretError> {
        let logs = self.tenants.audit_logs();
        self.secrets.set(logs, actor, tenant, name, value)
    }

    /// Removes `tenant`'s secret `name` on behalf of `actor`; see
    /// [`Runtime::set_secret`].
    ///
    /// # Errors
    ///
    /// See [`SecretStore::remove`].
    pub fn remove_secret(
        &self,
        actor: &str,
        tenant: &TenantId,
        name: &str,
    ) -> Result<(), SecretError> {
        self.secrets
            .remove(self.tenants.audit_logs(), actor, tenant, name)
    }

    /// Directory of `tenant`'s audit log.
    pub fn audit_log_dir(&self, tenant: &TenantId) -> PathBuf {
        StreamId::Tenant(tenant.clone()).dir(&self.data_dir)
    }

    /// Verifies `tenant`'s audit log against the data directory's own
    /// public key; see [`crate::audit::verify`] to bring your own.
    ///
    /// # Errors
    ///
    /// Returns [`VerifyError`] naming the first event, file or checkpoint
    /// at fault.
    pub fn verify_audit(&self, tenant: &TenantId) -> Result<VerifyReport, VerifyError> {
        crate::audit::verify(
            &self.data_dir,
            &StreamId::Tenant(tenant.clone()),
            &VerifyOptions::default(),
        )
    }

    /// How often each tenant hit each limit since the runtime started, by
    /// limit name as in the tenant configuration.
    pub fn limit_hits(&self) -> Vec<(TenantId, &'static str, u64)> {
        let hits = self
            .limit_hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        hits.iter().map(|((t, l), n)| (t.clone(), *l, *n)).collect()
    }

    /// Invocations of `tenant` waiting for a running slot now; zero for a
    /// tenant not loaded in this process.
    pub fn queued(&self, tenant: &TenantId) -> u64 {
        self.tenants
            .loaded(tenant)
            .map_or(0, |state| state.gate.queued())
    }

    fn count_hit(&self, tenant: &TenantId, limit: &'static str, times: u64) {
        let mut hits = self
            .limit_hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *hits.entry((tenant.clone(), limit)).or_default() += times;
    }

    fn records(&self) -> Result<Records, OpenStateError> {
        self.control.records()
    }

    /// The control plane: which agents each tenant may run. It shares this
    /// runtime's audit streams and state database.
    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    /// Refuses `agent` unless `tenant` allowed it with exactly its grant.
    ///
    /// The approval is read from the state database on every invocation,
    /// so that a revocation made by another process holds from the next
    /// run on, unless this process holds the control stream, through which
    /// every change passes; see [`ControlPlane::allowed_grant_digest`].
    fn check_allowed(&self, tenant: &TenantId, agent: &Agent) -> Result<(), InvokeError> {
        let allowed = self
            .control
            .allowed_grant_digest(&self.records()?, tenant, &agent.manifest.name)
            .map_err(InvokeError::Store)?;
        let actual = agent.manifest.grant_digest.to_hex();
        if allowed.as_deref() == Some(actual.as_str()) {
            return Ok(());
        }
        tracing::warn!(tenant = %tenant, agent = %agent.manifest.name, "agent not allowed");
        Err(InvokeError::NotAllowed {
            tenant: tenant.clone(),
            agent: agent.manifest.name.clone(),
            allowed,
            actual,
        })
    }

    /// Runs `agent` once for `tenant` on `input`, on behalf of `actor`.
    ///
    /// The tenant must have allowed the agent with exactly its current
    /// grant ([`ControlPlane::allow_agent`]); otherwise the invocation is
    /// refused before anything runs, and the refusal is recorded in the
    /// tenant's audit log with the allowed and the actual grant digests.
    /// The invocation waits for one of the tenant's running slots, gets a
    /// fresh store bound to `tenant`, and runs under the tenant's limits.
    /// Every host call it makes is checked against the agent's grant and
    /// recorded in the tenant's audit log, together with the start, every
    /// limit hit, the commit or rollback of its writes, and the finish. Its
    /// record writes are applied only if it succeeds. Its events are on
    /// disk before its writes are committed, before any request it sends
    /// leaves the host, and before this returns (written but not synced
    /// with [`AuditDurability::OsBuffered`]); see [`AuditDurability`].
    ///
    /// # Errors
    ///
    /// Returns [`InvokeError`]: an agent the tenant has not allowed, the
    /// agent's own error, a trap (naming the limit or fault), a busy tenant,
    /// an oversized input, or a host failure.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub async fn invoke(
        &self,
        tenant: &TenantId,
        agent: &Agent,
        input: &[u8],
        actor: &str,
    ) -> Result<Vec<u8>, InvokeError> {
        let invocation = self.next_invocation_id();
        self.invoke_as(tenant, agent, input, actor, invocation)
            .await
    }

    /// [`Runtime::invoke`] under an invocation id the caller chose, from
    /// [`Runtime::next_invocation_id`], so that the caller can find the
    /// invocation's events in the tenant's audit log (the daemon's run id).
    ///
    /// # Errors
    ///
    /// As [`Runtime::invoke`].
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub async fn invoke_as(
        &self,
        tenant: &TenantId,
        agent: &Agent,
        input: &[u8],
        actor: &str,
        invocation: String,
    ) -> Result<Vec<u8>, InvokeError> {
        warden_host_api::scope::validate_actor(actor).map_err(InvokeError::Actor)?;
        let state = self.tenants.get(tenant)?;
        let limits = state.config.limits;
        let scope = Arc::new(InstanceScope {
            tenant: tenant.clone(),
            agent: agent.manifest.name.clone(),
            component_digest: agent.component_digest,
            grant_digest: agent.manifest.grant_digest,
            invocation,
            actor: actor.to_owned(),
        });
        let log = Arc::new(InvocationLog::new(
            Arc::clone(&state.log),
            Arc::clone(&scope),
        ));
        let started = Instant::now();
        audit::emit(
            &*log,
            &scope,
            EventBody::InvocationStart {
                manifest_digest: agent.manifest.manifest_digest.to_hex(),
                input_digest: audit::value_digest(input),
                input_bytes: input.len() as u64,
            },
        )?;

        let result = self
            .admit_and_run(&state, &log, &scope, agent, input, &limits)
            .await;

        let (outcome, detail, output_digest) = match &result {
            Ok(output) => (Outcome::Ok, None, Some(audit::value_digest(output))),
            Err(InvokeError::InvalidInput { message, .. }) => {
                (Outcome::InvalidInput, Some(message.clone()), None)
            }
            Err(InvokeError::Failed { message, .. }) => {
                (Outcome::Failed, Some(message.clone()), None)
            }
            Err(
                e @ (InvokeError::Busy { .. }
                | InvokeError::InputTooLarge { .. }
                | InvokeError::NotAllowed { .. }
                | InvokeError::Secret(_)),
            ) => (Outcome::Refused, Some(e.to_string()), None),
            Err(e) => (Outcome::Trap, Some(e.to_string()), None),
        };
        audit::emit(
            &*log,
            &scope,
            EventBody::InvocationFinish {
                outcome,
                detail,
                output_digest,
                duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            },
        )?;
        // The caller sees nothing of the invocation before all of it is on
        // record.
        log.flush()?;
        result
    }

    /// Steps 1 to 6: admission, the run, and commit or rollback.
    async fn admit_and_run(
        &self,
        state: &TenantState,
        log: &Arc<InvocationLog>,
        scope: &Arc<InstanceScope>,
        agent: &Agent,
        input: &[u8],
        limits: &TenantLimits,
    ) -> Result<Vec<u8>, InvokeError> {
        let tenant = &scope.tenant;
        // Refused before instantiation: an oversized input never reaches the
        // guest's memory.
        if input.len() as u64 > limits.max_input_bytes {
            let err = InvokeError::InputTooLarge {
                size: input.len(),
                max: limits.max_input_bytes,
            };
            self.limit_hit(log, scope, "max_input_bytes", err.to_string(), 1)?;
            return Err(err);
        }
        // Waiting for a slot counts against the wall clock too: a caller is
        // never left queued for longer than a run could take.
        let admitted = tokio::time::timeout(limits.wall_timeout, state.gate.enter()).await;
        let _permit = match admitted {
            Ok(Ok(permit)) => permit,
            Ok(Err(full)) => {
                let err = InvokeError::Busy {
                    tenant: tenant.clone(),
                    max_concurrent: full.max_concurrent,
                    max_queued: full.max_queued,
                };
                self.limit_hit(log, scope, "max_queued", err.to_string(), 1)?;
                return Err(err);
            }
            Err(_elapsed) => {
                let err = InvokeError::Busy {
                    tenant: tenant.clone(),
                    max_concurrent: limits.max_concurrent,
                    max_queued: limits.max_queued,
                };
                let detail = format!("waited wall_timeout for a slot: {err}");
                self.limit_hit(log, scope, "max_concurrent", detail, 1)?;
                return Err(err);
            }
        };
        // The approval is checked once admitted, so that a revocation
        // made while this invocation waited for its slot holds for it too,
        // and after the start event, so that the attempt and its refusal
        // are both in the tenant's trail.
        self.check_allowed(tenant, agent)?;
        // The tenant's own values of the granted secrets, read from its own
        // store: a grant naming a secret the tenant lacks (or another
        // tenant's) stops here, before the guest exists. The finish event
        // records why.
        let secrets = if agent.secrets_grant.is_empty() {
            Arc::new(TenantSecrets::default())
        } else {
            Arc::new(self.secrets.load_granted(tenant, &agent.secrets_grant)?)
        };

        let txn = self.records()?.begin(tenant);
        let end = self
            .run(log, scope, agent, input, limits, &txn, secrets)
            .await?;
        match end {
            RunEnd::Output(output) => {
                // The events of every write must be on disk before the
                // writes are visible to anyone else, so that the record of
                // what happened never trails the data committed here. If
                // they cannot be written, nothing is committed.
                if txn.pending_writes() > 0
                    && let Err(e) = log.flush()
                {
                    txn.discard();
                    return Err(e.into());
                }
                match txn.commit(limits.max_stored_bytes) {
                    Ok(0) => Ok(output),
                    Ok(writes) => {
                        audit::emit(&**log, scope, EventBody::Commit { writes })?;
                        Ok(output)
                    }
                    Err(source) => {
                        let discarded = txn.discard();
                        let reason = source.to_string();
                        if let CommitError::OverQuota { .. } = source {
                            self.limit_hit(log, scope, "max_stored_bytes", reason.clone(), 1)?;
                        }
                        let body = EventBody::Rollback {
                            discarded_writes: discarded,
                            reason,
                        };
                        audit::emit(&**log, scope, body)?;
                        Err(InvokeError::Commit {
                            agent: scope.agent.clone(),
                            source,
                        })
                    }
                }
            }
            RunEnd::Error(err) => {
                let discarded = txn.discard();
                if discarded > 0 {
                    let body = EventBody::Rollback {
                        discarded_writes: discarded,
                        reason: err.to_string(),
                    };
                    audit::emit(&**log, scope, body)?;
                }
                Err(err)
            }
        }
    }

    /// Records that `limit` stopped or refused something, and counts it.
    fn limit_hit(
        &self,
        log: &InvocationLog,
        scope: &InstanceScope,
        limit: &'static str,
        detail: String,
        times: u64,
    ) -> Result<(), AuditError> {
        tracing::warn!(tenant = %scope.tenant, agent = %scope.agent, limit, "tenant limit reached");
        self.count_hit(&scope.tenant, limit, times);
        audit::emit(
            log,
            scope,
            EventBody::LimitHit {
                limit: limit.to_owned(),
                detail,
            },
        )
    }

    /// Step 3 to 5: one store, one run of the guest.
    #[expect(
        clippy::too_many_arguments,
        reason = "each is one piece of the invocation's state, owned elsewhere"
    )]
    async fn run(
        &self,
        log: &Arc<InvocationLog>,
        scope: &Arc<InstanceScope>,
        agent: &Agent,
        input: &[u8],
        limits: &TenantLimits,
        txn: &Transaction,
        secrets: Arc<TenantSecrets>,
    ) -> Result<RunEnd, InvokeError> {
        // The granted keys' values, read once: bounded by the number of
        // keys a grant may name and the size of a value.
        let config_values = if agent.config_grant.is_empty() {
            BTreeMap::new()
        } else {
            self.records()?
                .config_values(&scope.tenant, &agent.manifest.name)
                .map_err(InvokeError::Store)?
                .into_iter()
                .filter(|(key, _)| agent.config_grant.decide(key))
                .collect()
        };
        let dirs = open_granted(&self.data_dir, &scope.tenant, &agent.manifest.grant.files)?;
        let cpu = Arc::new(drive::CpuMeter::default());
        let stdout = MemoryOutputPipe::new(DEFAULT_MAX_STREAM_BYTES);
        let stderr = MemoryOutputPipe::new(DEFAULT_MAX_STREAM_BYTES);
        // WASI gets clocks, random and the two captured streams. No
        // environment, arguments or network: the builder starts empty, and
        // sockets are refused outright. Granted directories are preopened by
        // warden's own filesystem (`files` below), not by this context.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = InstanceState {
            wasi,
            table: ResourceTable::new(),
            agent: AgentCtx::new(
                Arc::clone(scope),
                Arc::clone(&agent.grant),
                Box::new(txn.clone()),
                Arc::clone(log) as Arc<dyn audit::AuditSink>,
                limits.agent_limits(),
            )
            .with_config(Arc::clone(&agent.config_grant), config_values)
            .with_approver(
                Arc::clone(&self.approver),
                Instant::now() + limits.wall_timeout,
            ),
            http: HttpCtx::new(
                Arc::clone(scope),
                Arc::clone(&agent.http_grant),
                Arc::clone(&self.resolver),
                Arc::clone(log) as Arc<dyn audit::AuditSink>,
                limits.http_limits(),
                Instant::now() + limits.wall_timeout,
                Arc::clone(&secrets),
                Arc::clone(&self.tls),
            ),
            secrets: SecretsCtx::new(
                Arc::clone(scope),
                Arc::clone(&agent.secrets_grant),
                secrets,
                Arc::clone(log) as Arc<dyn audit::AuditSink>,
            ),
            files: FilesCtx::new(
                Arc::clone(scope),
                dirs,
                Arc::clone(log) as Arc<dyn warden_host_api::audit::AuditSink>,
                limits.files_limits(),
            ),
            limiter: TenantLimiter::new(*limits),
            cpu: Arc::clone(&cpu),
            cpu_timeout: limits.cpu_timeout,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        if self.fuel {
            store
                .set_fuel(limits.max_fuel)
                .map_err(|e| InvokeError::Trap {
                    agent: agent.manifest.name.clone(),
                    reason: one_line(&e),
                })?;
        }
        // At every epoch tick the guest yields and the invocation's CPU time
        // is checked; past the tenant's cpu_timeout the callback traps. The
        // meter sums the CPU time of every poll of the guest's future,
        // whichever thread ran it: guest code and host work count, time
        // spent waiting (a disk sync, a sleep) does not. A yield also tells
        // `drive` that the guest is busy and should leave the caller's task.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.cpu.used() >= state.cpu_timeout {
                return Err(wasmtime::Error::new(CpuDeadline));
            }
            state.cpu.yielded();
            Ok(UpdateDeadline::Yield(1))
        });

        let name = &agent.manifest.name;
        let pre = agent.pre.clone();
        let input = input.to_vec();
        let deadline = tokio::time::Instant::now() + limits.wall_timeout;
        let run = async move {
            let call = async {
                let instance = pre.instantiate_async(&mut store).await?;
                instance
                    .warden_agent_handler()
                    .call_handle(&mut store, &input)
                    .await
            };
            // The wall clock covers host calls too: a guest blocked in a host
            // wait is stopped here, where epoch ticks cannot reach it.
            let called = tokio::time::timeout_at(deadline, call).await;
            (store.into_data(), called)
        };
        let (state, called) = match drive::drive(run, cpu).await {
            Ok(ran) => ran,
            Err(drive::Panicked) => {
                tracing::error!(tenant = %scope.tenant, "host code running the guest panicked");
                let reason = "the host code running the guest failed; this is a warden bug, \
                              please report it"
                    .to_owned();
                return Ok(RunEnd::Error(InvokeError::Trap {
                    agent: name.clone(),
                    reason,
                }));
            }
        };
        for (limit, times, detail) in state.limiter.hits() {
            self.limit_hit(log, scope, limit, detail.to_owned(), times)?;
        }
        for (limit, times) in state.agent.limit_hits() {
            self.count_hit(&scope.tenant, limit, u64::from(times));
        }
        for (limit, times) in state.files.limit_hits() {
            self.count_hit(&scope.tenant, limit, u64::from(times));
        }
        let stdout_full = self.record_streams(log, scope, &stdout, StreamName::Stdout)?;
        let stderr_full = self.record_streams(log, scope, &stderr, StreamName::Stderr)?;

        let trap = |reason: String| {
            RunEnd::Error(InvokeError::Trap {
                agent: name.clone(),
                reason,
            })
        };
        Ok(match called {
            Err(_elapsed) => {
                let reason = format!(
                    "wall_timeout reached: still running after {}",
                    humantime::format_duration(limits.wall_timeout)
                );
                self.limit_hit(log, scope, "wall_timeout", reason.clone(), 1)?;
                trap(reason)
            }
            Ok(Ok(Ok(output))) if output.len() as u64 > limits.max_output_bytes => {
                let reason = format!(
                    "output is {} bytes, over max_output_bytes ({})",
                    output.len(),
                    limits.max_output_bytes
                );
                self.limit_hit(log, scope, "max_output_bytes", reason.clone(), 1)?;
                trap(reason)
            }
            Ok(Ok(Ok(output))) => RunEnd::Output(output),
            // The agent's message is guest text: bounded before it reaches
            // the audit trail, the caller or a terminal.
            Ok(Ok(Err(handler::Error::InvalidInput(message)))) => {
                RunEnd::Error(InvokeError::InvalidInput {
                    agent: name.clone(),
                    message: audit::bounded(&message, audit::MAX_TEXT_BYTES),
                })
            }
            Ok(Ok(Err(handler::Error::Failed(message)))) => RunEnd::Error(InvokeError::Failed {
                agent: name.clone(),
                message: audit::bounded(&message, audit::MAX_TEXT_BYTES),
            }),
            Ok(Err(e)) => {
                if let Some(audit) = e.downcast_ref::<AuditError>() {
                    return Err(InvokeError::Audit(AuditError {
                        tenant: audit.tenant.clone(),
                        reason: audit.reason.clone(),
                    }));
                }
                if let Some(Trap::OutOfFuel) = e.downcast_ref::<Trap>() {
                    let reason = format!("max_fuel reached: consumed {} units", limits.max_fuel);
                    self.limit_hit(log, scope, "max_fuel", reason.clone(), 1)?;
                    return Ok(trap(reason));
                }
                if e.downcast_ref::<CpuDeadline>().is_some() {
                    let reason = format!(
                        "cpu_timeout reached: used {} of CPU",
                        humantime::format_duration(limits.cpu_timeout)
                    );
                    self.limit_hit(log, scope, "cpu_timeout", reason.clone(), 1)?;
                    return Ok(trap(reason));
                }
                let mut reason = trap_reason(&e);
                if let Some(limit) = count_limit(&reason) {
                    self.limit_hit(log, scope, limit, reason.clone(), 1)?;
                    reason = format!("{limit} reached: {reason}");
                } else if let Some((limit, _, detail)) = state.limiter.hits().next() {
                    reason = format!("{reason} after reaching {limit} ({detail})");
                } else if stdout_full || stderr_full {
                    reason = format!("{reason} after filling its std stream capture");
                }
                trap(audit::bounded(&reason, audit::MAX_TEXT_BYTES))
            }
        })
    }

    /// Records what the guest wrote to one stream, one event per line up to
    /// [`MAX_STREAM_LINE_EVENTS`] lines, then one event summarising the rest
    /// by size and digest, so that a guest printing many short lines cannot
    /// flood the audit trail. Returns whether the capture was full, which is
    /// also recorded as a limit hit.
    fn record_streams(
        &self,
        log: &InvocationLog,
        scope: &InstanceScope,
        pipe: &MemoryOutputPipe,
        stream: StreamName,
    ) -> Result<bool, AuditError> {
        let bytes = pipe.contents();
        let mut lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        for line in lines.by_ref().take(MAX_STREAM_LINE_EVENTS) {
            let text = if line.len() > MAX_STREAM_LINE_BYTES {
                let cut = String::from_utf8_lossy(&line[..MAX_STREAM_LINE_BYTES]);
                format!(
                    "{cut}[line cut at {MAX_STREAM_LINE_BYTES} of {} bytes]",
                    line.len()
                )
            } else {
                String::from_utf8_lossy(line).into_owned()
            };
            audit::emit(log, scope, EventBody::StreamLine { stream, line: text })?;
        }
        let rest: Vec<&[u8]> = lines.collect();
        if !rest.is_empty() {
            let joined = rest.join(&b'\n');
            let line = format!(
                "[{} more lines, {} bytes, not recorded one by one; sha256 {}]",
                rest.len(),
                joined.len(),
                audit::value_digest(&joined)
            );
            audit::emit(log, scope, EventBody::StreamLine { stream, line })?;
        }
        let full = bytes.len() >= DEFAULT_MAX_STREAM_BYTES;
        if full {
            let detail = format!(
                "{stream:?} capture of {DEFAULT_MAX_STREAM_BYTES} bytes is full; later writes failed in \
                 the guest"
            );
            self.limit_hit(log, scope, "max_stream_bytes", detail, 1)?;
        }
        Ok(full)
    }

    /// A new invocation id, unique in this process and unlikely to repeat
    /// across processes: the time, the process id and a counter.
    pub fn next_invocation_id(&self) -> String {
        let n = self.invocations.fetch_add(1, Ordering::Relaxed);
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{ms:x}-{:x}-{n}", std::process::id())
    }
}

/// Most lines of one std stream recorded as separate events per invocation.
pub const MAX_STREAM_LINE_EVENTS: usize = 256;

/// The tenant limit behind a wasmtime "count too high" error: the limiter
/// reports counts, and wasmtime refuses the instantiation that exceeds them.
fn count_limit(reason: &str) -> Option<&'static str> {
    if reason.contains("instance count too high") {
        Some("max_instances")
    } else if reason.contains("table count too high") {
        Some("max_tables")
    } else if reason.contains("memory count too high") {
        Some("max_memories")
    } else if reason.contains("max_host_calls") {
        Some("max_host_calls")
    } else {
        None
    }
}

/// Names the fault behind a trap, on one line.
fn trap_reason(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "stack overflow: the guest recursed too deeply".into(),
        Some(Trap::UnreachableCodeReached) => {
            "unreachable instruction: the guest panicked or aborted (its stderr is in the audit \
             trail)"
                .into()
        }
        Some(trap) => format!("{trap}"),
        None => one_line(e),
    }
}

#[cfg(test)]
mod tests {
    use warden_host_api::warden_agent::RecordStore as _;

    use super::*;

    #[tokio::test]
    async fn writes_are_not_committed_when_their_events_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = trivial_agent(dir.path());
        let runtime = Runtime::builder(dir.path().join("data")).build().unwrap();
        let agent = runtime.load_agent(&manifest).unwrap();
        let tenant = TenantId::new("acme").unwrap();
        runtime
            .tenants
            .get(&tenant)
            .unwrap()
            .log
            .fail_writes_for_test();

        // The guest's put and get succeed inside the invocation; the
        // events describing them cannot be written before the commit, so
        // the commit must not happen.
        let err = runtime
            .invoke(&tenant, &agent, b"v", "test")
            .await
            .unwrap_err();
        assert!(matches!(err, InvokeError::Audit(_)), "{err}");
        let stored = runtime.records().unwrap().get(&tenant, "bench/k").unwrap();
        assert_eq!(stored, None, "a write was committed without its events");
    }

    fn trivial_agent(dir: &Path) -> PathBuf {
        let manifest = dir.join("trivial.toml");
        std::fs::write(
            &manifest,
            format!(
                "name = \"trivial\"\ncomponent = {:?}\n[[grants.records]]\nprefix = \
                 \"bench/\"\naccess = \"read-write\"\n",
                warden_test_programs::BENCH_TRIVIAL
            ),
        )
        .unwrap();
        manifest
    }

    #[tokio::test]
    async fn a_revocation_holds_from_the_next_run_with_or_without_the_control_stream() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = trivial_agent(dir.path());
        let data = dir.path().join("data");
        let tenant = TenantId::new("acme").unwrap();
        let refused =
            |r: Result<Vec<u8>, InvokeError>| matches!(r, Err(InvokeError::NotAllowed { .. }));

        // Another control plane holds the control stream: this runtime
        // reads every approval from the database.
        let runtime = Runtime::builder(&data).build().unwrap();
        let agent = runtime.load_agent(&manifest).unwrap();
        let other = ControlPlane::new(&data);
        other
            .allow_agent(&tenant, agent.manifest(), "test")
            .unwrap();
        runtime.invoke(&tenant, &agent, b"v", "test").await.unwrap();
        other.revoke_agent(&tenant, "trivial", "test").unwrap();
        assert!(refused(runtime.invoke(&tenant, &agent, b"v", "test").await));
        drop((other, runtime));

        // This runtime holds the control stream: approvals are kept in
        // memory, changed only through its own control plane, and nobody
        // else can change them meanwhile.
        let runtime = Runtime::builder(&data).build().unwrap();
        let agent = runtime.load_agent(&manifest).unwrap();
        runtime
            .control()
            .allow_agent(&tenant, agent.manifest(), "test")
            .unwrap();
        assert!(
            runtime
                .audit_logs()
                .is_open(&crate::audit::StreamId::Control)
        );
        runtime.invoke(&tenant, &agent, b"v", "test").await.unwrap();
        runtime.invoke(&tenant, &agent, b"v", "test").await.unwrap();
        let err = ControlPlane::new(&data)
            .revoke_agent(&tenant, "trivial", "test")
            .unwrap_err();
        assert!(err.to_string().contains("_control"), "{err}");
        runtime
            .control()
            .revoke_agent(&tenant, "trivial", "test")
            .unwrap();
        assert!(refused(runtime.invoke(&tenant, &agent, b"v", "test").await));
        runtime
            .control()
            .allow_agent(&tenant, agent.manifest(), "test")
            .unwrap();
        runtime.invoke(&tenant, &agent, b"v", "test").await.unwrap();

        // A hand edit of the database, outside the control plane, is seen
        // once the cached answer expires.
        let edit = crate::state::Records::open(&data.join("state.sqlite3")).unwrap();
        edit.lock()
            .execute("DELETE FROM allowed_agents", [])
            .unwrap();
        tokio::time::sleep(crate::control::APPROVAL_CACHE_TTL).await;
        assert!(refused(runtime.invoke(&tenant, &agent, b"v", "test").await));
    }
}

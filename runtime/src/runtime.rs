//! [`Runtime`]: load agents, invoke them for tenants.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use thiserror::Error;
use warden_host_api::{
    audit::{self, AuditError, AuditSink, EventBody, Outcome, StreamName},
    scope::{Digest, InstanceScope, TenantId},
    warden_agent::{
        self, AgentCtx,
        bindings::{AgentPre, exports::warden::agent::handler},
    },
};
use wasmtime::{
    Engine, Store, StoreLimitsBuilder, Trap,
    component::{Component, Linker, ResourceTable},
};
use wasmtime_wasi::{WasiCtxBuilder, p2::pipe::MemoryOutputPipe};

use crate::{
    agent::{Agent, LoadError, check_preamble, one_line},
    audit::{
        AuditLog, AuditLogError, AuditOptions, StreamId, VerifyError, VerifyOptions, VerifyReport,
    },
    engine::{DEFAULT_POOL_INSTANCES, EngineSettings, EpochTicker, build_engine, deadline_ticks},
    manifest::Manifest,
    state::{OpenStateError, Records},
    tenant::{
        Tenants,
        instance::InstanceState,
        limits::{InvocationLimits, MAX_STREAM_LINE_BYTES},
    },
};

pub use crate::audit::AuditDurability;

/// Configures and builds a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeBuilder {
    data_dir: PathBuf,
    limits: InvocationLimits,
    audit: AuditOptions,
    pool_instances: u32,
}

impl RuntimeBuilder {
    /// A builder keeping state and audit logs under `data_dir`, with these
    /// defaults:
    ///
    /// - limits: [`InvocationLimits::default`] (64 MiB memory, 10 s
    ///   deadline, 1 MiB input and output, 64 KiB per std stream, and the
    ///   [`warden_agent::AgentLimits`] defaults);
    /// - audit: [`AuditOptions::default`] (each event synced before the call
    ///   it records goes ahead, checkpoints every 60 s, no retention);
    /// - pool: [`DEFAULT_POOL_INSTANCES`] concurrent instances.
    ///
    /// Nothing is created on disk until the first invocation.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            limits: InvocationLimits::default(),
            audit: AuditOptions::default(),
            pool_instances: DEFAULT_POOL_INSTANCES,
        }
    }

    /// Sets the per-invocation limits.
    pub fn limits(&mut self, limits: InvocationLimits) -> &mut Self {
        self.limits = limits;
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

    /// Sets how many instances may be live at once.
    pub fn pool_instances(&mut self, count: u32) -> &mut Self {
        self.pool_instances = count;
        self
    }

    /// Builds the engine, links the capabilities and starts the epoch ticker.
    ///
    /// # Errors
    ///
    /// Fails when wasmtime rejects the configuration or the ticker thread
    /// cannot start.
    pub fn build(&self) -> Result<Runtime, BuildError> {
        let engine = build_engine(EngineSettings {
            max_memory_bytes: self.limits.max_memory_bytes,
            pool_instances: self.pool_instances,
        })
        .map_err(|e| BuildError(one_line(&e)))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| warden_agent::add_to_linker(&mut linker))
            .map_err(|e| BuildError(one_line(&e)))?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|e| BuildError(format!("cannot start the epoch thread: {e}")))?;
        Ok(Runtime {
            engine,
            linker,
            components: Mutex::new(HashMap::new()),
            records: Mutex::new(None),
            tenants: Tenants::new(self.data_dir.clone(), self.audit.clone()),
            data_dir: self.data_dir.clone(),
            limits: self.limits,
            durability: self.audit.durability,
            invocations: AtomicU64::new(0),
            _ticker: ticker,
        })
    }
}

/// The runtime could not be built.
#[derive(Debug, Error)]
#[error("cannot build the runtime: {0}")]
pub struct BuildError(String);

/// Why an invocation did not return an output.
#[derive(Debug, Error)]
pub enum InvokeError {
    /// The input is over [`InvocationLimits::max_input_bytes`].
    #[error("input is {size} bytes, over the maximum of {max}; send a smaller input")]
    InputTooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        max: usize,
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
    /// The guest trapped, ran out of time or could not be instantiated.
    #[error("agent {agent} trapped: {reason}")]
    Trap {
        /// The agent.
        agent: String,
        /// Which limit or fault ended it.
        reason: String,
    },
    /// The state database could not be opened.
    #[error(transparent)]
    State(#[from] OpenStateError),
    /// The tenant's audit log could not be opened or synced.
    #[error(transparent)]
    AuditLog(#[from] AuditLogError),
    /// An audit event could not be recorded; the invocation was stopped.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// The warden runtime: one engine, compiled components, tenants' state and
/// audit logs.
///
/// Build it once per process with [`Runtime::builder`], load agents with
/// [`Runtime::load_agent`], and run them with [`Runtime::invoke`]. Each
/// invocation gets a fresh store bound to one tenant.
///
/// # Example
///
/// An embedding service running an agent for one tenant:
///
/// ```no_run
/// use warden_runtime::{Runtime, TenantId};
///
/// let runtime = Runtime::builder("/var/lib/warden").build()?;
/// let agent = runtime.load_agent("examples/invoice-triage/agent.toml".as_ref())?;
/// let tenant = TenantId::new("acme")?;
/// let output = runtime.invoke(&tenant, &agent, br#"{"invoice_id": "INV-1"}"#, "billing-service")?;
/// println!("{}", String::from_utf8_lossy(&output));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runtime {
    engine: Engine,
    linker: Linker<InstanceState>,
    components: Mutex<HashMap<Digest, Component>>,
    records: Mutex<Option<Records>>,
    tenants: Tenants,
    data_dir: PathBuf,
    limits: InvocationLimits,
    durability: AuditDurability,
    invocations: AtomicU64,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.data_dir)
            .field("limits", &self.limits)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
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
        let bytes = std::fs::read(&path).map_err(|source| LoadError::ComponentRead {
            path: path.clone(),
            source,
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
        Ok(Agent {
            manifest,
            component_digest: digest,
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

    fn records(&self) -> Result<Records, OpenStateError> {
        let mut slot = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(records) = &*slot {
            return Ok(records.clone());
        }
        std::fs::create_dir_all(&self.data_dir).map_err(|e| OpenStateError {
            path: self.data_dir.clone(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        let records = Records::open(&self.data_dir.join("state.sqlite3"))?;
        *slot = Some(records.clone());
        Ok(records)
    }

    /// Runs `agent` once for `tenant` on `input`, on behalf of `actor`.
    ///
    /// The invocation gets a fresh store bound to `tenant`; every host call it
    /// makes is checked against the agent's grant and recorded in the
    /// tenant's audit log together with the start and the finish of the
    /// invocation. Each event is on disk before the call it records goes
    /// ahead (unless [`AuditDurability::OsBuffered`] was chosen).
    ///
    /// # Errors
    ///
    /// Returns [`InvokeError`]: the agent's own error, a trap (naming the
    /// limit or fault), an oversized input, or a host failure.
    pub fn invoke(
        &self,
        tenant: &TenantId,
        agent: &Agent,
        input: &[u8],
        actor: &str,
    ) -> Result<Vec<u8>, InvokeError> {
        let log = self.tenants.audit_log(tenant)?;
        let scope = Arc::new(InstanceScope {
            tenant: tenant.clone(),
            agent: agent.manifest.name.clone(),
            component_digest: agent.component_digest,
            grant_digest: agent.manifest.grant_digest,
            invocation: self.next_invocation_id(),
            actor: actor.to_owned(),
        });
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

        // Refused before instantiation: an oversized input never reaches the
        // guest's memory.
        let result = if input.len() > self.limits.max_input_bytes {
            Err(InvokeError::InputTooLarge {
                size: input.len(),
                max: self.limits.max_input_bytes,
            })
        } else {
            self.run(&log, &scope, agent, input)
        };

        let (outcome, detail, output_digest) = match &result {
            Ok(output) => (Outcome::Ok, None, Some(audit::value_digest(output))),
            Err(InvokeError::InvalidInput { message, .. }) => {
                (Outcome::InvalidInput, Some(message.clone()), None)
            }
            Err(InvokeError::Failed { message, .. }) => {
                (Outcome::Failed, Some(message.clone()), None)
            }
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
        result
    }

    fn run(
        &self,
        log: &Arc<AuditLog>,
        scope: &Arc<InstanceScope>,
        agent: &Agent,
        input: &[u8],
    ) -> Result<Vec<u8>, InvokeError> {
        let limits = &self.limits;
        let stdout = MemoryOutputPipe::new(limits.max_stream_bytes);
        let stderr = MemoryOutputPipe::new(limits.max_stream_bytes);
        // WASI gets clocks, random and the two captured streams. No
        // environment, arguments, preopened directories or network: the
        // builder starts empty, and sockets are refused outright.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let sink: Arc<dyn AuditSink> = Arc::clone(log) as Arc<dyn AuditSink>;
        let state = InstanceState {
            wasi,
            table: ResourceTable::new(),
            agent: AgentCtx::new(
                Arc::clone(scope),
                Arc::new(agent.manifest.grant.clone()),
                Box::new(self.records()?),
                sink,
                limits.agent,
            ),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .trap_on_grow_failure(false)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(deadline_ticks(limits.timeout));
        store.epoch_deadline_trap();

        let name = &agent.manifest.name;
        let called = agent.pre.instantiate(&mut store).and_then(|instance| {
            instance
                .warden_agent_handler()
                .call_handle(&mut store, input)
        });
        drop(store);
        self.record_streams(log, scope, &stdout, StreamName::Stdout)?;
        self.record_streams(log, scope, &stderr, StreamName::Stderr)?;

        match called {
            Ok(Ok(output)) if output.len() > limits.max_output_bytes => Err(InvokeError::Trap {
                agent: name.clone(),
                reason: format!(
                    "output is {} bytes, over max_output_bytes ({})",
                    output.len(),
                    limits.max_output_bytes
                ),
            }),
            Ok(Ok(output)) => Ok(output),
            Ok(Err(handler::Error::InvalidInput(message))) => Err(InvokeError::InvalidInput {
                agent: name.clone(),
                message,
            }),
            Ok(Err(handler::Error::Failed(message))) => Err(InvokeError::Failed {
                agent: name.clone(),
                message,
            }),
            Err(e) => {
                if let Some(audit) = e.downcast_ref::<AuditError>() {
                    return Err(InvokeError::Audit(AuditError {
                        tenant: audit.tenant.clone(),
                        reason: audit.reason.clone(),
                    }));
                }
                Err(InvokeError::Trap {
                    agent: name.clone(),
                    reason: trap_reason(&e, limits),
                })
            }
        }
    }

    fn record_streams(
        &self,
        log: &Arc<AuditLog>,
        scope: &InstanceScope,
        pipe: &MemoryOutputPipe,
        stream: StreamName,
    ) -> Result<(), AuditError> {
        let bytes = pipe.contents();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = if line.len() > MAX_STREAM_LINE_BYTES {
                let cut = String::from_utf8_lossy(&line[..MAX_STREAM_LINE_BYTES]);
                format!(
                    "{cut}[line cut at {MAX_STREAM_LINE_BYTES} of {} bytes]",
                    line.len()
                )
            } else {
                String::from_utf8_lossy(line).into_owned()
            };
            audit::emit(&**log, scope, EventBody::StreamLine { stream, line: text })?;
        }
        Ok(())
    }

    fn next_invocation_id(&self) -> String {
        let n = self.invocations.fetch_add(1, Ordering::Relaxed);
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{ms:x}-{:x}-{n}", std::process::id())
    }
}

/// Names the limit or fault behind a trap, on one line.
fn trap_reason(e: &wasmtime::Error, limits: &InvocationLimits) -> String {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            format!(
                "deadline exceeded: ran longer than its timeout of {:?}",
                limits.timeout
            )
        }
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

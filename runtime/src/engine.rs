//! The process's one wasmtime [`Engine`] and the ticker that drives its
//! epochs.
//!
//! Every invocation of every tenant runs on this engine. Instances come from
//! the pooling allocator, so that creating a store costs little and a slot
//! handed to another tenant starts from zeroed memory. Deadlines use epoch
//! interruption: a dedicated thread advances the epoch every [`EPOCH_TICK`],
//! and at each tick a store's callback checks its invocation's CPU time
//! against the tenant's `cpu_timeout`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Deadlines are rounded up to whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Pool slots: how many component instances may be live at once.
pub const DEFAULT_POOL_INSTANCES: u32 = 64;

/// Engine settings shared by the runtime and the benchmarks, so that both
/// measure the same configuration.
#[derive(Clone, Copy, Debug)]
pub struct EngineSettings {
    /// Largest linear memory one pool slot holds, in bytes.
    pub max_memory_bytes: usize,
    /// Largest table one pool slot holds, in elements.
    pub max_table_elements: usize,
    /// Whether guest code consumes fuel, for deterministic CPU metering.
    /// Costs some speed on every instruction, so it is off unless asked for.
    pub fuel: bool,
    /// Component instances the pool holds at once.
    pub pool_instances: u32,
}

/// Builds the engine: cranelift, component model, pooling allocator, epoch
/// interruption.
///
/// # Errors
///
/// Fails when wasmtime rejects the configuration, for example when the pool
/// cannot reserve its address space.
pub fn build_engine(settings: EngineSettings) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let instances = settings.pool_instances;
    // A Rust component built for wasm32-wasip2 holds a handful of core
    // instances (the program plus wit-component's shims) and one memory.
    pool.total_component_instances(instances)
        .total_core_instances(instances * 8)
        .max_core_instances_per_component(16)
        .total_memories(instances)
        .max_memories_per_component(1)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .table_elements(settings.max_table_elements)
        .max_memory_size(settings.max_memory_bytes);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(settings.fuel)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances an engine's epoch on its own thread until dropped.
///
/// The thread never runs guest code, so a busy guest cannot delay the ticks
/// that interrupt it.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    ///
    /// # Errors
    ///
    /// Fails when the thread cannot be spawned.
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("warden-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread only sleeps and increments; it cannot panic short of
            // a wasmtime bug, and there is nothing to do about one here.
            let _ = thread.join();
        }
    }
}

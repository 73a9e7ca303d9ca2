//! What warden's checks and audit cost per invocation.
//!
//! One trivial agent (`guest-bench-trivial`: one `records.put`, one
//! `records.get`) runs three ways on the same engine configuration and the
//! same SQLite record store:
//!
//! - `bare`: plain wasmtime with a host that stores records and does nothing
//!   else: no key rules, no grant, no audit;
//! - `warden-buffered`: the warden runtime with audit events written to the
//!   log file but left in the OS page cache;
//! - `warden-synced`: the warden runtime as shipped, syncing the audit log
//!   before the invocation's writes are committed and before it returns
//!   (two syncs for this agent; see `AuditDurability`).
//!
//! All three run the guest on the benchmark's own thread (a current-thread
//! tokio runtime), with the same store set-up: captured std streams, a
//! memory limiter and an epoch callback that yields at each tick.
//!
//! Criterion reports each figure. A second pass then runs the three in
//! many short rounds, back to back in a rotating order, and prints the
//! median times and the median of the per-round ratios to `bare`.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::Criterion;
use warden_host_api::{
    scope::TenantId,
    warden_agent::{
        RecordStore,
        bindings::{
            AgentPre,
            warden::agent::{decisions, records},
        },
    },
};
use warden_runtime::tenant::limits::DEFAULT_MAX_STREAM_BYTES;
use warden_runtime::{
    AuditDurability, Runtime, TenantId as RuntimeTenant, TenantLimits,
    engine::{DEFAULT_POOL_INSTANCES, EngineSettings, build_engine},
    runtime::{DEFAULT_POOL_MAX_MEMORY_BYTES, DEFAULT_POOL_MAX_TABLE_ELEMENTS},
    state::Records,
};
use wasmtime::{
    Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline,
    component::{Component, HasSelf, Linker, ResourceTable},
};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView, p2::pipe::MemoryOutputPipe};

const INPUT: &[u8] = b"{\"invoice\":\"INV-1\",\"amount\":\"12.50\"}";

/// The baseline host: records straight into SQLite, nothing checked or
/// recorded.
struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
    records: Records,
    tenant: TenantId,
    limits: StoreLimits,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn other(e: impl std::fmt::Display) -> records::Error {
    records::Error::Other(e.to_string())
}

impl records::Host for BareState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Vec<u8>, records::Error>> {
        Ok(match self.records.get(&self.tenant, &key) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(records::Error::NotFound),
            Err(e) => Err(other(e)),
        })
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), records::Error>> {
        Ok(self.records.put(&self.tenant, &key, &value).map_err(other))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), records::Error>> {
        Ok(self
            .records
            .delete(&self.tenant, &key)
            .map(|_| ())
            .map_err(other))
    }

    fn list(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, records::Error>> {
        Ok(self
            .records
            .list(&self.tenant, &prefix, 1000)
            .map_err(other))
    }
}

impl decisions::Host for BareState {
    fn record(
        &mut self,
        _decision: decisions::Decision,
    ) -> wasmtime::Result<Result<(), decisions::Error>> {
        Ok(Ok(()))
    }
}

struct Bare {
    engine: Engine,
    pre: AgentPre<BareState>,
    records: Records,
    limits: TenantLimits,
}

impl Bare {
    fn new(dir: &std::path::Path, limits: TenantLimits) -> Self {
        let engine = build_engine(EngineSettings {
            max_memory_bytes: DEFAULT_POOL_MAX_MEMORY_BYTES as usize,
            max_table_elements: DEFAULT_POOL_MAX_TABLE_ELEMENTS as usize,
            pool_instances: DEFAULT_POOL_INSTANCES,
            fuel: false,
        })
        .unwrap();
        let mut linker = Linker::<BareState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        records::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
        decisions::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).unwrap();
        let component = Component::from_file(&engine, warden_test_programs::BENCH_TRIVIAL).unwrap();
        let pre = AgentPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let records = Records::open(&dir.join("bare.sqlite3")).unwrap();
        Self {
            engine,
            pre,
            records,
            limits,
        }
    }

    /// One invocation with the same store set-up the runtime uses: captured
    /// std streams, memory limiter, an epoch callback that yields each tick.
    async fn invoke(&self, input: &[u8]) -> Vec<u8> {
        let wasi = WasiCtxBuilder::new()
            .stdout(MemoryOutputPipe::new(DEFAULT_MAX_STREAM_BYTES))
            .stderr(MemoryOutputPipe::new(DEFAULT_MAX_STREAM_BYTES))
            .build();
        let state = BareState {
            wasi,
            table: ResourceTable::new(),
            records: self.records.clone(),
            tenant: TenantId::new("bench").unwrap(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_memory_bytes as usize)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let agent = self.pre.instantiate_async(&mut store).await.unwrap();
        agent
            .warden_agent_handler()
            .call_handle(&mut store, input)
            .await
            .unwrap()
            .unwrap()
    }
}

struct Warden {
    runtime: Runtime,
    agent: warden_runtime::Agent,
    tenant: RuntimeTenant,
}

impl Warden {
    fn new(dir: &std::path::Path, durability: AuditDurability) -> Self {
        let manifest = dir.join("bench.toml");
        std::fs::write(
            &manifest,
            format!(
                "name = \"bench-trivial\"\ncomponent = {:?}\n\n[[grants.records]]\nprefix = \
                 \"bench/\"\naccess = \"read-write\"\n",
                warden_test_programs::BENCH_TRIVIAL
            ),
        )
        .unwrap();
        let runtime = Runtime::builder(dir.join("data"))
            .audit_durability(durability)
            .build()
            .unwrap();
        let agent = runtime.load_agent(&manifest).unwrap();
        let tenant = RuntimeTenant::new("bench").unwrap();
        // The operator's approval, as `warden agents allow` gives it; each
        // invocation then checks it, as in production.
        runtime
            .control()
            .allow_agent(&tenant, agent.manifest(), "bench")
            .unwrap();
        Self {
            runtime,
            agent,
            tenant,
        }
    }

    async fn invoke(&self, input: &[u8]) -> Vec<u8> {
        self.runtime
            .invoke(&self.tenant, &self.agent, input, "bench")
            .await
            .unwrap()
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bare = Arc::new(Bare::new(dir.path(), TenantLimits::default()));
    let buffered_dir = dir.path().join("buffered");
    let synced_dir = dir.path().join("synced");
    std::fs::create_dir_all(&buffered_dir).unwrap();
    std::fs::create_dir_all(&synced_dir).unwrap();
    let buffered = Warden::new(&buffered_dir, AuditDurability::OsBuffered);
    let synced = Warden::new(&synced_dir, AuditDurability::Synced);
    assert_eq!(rt.block_on(bare.invoke(INPUT)), INPUT);
    assert_eq!(rt.block_on(buffered.invoke(INPUT)), INPUT);
    assert_eq!(rt.block_on(synced.invoke(INPUT)), INPUT);

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut group = c.benchmark_group("invoke");
    group.bench_function("bare", |b| {
        b.iter(|| rt.block_on(bare.invoke(black_box(INPUT))))
    });
    group.bench_function("warden-buffered", |b| {
        b.iter(|| rt.block_on(buffered.invoke(black_box(INPUT))))
    });
    group.bench_function("warden-synced", |b| {
        b.iter(|| rt.block_on(synced.invoke(black_box(INPUT))))
    });
    group.finish();
    c.final_summary();

    // Side by side: many short rounds, each timing the three back to back
    // in an order that rotates from round to round, so that machine noise
    // (this runs on shared, noisy machines) lands on all three alike. The
    // ratio is taken within each round, where the three ran within a few
    // milliseconds of each other, and the median of those is reported
    // beside the median times.
    let rounds = 201;
    let per_round = 30;
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 2] = Default::default();
    for round in 0..rounds {
        let runs: [&dyn Fn(); 3] = [
            &|| drop(rt.block_on(bare.invoke(INPUT))),
            &|| drop(rt.block_on(buffered.invoke(INPUT))),
            &|| drop(rt.block_on(synced.invoke(INPUT))),
        ];
        let mut this = [0f64; 3];
        for step in 0..3 {
            let which = (round + step) % 3;
            let start = Instant::now();
            for _ in 0..per_round {
                runs[which]();
            }
            this[which] = start.elapsed().as_secs_f64() * 1e6 / f64::from(per_round);
        }
        for (slot, t) in times.iter_mut().zip(this) {
            slot.push(t);
        }
        ratios[0].push(this[1] / this[0]);
        ratios[1].push(this[2] / this[0]);
    }
    let [bare_us, buffered_us, synced_us] = times.map(median);
    let [buffered_x, synced_x] = ratios.map(median);
    println!();
    println!(
        "side by side, {rounds} rounds of {per_round} invocations each (medians; ratio: median \
         of the per-round ratios to bare):"
    );
    println!("  bare wasmtime (no checks, no audit)   {bare_us:9.1} us   1.00x");
    println!("  warden, audit in page cache           {buffered_us:9.1} us   {buffered_x:.2}x");
    println!("  warden, audit synced (commit, return) {synced_us:9.1} us   {synced_x:.2}x");

    // The floor under the synced figure: what this disk takes to make 1 KiB
    // durable, once. The synced run pays it twice (before the commit and
    // before the return).
    let mut file = std::fs::File::create(dir.path().join("sync-probe")).unwrap();
    let block = [b'x'; 1024];
    let syncs: Vec<f64> = (0..200)
        .map(|_| {
            let start = Instant::now();
            std::io::Write::write_all(&mut file, &block).unwrap();
            file.sync_data().unwrap();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    println!(
        "  (this disk: one 1 KiB write + fdatasync takes {:.1} us, median of 200)",
        median(syncs)
    );
}

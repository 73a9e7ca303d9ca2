//! Noisy neighbour: does one tenant's runaway load slow another tenant down?
//!
//! Tenant `quiet` runs a trivial agent (one put, one get) over and over, and
//! its latency is measured twice in the same run: once with tenant `noisy`
//! idle, once with `noisy` keeping every one of its running slots busy with
//! agents that loop until their CPU deadline, and a queue of more waiting.
//! The figures printed are p50 and p99 of `quiet`'s invocations in both
//! phases, and their ratio. The target is a busy p99 at most twice the idle
//! p99.
//!
//! Run with `cargo bench -p warden-runtime --bench noisy`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use warden_runtime::{Agent, AuditDurability, Runtime, TenantConfig, TenantId, TenantLimits};

/// Invocations of `quiet` measured per phase.
const SAMPLES: usize = 2000;
/// Running slots of `noisy` unless `WARDEN_NOISY_CONCURRENT` says otherwise;
/// every one is kept busy. One leaves the second core of a 2-core machine to
/// everyone else, as a per-tenant limit is meant to.
const DEFAULT_NOISY_CONCURRENT: u64 = 1;

fn agent(runtime: &Runtime, dir: &std::path::Path, name: &str, component: &str) -> Agent {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = {name:?}\ncomponent = {component:?}\n[[grants.records]]\nprefix = \
             \"bench/\"\naccess = \"read-write\"\n"
        ),
    )
    .unwrap();
    runtime.load_agent(&path).unwrap()
}

async fn measure(runtime: &Runtime, quiet: &TenantId, agent: &Agent) -> Vec<Duration> {
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        runtime
            .invoke(quiet, agent, b"ping", "bench")
            .await
            .unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let noisy_concurrent: u64 = std::env::var("WARDEN_NOISY_CONCURRENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_NOISY_CONCURRENT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The page-cache setting keeps the disk's sync latency, which is not
    // what this benchmark is about, out of both phases alike.
    let runtime = Arc::new(
        Runtime::builder(dir.path().join("data"))
            .audit_durability(AuditDurability::OsBuffered)
            .build()
            .unwrap(),
    );
    let trivial = agent(
        &runtime,
        dir.path(),
        "trivial",
        warden_test_programs::BENCH_TRIVIAL,
    );
    let spin = agent(&runtime, dir.path(), "spin", warden_test_programs::SPIN);
    let quiet = TenantId::new("quiet").unwrap();
    let noisy = TenantId::new("noisy").unwrap();
    // The operator's approvals, as `warden agents allow` gives them.
    let control = runtime.control();
    control
        .allow_agent(&quiet, trivial.manifest(), "bench")
        .unwrap();
    control
        .allow_agent(&noisy, spin.manifest(), "bench")
        .unwrap();
    let noisy_limits = TenantLimits {
        max_concurrent: noisy_concurrent,
        max_queued: 8,
        cpu_timeout: Duration::from_millis(500),
        ..TenantLimits::default()
    };
    runtime
        .configure_tenant(
            &noisy,
            TenantConfig {
                limits: noisy_limits,
            },
        )
        .unwrap();

    rt.block_on(async {
        // Warm up both tenants: logs open, code paged in.
        measure(&runtime, &quiet, &trivial).await;
        let idle = measure(&runtime, &quiet, &trivial).await;

        let stop = Arc::new(AtomicBool::new(false));
        let noisy_runs = Arc::new(AtomicU64::new(0));
        let mut load = Vec::new();
        // More callers than slots: the slots stay full and the queue holds
        // the rest, as a flood from one tenant would.
        for _ in 0..(noisy_concurrent + 4) {
            let (runtime, spin, noisy) = (Arc::clone(&runtime), spin.clone(), noisy.clone());
            let (stop, runs) = (Arc::clone(&stop), Arc::clone(&noisy_runs));
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // Each run ends at its CPU deadline or is refused busy.
                    let _ = runtime.invoke(&noisy, &spin, b"", "bench").await;
                    runs.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let busy = measure(&runtime, &quiet, &trivial).await;
        stop.store(true, Ordering::Relaxed);
        for task in load {
            task.await.unwrap();
        }

        let (idle50, idle99) = (percentile(&idle, 0.50), percentile(&idle, 0.99));
        let (busy50, busy99) = (percentile(&busy, 0.50), percentile(&busy, 0.99));
        println!("noisy neighbour: {SAMPLES} invocations of `quiet` per phase");
        println!("  noisy idle           p50 {idle50:>10.1?}   p99 {idle99:>10.1?}");
        println!(
            "  noisy busy ({} running, {} queued callers)   p50 {busy50:>10.1?}   p99 {busy99:>10.1?}",
            noisy_concurrent, 4
        );
        println!(
            "  ratio busy/idle      p50 {:>9.2}x   p99 {:>9.2}x   (target p99 <= 2.00x)",
            busy50.as_secs_f64() / idle50.as_secs_f64(),
            busy99.as_secs_f64() / idle99.as_secs_f64()
        );
        println!(
            "  noisy invocations ended while measuring: {}",
            noisy_runs.load(Ordering::Relaxed)
        );
    });
}

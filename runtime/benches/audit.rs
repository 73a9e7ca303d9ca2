//! How fast the audit log appends and verifies, beside the machine's sha256.
//!
//! One run prints three figures together, measured on the same machine in
//! the same process:
//!
//! - durable appends per second: many threads append capability events
//!   through [`audit::emit`] to one tenant's log with
//!   [`AuditDurability::Synced`], so each append returns only once its
//!   batch is synced (group commit). A single appender's rate is printed
//!   beside it: that is one `fdatasync` per event, the disk's sync rate;
//! - verification speed in MB/s of segment bytes: [`verify`] over a log of
//!   a few hundred thousand events, page cache warm;
//! - raw sha256 speed in MB/s, over one large buffer and over event-sized
//!   messages: the physical limit of anything that hashes every byte.
//!
//! Run with `cargo bench -p warden-runtime --bench audit`; add `-- verify`
//! (or `appends`, `sha256`) to run one part alone, and set
//! `WARDEN_BENCH_VERIFY_RUNS` to repeat verification more often than three
//! times (for a profiler). Set `WARDEN_BENCH_DIR` to put the logs on another
//! file system than the system temp directory.

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use warden_host_api::{
    audit::{self, Decision, EventBody},
    scope::{Digest, InstanceScope, TenantId},
};
use warden_runtime::audit::{
    AuditDurability, AuditLogs, AuditOptions, StreamId, VerifyOptions, merkle, verify,
};

/// How long each throughput run lasts.
const RUN: Duration = Duration::from_secs(4);
/// Events in the log that verification reads.
const VERIFY_EVENTS: u64 = 300_000;

fn scope(tenant: &TenantId, invocation: u64) -> InstanceScope {
    InstanceScope {
        tenant: tenant.clone(),
        agent: "invoice-triage".into(),
        component_digest: Digest::of(b"component"),
        grant_digest: Digest::of(b"grant"),
        invocation: format!("18c2f0a9b1e-4d2-{invocation}"),
        actor: "billing-service".into(),
    }
}

/// A typical capability event: an allowed `records.get` with a value digest.
fn body(n: u64) -> EventBody {
    EventBody::HostCall {
        interface: "warden:agent/records".into(),
        function: "get".into(),
        resource: format!("invoices/inv-{n}"),
        decision: Decision::Allow,
        reason: "granted by prefix \"invoices\"".into(),
        blame: None,
        value_digest: Some(audit::value_digest(&n.to_be_bytes())),
        old_value_digest: None,
    }
}

fn options(durability: AuditDurability) -> AuditOptions {
    AuditOptions {
        durability,
        ..AuditOptions::default()
    }
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("WARDEN_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).expect("cannot create a dir in WARDEN_BENCH_DIR"),
        None => tempfile::tempdir().expect("cannot create a temp dir"),
    }
}

/// Appends from `threads` threads for [`RUN`]; returns events per second.
fn appends_per_second(threads: usize, durability: AuditDurability) -> f64 {
    let dir = bench_dir();
    let logs = AuditLogs::new(dir.path(), options(durability));
    let tenant = TenantId::new("bench").unwrap();
    let log = logs.tenant(&tenant).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (log, stop, count, tenant) = (
                Arc::clone(&log),
                Arc::clone(&stop),
                Arc::clone(&count),
                tenant.clone(),
            );
            std::thread::spawn(move || {
                let scope = scope(&tenant, t as u64);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    audit::emit(&*log, &scope, body(n)).expect("append failed");
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    count.load(Ordering::Relaxed) as f64 / elapsed
}

/// Builds a log of [`VERIFY_EVENTS`] events and verifies it; returns MB/s
/// (best of three) and the log's size in bytes.
fn verify_mb_per_second() -> (f64, u64) {
    let dir = bench_dir();
    let tenant = TenantId::new("bench").unwrap();
    {
        let logs = AuditLogs::new(dir.path(), options(AuditDurability::OsBuffered));
        let log = logs.tenant(&tenant).unwrap();
        let scope = scope(&tenant, 0);
        for n in 0..VERIFY_EVENTS {
            audit::emit(&*log, &scope, body(n)).unwrap();
        }
    }
    let stream = StreamId::Tenant(tenant);
    let bytes: u64 = std::fs::read_dir(stream.dir(dir.path()))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name()
                .to_str()?
                .starts_with("seg-")
                .then(|| e.metadata().ok().map(|m| m.len()))?
        })
        .sum();
    let mut best = f64::MAX;
    let runs = std::env::var("WARDEN_BENCH_VERIFY_RUNS").map_or(3, |r| r.parse().unwrap_or(3));
    for _ in 0..runs {
        let started = Instant::now();
        let report = verify(dir.path(), &stream, &VerifyOptions::default()).unwrap();
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(report.events, VERIFY_EVENTS);
    }
    (bytes as f64 / best / 1e6, bytes)
}

/// Raw sha256 over one 64 MiB buffer, and over 450-byte messages (the size
/// of a stored record) as leaf hashes; MB/s each, best of three.
fn sha256_mb_per_second() -> (f64, f64) {
    let big = vec![0x5au8; 64 * 1024 * 1024];
    let mut best_big = f64::MAX;
    let mut best_small = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        black_box(Sha256::digest(black_box(&big)));
        best_big = best_big.min(started.elapsed().as_secs_f64());

        let started = Instant::now();
        for chunk in big.chunks(450) {
            black_box(merkle::leaf_hash(black_box(chunk)));
        }
        best_small = best_small.min(started.elapsed().as_secs_f64());
    }
    let mb = big.len() as f64 / 1e6;
    (mb / best_big, mb / best_small)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes
    // nothing and only checks that this builds and runs briefly.
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        println!("audit bench: run with `cargo bench` for figures");
        return;
    }
    let parts: Vec<String> = std::env::args()
        .filter(|a| ["appends", "verify", "sha256"].contains(&a.as_str()))
        .collect();
    let run = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("audit log benchmark ({cores} cores, {RUN:?} per run)");
    println!();
    if run("appends") {
        appends();
    }
    let verify_rate = run("verify").then(verify_mb_per_second);
    let sha = run("sha256").then(sha256_mb_per_second);
    println!();
    println!("summary");
    if let Some((rate, bytes)) = verify_rate {
        println!(
            "  verification:                      {rate:>9.0} MB/s ({:.0} MB, {VERIFY_EVENTS} \
             events; target 500)",
            bytes as f64 / 1e6
        );
    }
    if let Some((big, small)) = sha {
        println!("  raw sha256, one 64 MiB buffer:     {big:>9.0} MB/s");
        println!("  raw sha256, 450-byte leaf hashes:  {small:>9.0} MB/s");
    }
}

fn appends() {
    let single = appends_per_second(1, AuditDurability::Synced);
    println!("durable appends, 1 appender (one fdatasync each):  {single:>10.0} events/s");
    let mut best = (0, 0.0);
    for threads in [16, 64, 256, 512, 1024] {
        let rate = appends_per_second(threads, AuditDurability::Synced);
        println!("durable appends, group commit, {threads:>3} appenders:   {rate:>10.0} events/s");
        if rate > best.1 {
            best = (threads, rate);
        }
    }
    let buffered = appends_per_second(64, AuditDurability::OsBuffered);
    println!("OS-buffered appends (no sync), 64 appenders:    {buffered:>10.0} events/s");

    println!(
        "durable appends with group commit, best:        {:>10.0} events/s ({} appenders; \
         target 100000)",
        best.1, best.0
    );
}

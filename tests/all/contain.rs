//! One tenant's runaway agent costs that tenant alone: each misbehaving
//! guest is stopped by the limit it hits, the hit is audited and counted, and
//! another tenant's invocation then succeeds in the same process.

use std::{path::Path, time::Duration};

use serde_json::Value;
use warden_runtime::{
    Agent, AuditDurability, InvokeError, Runtime, TenantConfig, TenantId, TenantLimits,
    audit::{StreamId, for_each_record},
};

struct InProcess {
    dir: tempfile::TempDir,
    runtime: Runtime,
}

impl InProcess {
    fn new() -> Self {
        Self::with_pool(64)
    }

    fn with_pool(instances: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let limits = TenantLimits {
            max_concurrent: u64::from(instances.min(4)),
            ..Default::default()
        };
        // These tests are about containment, not durability: events in the
        // page cache keep thousands of host calls from each waiting on the
        // disk.
        let runtime = Runtime::builder(dir.path().join("data"))
            .audit_durability(AuditDurability::OsBuffered)
            .pool_instances(instances)
            .default_limits(limits)
            .build()
            .unwrap();
        Self { dir, runtime }
    }

    fn agent(&self, name: &str, component: &str, grants: &[(&str, &str)]) -> Agent {
        let mut text = format!("name = {name:?}\ncomponent = {component:?}\n");
        for (prefix, access) in grants {
            text += &format!("[[grants.records]]\nprefix = {prefix:?}\naccess = {access:?}\n");
        }
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        self.runtime.load_agent(&path).unwrap()
    }

    fn limit(&self, tenant: &str, limits: TenantLimits) -> TenantId {
        let id = TenantId::new(tenant).unwrap();
        self.runtime
            .configure_tenant(&id, TenantConfig { limits })
            .unwrap();
        id
    }

    async fn run(
        &self,
        tenant: &TenantId,
        agent: &Agent,
        input: &str,
    ) -> Result<String, InvokeError> {
        // The operator's approval, as `warden agents allow` gives it.
        self.runtime
            .control()
            .allow_agent(tenant, agent.manifest(), "test")
            .unwrap();
        let out = self
            .runtime
            .invoke(tenant, agent, input.as_bytes(), "test")
            .await?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// Another tenant's trivial invocation still works.
    async fn neighbour_is_fine(&self) {
        let agent = self.agent(
            "trivial",
            warden_test_programs::BENCH_TRIVIAL,
            &[("bench/", "read-write")],
        );
        let quiet = TenantId::new("quiet").unwrap();
        assert_eq!(
            self.run(&quiet, &agent, "still here").await.unwrap(),
            "still here"
        );
    }

    fn events(&self, tenant: &TenantId) -> Vec<Value> {
        read_events(self.runtime.data_dir(), tenant)
    }

    fn hits(&self, tenant: &TenantId, limit: &str) -> u64 {
        self.runtime
            .limit_hits()
            .into_iter()
            .filter(|(t, l, _)| t == tenant && *l == limit)
            .map(|(_, _, n)| n)
            .sum()
    }
}

fn read_events(data_dir: &Path, tenant: &TenantId) -> Vec<Value> {
    let mut events = Vec::new();
    for_each_record(data_dir, &StreamId::Tenant(tenant.clone()), |record, _| {
        events.push(serde_json::from_slice(record.event).unwrap());
        Ok(())
    })
    .unwrap();
    events
}

fn limit_event<'a>(events: &'a [Value], limit: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["body"]["type"] == "limit-hit" && e["body"]["limit"] == limit)
        .unwrap_or_else(|| panic!("no limit-hit event for {limit}: {events:?}"))
}

fn trap_reason(result: Result<String, InvokeError>) -> String {
    match result {
        Err(InvokeError::Trap { reason, .. }) => reason,
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_is_killed_at_the_cpu_deadline() {
    let p = InProcess::new();
    let noisy = p.limit(
        "noisy",
        TenantLimits {
            cpu_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let agent = p.agent("spin", warden_test_programs::SPIN, &[]);
    let started = std::time::Instant::now();
    let reason = trap_reason(p.run(&noisy, &agent, "").await);
    assert!(
        reason.starts_with("cpu_timeout reached: used 200ms of CPU"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    limit_event(&p.events(&noisy), "cpu_timeout");
    assert_eq!(p.hits(&noisy, "cpu_timeout"), 1);
    p.neighbour_is_fine().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_wait_inside_a_host_call_is_killed_by_the_wall_clock() {
    let p = InProcess::new();
    let noisy = p.limit(
        "noisy",
        TenantLimits {
            wall_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    );
    let agent = p.agent("sleep", warden_test_programs::SLEEP, &[]);
    let started = std::time::Instant::now();
    let reason = trap_reason(p.run(&noisy, &agent, "").await);
    assert!(
        reason.starts_with("wall_timeout reached: still running after 300ms"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    limit_event(&p.events(&noisy), "wall_timeout");
    p.neighbour_is_fine().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_growth_past_the_limit_fails_and_the_guest_sees_it() {
    let p = InProcess::new();
    let noisy = p.limit(
        "noisy",
        TenantLimits {
            max_memory_bytes: 16 << 20,
            ..Default::default()
        },
    );
    let agent = p.agent("hog", warden_test_programs::MEMORY_HOG, &[]);
    // memory.grow returns -1 and the guest carries on.
    assert_eq!(
        p.run(&noisy, &agent, "grow 1000").await.unwrap(),
        "growth refused"
    );
    let detail = limit_event(&p.events(&noisy), "max_memory_bytes")["body"]["detail"].clone();
    assert!(
        detail.as_str().unwrap().contains("refused; limit 16777216"),
        "{detail}"
    );
    // Rust's allocator aborts on a refused growth: a trap naming the limit.
    let reason = trap_reason(p.run(&noisy, &agent, "alloc 100000000").await);
    assert!(
        reason.contains("after reaching max_memory_bytes"),
        "{reason}"
    );
    // Counted once per refused growth: the allocator may retry.
    assert!(p.hits(&noisy, "max_memory_bytes") >= 2);
    p.neighbour_is_fine().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn table_growth_to_u32_max_elements_is_refused() {
    let p = InProcess::new();
    let noisy = TenantId::new("noisy").unwrap();
    let agent = p.agent("table", warden_test_programs::TABLE_GROW, &[]);
    match p.run(&noisy, &agent, "").await {
        Err(InvokeError::Failed { message, .. }) => assert_eq!(message, "table growth refused"),
        other => panic!("expected the guest to see the refusal, got {other:?}"),
    }
    let detail = limit_event(&p.events(&noisy), "max_table_elements")["body"]["detail"].clone();
    assert!(
        detail
            .as_str()
            .unwrap()
            .contains("to 4294967295 elements refused"),
        "{detail}"
    );
    p.neighbour_is_fine().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_traps_and_the_host_stays_up() {
    let p = InProcess::new();
    let noisy = TenantId::new("noisy").unwrap();
    let agent = p.agent("recurse", warden_test_programs::RECURSE, &[]);
    let reason = trap_reason(p.run(&noisy, &agent, "").await);
    assert!(!reason.is_empty());
    p.neighbour_is_fine().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_input_is_refused_before_instantiation() {
    let p = InProcess::new();
    let noisy = p.limit(
        "noisy",
        TenantLimits {
            max_input_bytes: 1024,
            ..Default::default()
        },
    );
    // A guest that would trap if it ran proves it never did.
    let agent = p.agent("spin", warden_test_programs::SPIN, &[]);
    let big = "x".repeat(1025);
    match p.run(&noisy, &agent, &big).await {
        Err(InvokeError::InputTooLarge {
            size: 1025,
            max: 1024,
        }) => {}
        other => panic!("expected InputTooLarge, got {other:?}"),
    }
    assert_eq!(p.hits(&noisy, "max_input_bytes"), 1);
    p.neighbour_is_fine().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn host_calls_past_the_cap_are_refused() {
    let p = InProcess::new();
    let noisy = TenantId::new("noisy").unwrap();
    let agent = p.agent(
        "probe",
        warden_test_programs::PROBE,
        &[("a/", "read-write")],
    );
    let out = p
        .run(&noisy, &agent, "repeat 20000 get a/x\n")
        .await
        .unwrap();
    assert!(out.contains("call 10001: err limit-reached"), "{out}");
    assert_eq!(p.hits(&noisy, "max_host_calls"), 1);
    p.neighbour_is_fine().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_concurrency_and_queue_a_tenant_is_busy_at_once() {
    let p = InProcess::new();
    let noisy = p.limit(
        "noisy",
        TenantLimits {
            max_concurrent: 1,
            max_queued: 1,
            wall_timeout: Duration::from_millis(800),
            ..Default::default()
        },
    );
    let agent = p.agent("sleep", warden_test_programs::SLEEP, &[]);
    let (a, b, c) = tokio::join!(
        p.run(&noisy, &agent, ""),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            p.run(&noisy, &agent, "").await
        },
        async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let started = std::time::Instant::now();
            let result = p.run(&noisy, &agent, "").await;
            (result, started.elapsed())
        },
    );
    // The first runs into its deadline, the second waited in the queue, the
    // third found both full and was refused without waiting.
    assert!(trap_reason(a).contains("wall_timeout"));
    assert!(
        matches!(
            b,
            Err(InvokeError::Trap { .. }) | Err(InvokeError::Busy { .. })
        ),
        "{b:?}"
    );
    let (c, waited) = c;
    assert!(
        matches!(
            c,
            Err(InvokeError::Busy {
                max_concurrent: 1,
                max_queued: 1,
                ..
            })
        ),
        "{c:?}"
    );
    assert!(waited < Duration::from_millis(100), "{waited:?}");
    assert_eq!(p.runtime.queued(&noisy), 0);
    p.neighbour_is_fine().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_pool_slot_shows_no_trace_of_the_previous_tenant() {
    // One pool slot: tenant b's instance must reuse the memory tenant a had.
    let p = InProcess::with_pool(1);
    let agent = p.agent("marker", warden_test_programs::MEMORY_MARKER, &[]);
    let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
    // The scan can see a marker: within one instance it finds its own.
    assert_eq!(
        p.run(&a, &agent, "write-and-scan 81985529216486895")
            .await
            .unwrap(),
        "found"
    );
    assert_eq!(
        p.run(&a, &agent, "write 1311768467463790320")
            .await
            .unwrap(),
        "written"
    );
    assert_eq!(
        p.run(&b, &agent, "scan 1311768467463790320").await.unwrap(),
        "clean"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_fuel_metering_an_endless_loop_ends_at_max_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::builder(dir.path().join("data"))
        .fuel_metering(true)
        .build()
        .unwrap();
    let p = InProcess { dir, runtime };
    let noisy = p.limit(
        "noisy",
        TenantLimits {
            max_fuel: 5_000_000,
            ..Default::default()
        },
    );
    let agent = p.agent("spin", warden_test_programs::SPIN, &[]);
    let reason = trap_reason(p.run(&noisy, &agent, "").await);
    assert_eq!(reason, "max_fuel reached: consumed 5000000 units");
    limit_event(&p.events(&noisy), "max_fuel");
    p.neighbour_is_fine().await;
}

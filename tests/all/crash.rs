//! A process appending at full speed is killed with SIGKILL; on restart the
//! log verifies and every append acknowledged before the kill is there. A
//! process running invocations is killed the same way; every write in the
//! database then has its event in the log.
//!
//! The test binary runs itself as the child: the test
//! [`appender_child_appends_until_killed_when_spawned_by_the_crash_test`]
//! does nothing unless [`CHILD_ENV`] names a data directory, in which case
//! it appends from several threads through the library, exactly as
//! capabilities do, and prints one line per acknowledged append.

use std::{
    collections::HashSet,
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use warden_host_api::{
    audit::{self, EventBody, HostScope},
    warden_agent::RecordStore as _,
};
use warden_runtime::{
    Runtime, TenantId,
    audit::{AuditLogs, AuditOptions, StreamId, VerifyOptions, for_each_record, verify},
    state::Records,
};

use crate::harness::{Env, stderr};

/// Set to the data directory when the test binary runs as the child.
const CHILD_ENV: &str = "WARDEN_TEST_CRASH_CHILD_DATA_DIR";
const THREADS: usize = 4;

#[test]
fn appender_child_appends_until_killed_when_spawned_by_the_crash_test() {
    let Ok(data_dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let logs = AuditLogs::new(data_dir, AuditOptions::default());
    let tenant = TenantId::new("crash").unwrap();
    let log = logs.tenant(&tenant).expect("child cannot open the log");
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            let out = Arc::clone(&out);
            let tenant = tenant.clone();
            std::thread::spawn(move || {
                for n in 0u64.. {
                    let marker = format!("t{t}-{n}");
                    let scope = HostScope {
                        tenant: Some(tenant.clone()),
                        component: "crash-test".into(),
                        invocation: marker.clone(),
                        actor: "crash-test".into(),
                    };
                    let body = EventBody::AgentDecision {
                        subject: marker.clone(),
                        outcome: "appended".into(),
                        reason: "x".repeat(200),
                    };
                    audit::emit_host(&*log, &scope, body).expect("append failed");
                    // Printed only after the append returned: every line the
                    // parent reads is an acknowledged append.
                    let mut out = out.lock().unwrap();
                    writeln!(out, "{marker}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn a_log_killed_mid_append_recovers_with_every_acknowledged_event() {
    let env = Env::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::appender_child_appends_until_killed_when_spawned_by_the_crash_test",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, env.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot spawn the child");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = HashSet::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The test harness may print its own words before the first
            // marker on the same line; a marker is the last word.
            let word = line.rsplit(' ').next().unwrap_or("");
            let is_marker = word
                .strip_prefix('t')
                .and_then(|w| w.split_once('-'))
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u64>().is_ok());
            if is_marker {
                acked.insert(word.to_owned());
            }
        }
        acked
    });

    // Let it run at full speed for a while, then kill it mid-flight.
    let started = Instant::now();
    let segment = env.segment("crash");
    while started.elapsed() < Duration::from_secs(20)
        && std::fs::metadata(&segment).map_or(0, |m| m.len()) < 2_000_000
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("cannot kill the child"); // SIGKILL on Unix
    child.wait().unwrap();
    let acked = reader.join().unwrap();
    assert!(
        acked.len() > 100,
        "the child acknowledged only {} appends",
        acked.len()
    );

    // Restart: opening recovers a torn tail, if the kill left one.
    let stream = StreamId::Tenant(TenantId::new("crash").unwrap());
    drop(
        AuditLogs::new(env.data_dir(), AuditOptions::default())
            .open(&stream)
            .expect("the log does not reopen after the kill"),
    );
    let report = verify(&env.data_dir(), &stream, &VerifyOptions::default())
        .expect("the log does not verify after the kill");
    let mut present = HashSet::new();
    for_each_record(&env.data_dir(), &stream, |record, _| {
        let event: serde_json::Value = serde_json::from_slice(record.event).unwrap();
        if let Some(inv) = event["invocation"].as_str() {
            present.insert(inv.to_owned());
        }
        Ok(())
    })
    .unwrap();
    let lost: Vec<_> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged appends lost: {lost:?}",
        lost.len()
    );
    assert!(report.events >= acked.len() as u64);

    // And the binary agrees.
    let out = env.audit(&["verify", "--tenant", "crash"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Set to the data directory when the test binary runs as the invoking
/// child.
const INVOKER_ENV: &str = "WARDEN_TEST_CRASH_INVOKER_DATA_DIR";

#[test]
fn invoker_child_runs_agents_until_killed_when_spawned_by_the_crash_test() {
    let Ok(data_dir) = std::env::var(INVOKER_ENV) else {
        return;
    };
    let data_dir = std::path::PathBuf::from(data_dir);
    let runtime = Runtime::builder(&data_dir).build().unwrap();
    let agent = runtime
        .load_agent(&data_dir.join("..").join("probe.toml"))
        .unwrap();
    let tenant = TenantId::new("crash").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Two callers at once, so that batches of both interleave in the log.
    rt.block_on(async {
        let callers: Vec<_> = (0..2u64)
            .map(|c| {
                let (runtime, agent, tenant) = (&runtime, &agent, &tenant);
                async move {
                    for n in 0u64.. {
                        let input = format!("put a/{c}-{n} v{n}\nget a/{c}-{n}\n");
                        let out = runtime
                            .invoke(tenant, agent, input.as_bytes(), "crash-test")
                            .await
                            .expect("invocation failed");
                        assert!(String::from_utf8_lossy(&out).contains("-> ok v"));
                        // Printed only after the invocation returned.
                        println!("a/{c}-{n}");
                    }
                }
            })
            .collect();
        futures_join(callers).await;
    });
}

/// Runs every future to its end on the current task.
async fn futures_join<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

#[test]
fn invocations_killed_mid_flight_leave_no_committed_write_off_the_record() {
    let env = Env::new();
    let probe = env.probe();
    env.allow(
        "crash",
        &warden_runtime::manifest::Manifest::load(&probe).unwrap(),
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::invoker_child_runs_agents_until_killed_when_spawned_by_the_crash_test",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INVOKER_ENV, env.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot spawn the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = HashSet::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let word = line.rsplit(' ').next().unwrap_or("");
            if word.starts_with("a/") {
                acked.insert(word.to_owned());
                let _ = tx.send(());
            }
        }
        acked
    });

    // Kill it once it is well under way: most of the time it is inside an
    // invocation, between a guest's write and the return.
    let started = Instant::now();
    let mut seen = 0;
    while seen < 300 && started.elapsed() < Duration::from_secs(60) {
        if rx.recv_timeout(Duration::from_secs(1)).is_ok() {
            seen += 1;
        }
    }
    child.kill().expect("cannot kill the child");
    child.wait().unwrap();
    let acked = reader.join().unwrap();
    assert!(
        acked.len() >= 50,
        "the child returned only {} invocations",
        acked.len()
    );

    // The log reopens and verifies (a torn tail is cut and recorded).
    let out = env.verify("crash");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut put_events = HashSet::new();
    let mut finished = 0;
    for event in env.events("crash") {
        let body = &event["body"];
        if body["type"] == "host-call" && body["function"] == "put" && body["decision"] == "allow" {
            put_events.insert(body["resource"].as_str().unwrap().to_owned());
        }
        if body["type"] == "invocation-finish" {
            finished += 1;
        }
    }
    assert!(finished >= acked.len(), "{finished} finish events");

    // Every write in the database has its event in the log, and every
    // invocation that returned has its write there.
    let mut records = Records::open(&env.data_dir().join("state.sqlite3")).unwrap();
    let tenant = TenantId::new("crash").unwrap();
    let stored: HashSet<String> = records
        .list(&tenant, "a", 100_000)
        .unwrap()
        .into_iter()
        .collect();
    let unrecorded: Vec<_> = stored.difference(&put_events).collect();
    assert!(
        unrecorded.is_empty(),
        "committed without their events: {unrecorded:?}"
    );
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "returned but not committed: {lost:?}");
}

//! A process appending at full speed is killed with SIGKILL; on restart the
//! log verifies and every append acknowledged before the kill is there.
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

use warden_host_api::audit::{self, EventBody, HostScope};
use warden_runtime::{
    TenantId,
    audit::{AuditLogs, AuditOptions, StreamId, VerifyOptions, for_each_record, verify},
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

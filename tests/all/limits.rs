//! Limits reached and faults: each fails alone, is audited, and leaves the
//! host able to serve the next invocation.

use crate::harness::{Env, assert_one_line_error, stderr};

#[test]
fn value_over_max_value_bytes_is_refused_and_audited() {
    let env = Env::new();
    let out = env.run_ok(
        &env.probe(),
        "acme",
        "put-big a/big 1048577\nput-big a/ok 1048576\n",
    );
    assert!(out.contains("put-big a/big 1048577 -> err limit-reached: value is 1048577 bytes"));
    assert!(out.contains("put-big a/ok 1048576 -> ok"), "{out}");
    let refused = env.calls("acme", "put", "a/big");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["body"]["decision"], "deny");
    assert!(
        refused[0]["body"]["reason"]
            .as_str()
            .unwrap()
            .contains("max_value_bytes")
    );
}

#[test]
fn ten_kilobyte_key_is_invalid_and_audited_in_bounded_form() {
    let env = Env::new();
    let key = format!("a/{}", "k".repeat(10 * 1024));
    let out = env.run_ok(&env.probe(), "acme", &format!("get {key}\n"));
    assert!(
        out.contains("err invalid-key: key is 10242 bytes, over the maximum of 512"),
        "{out}"
    );
    let denied: Vec<_> = env
        .events("acme")
        .into_iter()
        .filter(|e| e["body"]["type"] == "host-call" && e["body"]["decision"] == "deny")
        .collect();
    assert_eq!(denied.len(), 1);
    // The guest's spelling is kept, but cut: a guest cannot make the audit
    // trail grow by megabytes per call.
    let resource = denied[0]["body"]["resource"].as_str().unwrap();
    assert!(
        resource.starts_with("a/kkkk") && resource.len() < 1200,
        "{}",
        resource.len()
    );
    assert!(resource.contains("10242 bytes"), "{resource}");
}

#[test]
fn list_over_max_list_keys_is_refused() {
    let env = Env::new();
    let out = env.run_ok(
        &env.probe(),
        "acme",
        "fill a/many 1001\nlist a/many\nfill a/few 3\nlist a/few\n",
    );
    assert!(
        out.contains(
            "list a/many -> err limit-reached: list returns more than max_list_keys (1000)"
        )
    );
    assert!(
        out.contains("list a/few -> ok [a/few/0,a/few/1,a/few/2]"),
        "{out}"
    );
}

#[test]
fn host_calls_past_the_cap_are_refused() {
    let env = Env::new();
    // A small cap keeps the run short: every call waits for its audit event
    // to reach the disk. The in-process tests run the default cap.
    env.tenant_config("acme", "[limits]\nmax_host_calls = 100\n");
    let out = env.run_ok(&env.probe(), "acme", "repeat 105 get a/none\n");
    assert!(
        out.contains(
            "call 101: err limit-reached: host calls per invocation exceed max_host_calls (100)"
        ),
        "{out}"
    );
    // The next invocation starts with a fresh count.
    let out = env.run_ok(&env.probe(), "acme", "put a/x 1\n");
    assert!(out.contains("put a/x 1 -> ok"));
}

#[test]
fn a_panicking_guest_traps_alone_and_is_audited() {
    let env = Env::new();
    let out = env.run(&env.probe(), "acme", "put a/x 1\npanic\n");
    assert_one_line_error(&out, "agent probe trapped: unreachable instruction");
    let events = env.events("acme");
    let finish = events.last().unwrap();
    assert_eq!(finish["body"]["type"], "invocation-finish");
    assert_eq!(finish["body"]["outcome"], "trap");
    // The panic message went to stderr and from there to the audit trail.
    assert!(events.iter().any(|e| {
        e["body"]["stream"] == "stderr"
            && e["body"]["line"]
                .as_str()
                .unwrap_or("")
                .contains("probe was told to panic")
    }));
    // Another tenant runs fine afterwards.
    env.run_ok(&env.probe(), "globex", "put a/x 1\n");
}

#[test]
fn an_endless_guest_is_stopped_at_its_deadline() {
    let env = Env::new();
    env.tenant_config("acme", "[limits]\ncpu_timeout = \"300ms\"\n");
    let started = std::time::Instant::now();
    let out = env.run(&env.probe(), "acme", "loop\n");
    assert_one_line_error(&out, "cpu_timeout reached: used 300ms of CPU");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let finish = env.events("acme").pop().unwrap();
    assert_eq!(finish["body"]["outcome"], "trap");
    env.run_ok(&env.probe(), "globex", "put a/x 1\n");
}

#[test]
fn the_agents_own_error_is_reported_with_its_message() {
    let env = Env::new();
    let out = env.run(&env.probe(), "acme", "fail vendor record is unreadable\n");
    assert_one_line_error(&out, "agent probe failed: vendor record is unreadable");
    let out = env.run(&env.probe(), "acme", "frobnicate\n");
    assert_one_line_error(
        &out,
        "agent probe rejected the input: unknown command: frobnicate",
    );
    let finish = env.events("acme").pop().unwrap();
    assert_eq!(finish["body"]["outcome"], "invalid-input");
    assert!(stderr(&out).len() < 200);
}

//! An invocation's record writes land together or not at all, and the audit
//! trail shows every attempt and the rollback.

use crate::harness::{Env, assert_one_line_error};

const THREE_WRITES: &str = "put a/1 one\nput a/2 two\nput a/3 three\n";

fn reads(env: &Env) -> String {
    env.run_ok(&env.probe(), "acme", "get a/1\nget a/2\nget a/3\n")
}

fn rollback_event(env: &Env) -> serde_json::Value {
    env.events("acme")
        .into_iter()
        .find(|e| e["body"]["type"] == "rollback")
        .expect("a rollback event")
}

#[test]
fn three_writes_then_a_trap_leave_nothing() {
    let env = Env::new();
    let out = env.run(&env.probe(), "acme", &format!("{THREE_WRITES}panic\n"));
    assert_one_line_error(&out, "trapped");
    let after = reads(&env);
    assert_eq!(after.matches("err not-found").count(), 3, "{after}");
    // The attempts are on record, then the rollback with its count.
    for key in ["a/1", "a/2", "a/3"] {
        assert_eq!(env.calls("acme", "put", key).len(), 1, "{key}");
    }
    assert_eq!(rollback_event(&env)["body"]["discarded_writes"], 3);
}

#[test]
fn three_writes_then_an_agent_error_leave_nothing() {
    let env = Env::new();
    let out = env.run(
        &env.probe(),
        "acme",
        &format!("{THREE_WRITES}fail gave up\n"),
    );
    assert_one_line_error(&out, "agent probe failed: gave up");
    assert_eq!(reads(&env).matches("err not-found").count(), 3);
    let rollback = rollback_event(&env);
    assert_eq!(rollback["body"]["discarded_writes"], 3);
    assert!(
        rollback["body"]["reason"]
            .as_str()
            .unwrap()
            .contains("gave up")
    );
}

#[test]
fn three_writes_that_succeed_all_land() {
    let env = Env::new();
    env.run_ok(&env.probe(), "acme", THREE_WRITES);
    let after = reads(&env);
    for want in [
        "get a/1 -> ok one",
        "get a/2 -> ok two",
        "get a/3 -> ok three",
    ] {
        assert!(after.contains(want), "{after}");
    }
    let commit = env
        .events("acme")
        .into_iter()
        .find(|e| e["body"]["type"] == "commit")
        .unwrap();
    assert_eq!(commit["body"]["writes"], 3);
    assert!(
        env.events("acme")
            .iter()
            .all(|e| e["body"]["type"] != "rollback")
    );
}

#[test]
fn an_invocation_reads_its_own_pending_writes() {
    let env = Env::new();
    let out = env.run_ok(
        &env.probe(),
        "acme",
        "put a/1 x\nget a/1\nlist a\ndelete a/1\nget a/1\n",
    );
    assert!(out.contains("get a/1 -> ok x"), "{out}");
    assert!(out.contains("list a -> ok [a/1]"), "{out}");
    assert!(out.ends_with("get a/1 -> err not-found\n"), "{out}");
}

#[test]
fn write_events_carry_old_and_new_value_digests() {
    let env = Env::new();
    env.run_ok(&env.probe(), "acme", "put a/1 x\n");
    env.run_ok(&env.probe(), "acme", "put a/1 y\ndelete a/1\n");
    let puts = env.calls("acme", "put", "a/1");
    // sha256("x") and sha256("y").
    let x = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
    let y = "a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa";
    assert_eq!(puts[0]["body"]["value_digest"], x);
    assert!(puts[0]["body"].get("old_value_digest").is_none());
    assert_eq!(puts[1]["body"]["value_digest"], y);
    assert_eq!(puts[1]["body"]["old_value_digest"], x);
    let delete = &env.calls("acme", "delete", "a/1")[0];
    assert_eq!(delete["body"]["old_value_digest"], y);
}

#[test]
fn stored_bytes_over_the_tenants_limit_are_refused() {
    let env = Env::new();
    env.tenant_config("acme", "[limits]\nmax_stored_bytes = 2048\n");
    let out = env.run_ok(
        &env.probe(),
        "acme",
        "put-big a/1 1000\nput-big a/2 1000\nput-big a/3 1000\n",
    );
    assert!(out.contains("put-big a/2 1000 -> ok"), "{out}");
    assert!(
        out.contains("put-big a/3 1000 -> err limit-reached: tenant would hold"),
        "{out}"
    );
    // Replacing a value frees its old bytes first.
    let out = env.run_ok(&env.probe(), "acme", "put-big a/1 1000\n");
    assert!(out.contains("-> ok"), "{out}");
}

#[test]
fn a_bad_tenant_configuration_is_refused_naming_the_field_and_range() {
    let env = Env::new();
    env.tenant_config("acme", "[limits]\nmax_memory_bytes = 0\n");
    let out = env.run(&env.probe(), "acme", "get a/1\n");
    assert_one_line_error(
        &out,
        "limits.max_memory_bytes is 0; allowed range is 1048576 to 536870912",
    );
    env.tenant_config("globex", "[limits]\nmax_concurrent = -3\n");
    let out = env.run(&env.probe(), "globex", "get a/1\n");
    assert_one_line_error(
        &out,
        "limits.max_concurrent is -3; allowed range is 1 to 64",
    );
}

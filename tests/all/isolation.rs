//! Tenants share an agent and its keys but never each other's records or
//! audit trails; a refused call is an ordinary answer the agent can handle.

use crate::harness::Env;

#[test]
fn same_agent_same_keys_other_tenant_sees_nothing() {
    let env = Env::new();
    let probe = env.probe();
    let out = env.run_ok(&probe, "acme", "put a/secret acme-only\nget a/secret\n");
    assert!(out.contains("get a/secret -> ok acme-only"), "{out}");

    let out = env.run_ok(&probe, "globex", "get a/secret\nlist a\ndelete a/secret\n");
    assert!(out.contains("get a/secret -> err not-found"), "{out}");
    assert!(out.contains("list a -> ok []"), "{out}");
    assert!(out.contains("delete a/secret -> err not-found"), "{out}");

    // globex's attempt left acme's record as it was.
    let out = env.run_ok(&probe, "acme", "get a/secret\n");
    assert!(out.contains("get a/secret -> ok acme-only"), "{out}");

    // Two separate trails, each holding only its own tenant's events.
    for tenant in ["acme", "globex"] {
        let events = env.events(tenant);
        assert!(!events.is_empty());
        assert!(
            events.iter().all(|e| e["tenant"] == tenant),
            "{tenant}: {events:?}"
        );
        assert!(env.verify(tenant).status.success());
    }
    assert_ne!(env.log_dir("acme"), env.log_dir("globex"));
}

#[test]
fn read_outside_grant_is_not_permitted_handled_and_audited() {
    let env = Env::new();
    let probe = env.probe();
    // The guest gets "not permitted", reports it and carries on with the next
    // command: the refusal is an answer, not a crash.
    let out = env.run_ok(
        &probe,
        "acme",
        "get b/private\nput ro/x 1\nput a/after ok\n",
    );
    assert!(out.contains("get b/private -> err not-permitted"), "{out}");
    assert!(out.contains("put ro/x 1 -> err not-permitted: prefix \"ro\" is granted read-only"));
    assert!(out.contains("put a/after ok -> ok"), "{out}");

    let denied = env.calls("acme", "get", "b/private");
    assert_eq!(denied.len(), 1, "{denied:?}");
    let body = &denied[0]["body"];
    assert_eq!(body["decision"], "deny");
    assert_eq!(body["blame"], "guest");
    assert_eq!(body["reason"], "no granted prefix covers this key");
    assert_eq!(body["interface"], "warden:agent/records");

    let ro = env.calls("acme", "put", "ro/x");
    assert_eq!(ro.len(), 1);
    assert_eq!(ro[0]["body"]["decision"], "deny");
}

#[test]
fn prefix_grants_match_whole_segments_only() {
    let env = Env::new();
    let probe = env.probe();
    let out = env.run_ok(
        &probe,
        "acme",
        "put a-archive/x 1\nput ab 1\nlist a-archive\nput a/x 1\n",
    );
    assert!(
        out.contains("put a-archive/x 1 -> err not-permitted"),
        "{out}"
    );
    assert!(out.contains("put ab 1 -> err not-permitted"), "{out}");
    assert!(out.contains("list a-archive -> err not-permitted"), "{out}");
    assert!(out.contains("put a/x 1 -> ok"), "{out}");
}

#[test]
fn every_event_is_attributed() {
    let env = Env::new();
    let probe = env.probe();
    let out = env
        .warden()
        .arg("run")
        .arg(&probe)
        .args(["--tenant", "acme", "--input", "-", "--actor", "alice"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    env.run_ok(
        &probe,
        "acme",
        "put a/1 x\nsay hello from the guest\ndecide inv-1 approve fine\n",
    );
    let events = env.events("acme");
    for e in &events {
        for field in [
            "tenant",
            "agent",
            "component_digest",
            "grant_digest",
            "invocation",
            "actor",
        ] {
            assert!(
                e[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field} missing in {e}"
            );
        }
    }
    assert_eq!(events[0]["actor"], "alice");
    assert_eq!(events[0]["body"]["type"], "invocation-start");
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["body"]["type"].as_str())
        .collect();
    assert!(kinds.contains(&"agent-decision"), "{kinds:?}");
    assert!(events.iter().any(|e| e["body"]["type"] == "stream-line"
        && e["body"]["line"] == "hello from the guest"
        && e["body"]["stream"] == "stdout"));
    let put = &env.calls("acme", "put", "a/1")[0]["body"];
    // sha256("x")
    assert_eq!(
        put["value_digest"],
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    );
    assert_eq!(events.last().unwrap()["body"]["type"], "invocation-finish");
}

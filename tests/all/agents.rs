//! Operator approval of agents: `warden agents allow|revoke|list`, the
//! refusal of agents a tenant has not allowed (or whose grant changed), the
//! control-plane events every change leaves, and `warden grants show`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{Env, assert_one_line_error, stderr, stdout};

/// The probe guest with `grants` given as `(prefix, access)` pairs.
fn probe(env: &Env, grants: &[(&str, &str)]) -> PathBuf {
    env.manifest("probe", warden_test_programs::PROBE, grants)
}

fn allow(env: &Env, manifest: &Path, tenant: &str, actor: &str) -> String {
    let out = env.agents(&[
        "allow",
        manifest.to_str().unwrap(),
        "--tenant",
        tenant,
        "--actor",
        actor,
    ]);
    assert!(out.status.success(), "allow failed: {}", stderr(&out));
    stdout(&out)
}

/// `warden run` without the harness's approval step.
fn run_unallowed(env: &Env, manifest: &Path, tenant: &str, input: &str) -> std::process::Output {
    let path = env.dir.path().join("input.txt");
    std::fs::write(&path, input).unwrap();
    env.warden_unwrapped()
        .arg("run")
        .arg(manifest)
        .args(["--tenant", tenant, "--input"])
        .arg(&path)
        .output()
        .unwrap()
}

/// The control-plane stream's `control-change` events.
fn control_changes(env: &Env) -> Vec<Value> {
    env.audit_ok(&["show", "--control", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .filter(|e| e["body"]["type"] == "control-change")
        .collect()
}

/// Events of `tenant` that carry a refusal reason: denied host calls and
/// refused invocations.
fn refusals(env: &Env, tenant: &str) -> Vec<Value> {
    env.events(tenant)
        .into_iter()
        .filter(|e| {
            e["body"]["decision"] == "deny"
                || e["body"]["outcome"] == "refused"
                || e["body"]["type"] == "limit-hit"
        })
        .collect()
}

#[test]
fn an_agent_the_tenant_never_allowed_is_refused_and_audited_once() {
    let env = Env::new();
    let manifest = probe(&env, &[("a/", "read-write")]);
    let out = run_unallowed(&env, &manifest, "acme", "put a/1 x\n");
    assert_one_line_error(&out, "agent probe is not allowed for tenant acme");
    assert_one_line_error(&out, "warden agents allow");

    let refused = refusals(&env, "acme");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["body"]["type"], "invocation-finish");
    assert!(
        refused[0]["body"]["detail"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{refused:?}"
    );
    // Nothing ran: no host call, no write.
    assert!(
        env.events("acme")
            .iter()
            .all(|e| e["body"]["type"] != "host-call")
    );
    assert!(env.verify("acme").status.success());
}

#[test]
fn allowed_agents_run_and_other_tenants_still_refuse_them() {
    let env = Env::new();
    let manifest = probe(&env, &[("a/", "read-write")]);
    allow(&env, &manifest, "acme", "alice");
    let out = run_unallowed(&env, &manifest, "acme", "put a/1 x\nget a/1\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("get a/1 -> ok x"), "{}", stdout(&out));

    // Approval is per tenant: globex never allowed the probe.
    let out = run_unallowed(&env, &manifest, "globex", "get a/1\n");
    assert_one_line_error(&out, "agent probe is not allowed for tenant globex");
    assert_eq!(refusals(&env, "globex").len(), 1);
}

#[test]
fn a_changed_grant_is_refused_naming_both_digests() {
    let env = Env::new();
    let manifest = probe(&env, &[("a/", "read-write")]);
    let allowed = allow(&env, &manifest, "acme", "alice");
    let old = allowed.split("sha256:").nth(1).unwrap()[..64].to_owned();

    // The developer widens the grant without asking the operator.
    let manifest = probe(&env, &[("a/", "read-write"), ("b/", "read-write")]);
    let shown = env
        .warden_unwrapped()
        .args(["grants", "show"])
        .arg(&manifest)
        .output()
        .unwrap();
    let new = stdout(&shown)
        .lines()
        .find_map(|l| l.strip_prefix("grant sha256:"))
        .unwrap()
        .to_owned();
    assert_ne!(old, new);

    let out = run_unallowed(&env, &manifest, "acme", "put b/1 x\n");
    assert_one_line_error(&out, &format!("agent probe has grant sha256:{new}"));
    assert_one_line_error(&out, &format!("tenant acme allowed sha256:{old}"));
    assert_one_line_error(&out, "warden agents allow");
    let refused = refusals(&env, "acme");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["body"]["detail"]
            .as_str()
            .unwrap()
            .contains(&old)
    );

    // Approved again, it runs with the wider grant.
    allow(&env, &manifest, "acme", "alice");
    let out = run_unallowed(&env, &manifest, "acme", "put b/1 x\n");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn every_change_is_in_the_control_stream_with_actor_digests_and_words() {
    let env = Env::new();
    let v1 = probe(&env, &[("a/", "read-write")]);
    allow(&env, &v1, "acme", "alice");
    // Allowing the same grant again changes nothing and records nothing.
    let again = allow(&env, &v1, "acme", "alice");
    assert!(again.contains("nothing changed"), "{again}");
    let v2 = probe(&env, &[("a/", "read"), ("invoices/", "read-write")]);
    allow(&env, &v2, "acme", "bob");
    let out = env.agents(&["revoke", "probe", "--tenant", "acme", "--actor", "carol"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let changes = control_changes(&env);
    let summary: Vec<(&str, &str, &str)> = changes
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["body"]["action"].as_str().unwrap(),
                e["tenant"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("alice", "agents allow", "acme"),
            ("bob", "agents allow", "acme"),
            ("carol", "agents revoke", "acme"),
        ]
    );
    let (first, second, third) = (
        &changes[0]["body"],
        &changes[1]["body"],
        &changes[2]["body"],
    );
    assert!(first.get("before_grant_digest").is_none());
    assert_eq!(second["before_grant_digest"], first["after_grant_digest"]);
    assert_eq!(third["before_grant_digest"], second["after_grant_digest"]);
    assert!(third.get("after_grant_digest").is_none());
    assert_eq!(first["change"], "allowed; records: + read-write a/");
    assert_eq!(
        second["change"],
        "grant changed; records: + read a/, + read-write invoices/, - read-write a/"
    );
    assert_eq!(
        third["change"],
        "revoked; records: - read a/, - read-write invoices/"
    );
    assert!(changes.iter().all(|e| e["agent"] == "warden agents"));

    // Revoked: the next run is refused, and the list is empty.
    let out = run_unallowed(&env, &v2, "acme", "get a/1\n");
    assert_one_line_error(&out, "not allowed for tenant acme");
    let list = env.agents(&["list", "--tenant", "acme"]);
    assert!(list.status.success());
    assert_eq!(stdout(&list), "");
    assert!(env.audit(&["verify", "--control"]).status.success());
}

#[test]
fn list_shows_each_allowed_agent_with_its_digest_and_approver() {
    let env = Env::new();
    let manifest = probe(&env, &[("a/", "read-write")]);
    let allowed = allow(&env, &manifest, "acme", "alice");
    let digest = &allowed.split("sha256:").nth(1).unwrap()[..64];
    let list = stdout(&env.agents(&["list", "--tenant", "acme"]));
    assert!(
        list.starts_with(&format!("probe sha256:{digest} allowed by alice at ")),
        "{list}"
    );
    assert_eq!(stdout(&env.agents(&["list", "--tenant", "globex"])), "");
}

#[test]
fn operator_mistakes_in_agents_commands_are_one_line_and_change_nothing() {
    let env = Env::new();
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"p\"\ncomponent = \"p.wasm\"\n[[grants.records]]\nprefix = \"a/../b\"\naccess = \"read\"\n",
    )
    .unwrap();
    let good = probe(&env, &[("a/", "read")]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["allow", bad.to_str().unwrap(), "--tenant", "acme"],
            "grants.records[0].prefix",
        ),
        (
            vec!["allow", good.to_str().unwrap(), "--tenant", "Acme"],
            "tenant id \"Acme\" contains 'A'",
        ),
        (
            vec![
                "allow",
                good.to_str().unwrap(),
                "--tenant",
                "acme",
                "--actor",
                "a\nb",
            ],
            "--actor: actor",
        ),
        (
            vec!["revoke", "Probe!", "--tenant", "acme"],
            "not a valid agent name",
        ),
    ];
    for (args, want) in cases {
        let out = env.agents(&args);
        assert_one_line_error(&out, want);
        assert!(
            !env.data_dir().exists(),
            "{args:?} wrote the data directory"
        );
    }
    let out = env.agents(&["revoke", "probe", "--tenant", "acme"]);
    assert_one_line_error(
        &out,
        "agent probe is not allowed for tenant acme; nothing to revoke",
    );
    assert!(control_changes(&env).is_empty());
}

#[test]
fn grants_show_prints_the_invoice_example_in_plain_words() {
    let env = Env::new();
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/invoice-triage/agent.toml");
    let out = env
        .warden_unwrapped()
        .args(["grants", "show"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "agent invoice-triage",
        "grant sha256:",
        "read vendors/",
        "get and list keys equal to or under \"vendors/\"",
        "read-write triage/",
        "may not: no network, no config values, no files, no secrets",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    // Reviewing is not a change: nothing is written.
    assert!(!env.data_dir().exists());
}

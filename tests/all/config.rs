//! The config capability end to end: values an operator sets per tenant and
//! agent with `warden config`, read by the probe guest through
//! `warden:agent/config`, only for the keys its manifest grants.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{Env, assert_one_line_error, stderr, stdout};

/// The probe guest granted the config keys `currency` and `limit`.
fn probe(env: &Env) -> PathBuf {
    let path = env.dir.path().join("probe-config.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"probe\"\ncomponent = {:?}\n[grants]\nconfig = [\"currency\", \"limit\"]\n",
            warden_test_programs::PROBE
        ),
    )
    .unwrap();
    path
}

fn config(env: &Env, args: &[&str]) -> std::process::Output {
    env.warden_unwrapped()
        .arg("config")
        .args(args)
        .output()
        .unwrap()
}

fn set(env: &Env, tenant: &str, key: &str, value: &str) {
    let out = config(
        env,
        &[
            "set", "--tenant", tenant, "--agent", "probe", key, value, "--actor", "alice",
        ],
    );
    assert!(out.status.success(), "config set failed: {}", stderr(&out));
}

fn config_calls(env: &Env, tenant: &str) -> Vec<Value> {
    env.events(tenant)
        .into_iter()
        .filter(|e| e["body"]["interface"] == "warden:agent/config")
        .collect()
}

fn denials(env: &Env, tenant: &str) -> Vec<Value> {
    env.events(tenant)
        .into_iter()
        .filter(|e| e["body"]["decision"] == "deny")
        .collect()
}

#[test]
fn a_granted_key_reads_the_value_and_the_read_is_audited_by_digest() {
    let env = Env::new();
    set(&env, "acme", "currency", "EUR");
    let out = env.run_ok(&probe(&env), "acme", "config currency\nconfig limit\n");
    assert!(out.contains("config currency -> ok EUR"), "{out}");
    // Granted but not set: not found, not a refusal.
    assert!(out.contains("config limit -> err not-found"), "{out}");

    let calls = config_calls(&env, "acme");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0]["body"]["decision"], "allow");
    assert_eq!(calls[0]["body"]["resource"], "currency");
    assert_eq!(calls[0]["body"]["value_digest"], sha256_hex(b"EUR"));
    assert!(
        !serde_json::to_string(&env.events("acme"))
            .unwrap()
            .contains("\"EUR\""),
        "the value itself is in the audit trail"
    );
    assert!(denials(&env, "acme").is_empty());
}

#[test]
fn a_key_outside_the_grant_is_not_permitted_with_one_audit_event() {
    let env = Env::new();
    // The operator set it, but the manifest does not grant it.
    set(&env, "acme", "bank_account", "DE00 1234");
    let out = env.run_ok(&probe(&env), "acme", "config bank_account\n");
    assert!(
        out.contains("config bank_account -> err not-permitted"),
        "{out}"
    );
    assert!(!out.contains("DE00"), "{out}");
    let denied = denials(&env, "acme");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["body"]["resource"], "bank_account");
    assert_eq!(
        denied[0]["body"]["reason"],
        "config key is not granted to this agent"
    );
}

#[test]
fn one_tenants_values_never_reach_another_tenant() {
    let env = Env::new();
    set(&env, "globex", "currency", "USD");
    set(&env, "acme", "currency", "EUR");
    let out = env.run_ok(
        &probe(&env),
        "acme",
        "config currency\nconfig globex.currency\n",
    );
    assert!(out.contains("config currency -> ok EUR"), "{out}");
    // A guest cannot name a tenant: the nearest it can do is a key that
    // spells one, which no grant names.
    assert!(
        out.contains("config globex.currency -> err not-permitted"),
        "{out}"
    );
    assert_eq!(denials(&env, "acme").len(), 1);
    // globex's value is untouched and its trail has no trace of acme.
    let list = config(&env, &["list", "--tenant", "globex", "--agent", "probe"]);
    assert_eq!(stdout(&list), "currency = USD\n");
    let fresh = Env::new();
    set(&fresh, "globex", "currency", "USD");
    let out = fresh.run_ok(&probe(&fresh), "acme", "config currency\n");
    assert!(out.contains("config currency -> err not-found"), "{out}");
}

#[test]
fn limits_are_refused_for_the_guest_and_the_operator() {
    let env = Env::new();
    let out = env.run_ok(&probe(&env), "acme", "config-long 65\n");
    assert!(
        out.contains("config-long 65 -> err limit-reached: config key is 65 bytes"),
        "{out}"
    );
    let denied = denials(&env, "acme");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0]["body"]["reason"]
            .as_str()
            .unwrap()
            .contains("over the maximum of 64")
    );

    let big = "x".repeat(4097);
    let out = config(
        &env,
        &["set", "--tenant", "acme", "--agent", "probe", "k", &big],
    );
    assert_one_line_error(&out, "value is 4097 bytes, over the maximum of 4096");
    let long = "k".repeat(65);
    let out = config(
        &env,
        &["set", "--tenant", "acme", "--agent", "probe", &long, "v"],
    );
    assert_one_line_error(&out, "config key is 65 bytes, over the maximum of 64");
    let out = config(
        &env,
        &[
            "set",
            "--tenant",
            "acme",
            "--agent",
            "probe",
            "k",
            "a\u{1b}[2Kb",
        ],
    );
    assert_one_line_error(&out, "control or invisible character");
    for i in 0..64 {
        set(&env, "acme", &format!("k{i}"), "v");
    }
    let out = config(
        &env,
        &["set", "--tenant", "acme", "--agent", "probe", "k64", "v"],
    );
    assert_one_line_error(&out, "already has 64 config values, the maximum");
}

#[test]
fn a_tenant_holds_values_for_at_most_256_agents() {
    let env = Env::new();
    let control = warden_runtime::ControlPlane::new(env.data_dir());
    let acme = warden_runtime::TenantId::new("acme").unwrap();
    for i in 0..256 {
        control
            .set_config(&acme, &format!("agent{i}"), "k", "v", "test")
            .unwrap();
    }
    drop(control);
    let out = config(
        &env,
        &["set", "--tenant", "acme", "--agent", "one-more", "k", "v"],
    );
    assert_one_line_error(
        &out,
        "tenant acme already has config values for 256 agents, the maximum; list them with \
         `warden config list --tenant acme`",
    );
    // Without --agent, the list names every agent holding values.
    let out = config(&env, &["list", "--tenant", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&out);
    assert_eq!(listed.lines().count(), 256, "{listed}");
    assert!(listed.contains("agent7: k = v\n"), "{listed}");
    // An agent that already holds values may still change them, and another
    // tenant is not affected.
    let out = config(
        &env,
        &["set", "--tenant", "acme", "--agent", "agent7", "k2", "v"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = config(
        &env,
        &["set", "--tenant", "globex", "--agent", "one-more", "k", "v"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Unsetting one agent's last value frees a place.
    let out = config(
        &env,
        &["unset", "--tenant", "acme", "--agent", "agent0", "k"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = config(
        &env,
        &["set", "--tenant", "acme", "--agent", "one-more", "k", "v"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn config_changes_are_in_the_control_stream_with_actor_and_digests() {
    let env = Env::new();
    let manifest = probe(&env);
    let out = env.agents(&["allow", manifest.to_str().unwrap(), "--tenant", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));
    set(&env, "acme", "currency", "EUR");
    set(&env, "acme", "currency", "EUR");
    set(&env, "acme", "currency", "CHF");
    let out = config(
        &env,
        &[
            "unset", "--tenant", "acme", "--agent", "probe", "currency", "--actor", "bob",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = config(
        &env,
        &["unset", "--tenant", "acme", "--agent", "probe", "currency"],
    );
    assert_one_line_error(&out, "config key currency is not set for agent probe");

    let changes: Vec<Value> = env
        .audit_ok(&["show", "--control", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .filter(|e| e["agent"] == "warden config")
        .collect();
    let eur = sha256_hex(b"EUR");
    let chf = sha256_hex(b"CHF");
    let words: Vec<(&str, &str, String)> = changes
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["body"]["action"].as_str().unwrap(),
                e["body"]["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        words,
        [
            (
                "alice",
                "config set",
                format!("config: + currency = sha256:{eur}")
            ),
            (
                "alice",
                "config set",
                format!("config: currency = sha256:{chf} (was sha256:{eur})")
            ),
            (
                "bob",
                "config unset",
                format!("config: - currency (was sha256:{chf})")
            ),
        ]
    );
    // The event names the approval the value is for.
    let allowed = env
        .agents(&["list", "--tenant", "acme"])
        .stdout
        .split(|&b| b == b' ')
        .nth(1)
        .map(|d| {
            String::from_utf8_lossy(d)
                .trim_start_matches("sha256:")
                .to_owned()
        })
        .unwrap();
    assert!(
        changes
            .iter()
            .all(|e| e["body"]["before_grant_digest"] == allowed.as_str()
                && e["body"]["after_grant_digest"] == allowed.as_str())
    );
    let text = env.audit_ok(&["show", "--control"]);
    assert!(!text.contains("EUR") && !text.contains("CHF"), "{text}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

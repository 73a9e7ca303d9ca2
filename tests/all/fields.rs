//! Field-level minimisation end to end: a read grant naming fields hands
//! the guest only those fields of a JSON record, and the audit event names
//! the fields withheld.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::Env;

/// A probe with read-write on `inv/`, to store the documents.
fn writer(env: &Env) -> PathBuf {
    env.manifest(
        "writer",
        warden_test_programs::PROBE,
        &[("inv/", "read-write")],
    )
}

/// A probe that sees only `vendor`, `amount` and `currency` under `inv/`.
fn reader(env: &Env) -> PathBuf {
    let path = env.dir.path().join("reader.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"reader\"\ncomponent = {:?}\n[[grants.records]]\nprefix = \"inv/\"\n\
             access = \"read\"\nfields = [\"vendor\", \"amount\", \"currency\"]\n",
            warden_test_programs::PROBE
        ),
    )
    .unwrap();
    path
}

const INVOICE: &str = r#"{"vendor":"ACME-001","amount":"120.00","currency":"EUR","iban":"DE89370400440532013000","card_number":"4111111111111111"}"#;

fn reader_gets(env: &Env, tenant: &str) -> Vec<Value> {
    env.events(tenant)
        .into_iter()
        .filter(|e| e["agent"] == "reader" && e["body"]["function"] == "get")
        .collect()
}

#[test]
fn the_guest_sees_only_granted_fields_and_the_event_names_the_rest() {
    let env = Env::new();
    env.run_ok(&writer(&env), "acme", &format!("put inv/1 {INVOICE}\n"));
    let out = env.run_ok(&reader(&env), "acme", "get inv/1\n");
    let shown: Value = serde_json::from_str(
        out.trim()
            .strip_prefix("get inv/1 -> ok ")
            .unwrap_or_else(|| panic!("{out}")),
    )
    .unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"vendor": "ACME-001", "amount": "120.00", "currency": "EUR"})
    );
    // The output is all the guest saw: the hidden values never reached it.
    assert!(!out.contains("DE89") && !out.contains("4111"), "{out}");

    let gets = reader_gets(&env, "acme");
    assert_eq!(gets.len(), 1, "{gets:?}");
    let reason = gets[0]["body"]["reason"].as_str().unwrap();
    assert!(
        reason.ends_with("fields withheld: card_number, iban"),
        "{reason}"
    );
    // The digest is of what the guest received, and no value is recorded.
    let sent = out.trim().strip_prefix("get inv/1 -> ok ").unwrap();
    assert_eq!(gets[0]["body"]["value_digest"], sha256_hex(sent.as_bytes()));
    let trail = serde_json::to_string(&env.events("acme")).unwrap();
    assert!(!trail.contains("DE89") && !trail.contains("4111"));
}

#[test]
fn a_value_that_is_not_a_json_object_is_refused_once_and_audited() {
    let env = Env::new();
    env.run_ok(
        &writer(&env),
        "acme",
        "put inv/2 IBAN DE89370400440532013000\nput inv/3 [1,2]\n",
    );
    let out = env.run_ok(&reader(&env), "acme", "get inv/2\nget inv/3\n");
    assert!(
        out.contains("get inv/2 -> err not-permitted: value is not JSON"),
        "{out}"
    );
    assert!(
        out.contains("get inv/3 -> err not-permitted: value is not a JSON object"),
        "{out}"
    );
    assert!(!out.contains("DE89"), "{out}");
    let gets = reader_gets(&env, "acme");
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert!(gets.iter().all(|e| e["body"]["decision"] == "deny"));
}

#[test]
fn a_field_grant_is_read_only_and_lists_show_names_only() {
    let env = Env::new();
    env.run_ok(&writer(&env), "acme", &format!("put inv/1 {INVOICE}\n"));
    let out = env.run_ok(
        &reader(&env),
        "acme",
        "put inv/1 {}\ndelete inv/1\nlist inv\n",
    );
    assert!(out.contains("put inv/1 {} -> err not-permitted"), "{out}");
    assert!(out.contains("delete inv/1 -> err not-permitted"), "{out}");
    assert!(out.contains("list inv -> ok [inv/1]"), "{out}");
    // The document is whole: the refused put destroyed nothing.
    let out = env.run_ok(&writer(&env), "acme", "get inv/1\n");
    assert!(out.contains("DE89370400440532013000"), "{out}");
}

#[test]
fn the_projection_never_shows_another_tenants_record() {
    let env = Env::new();
    env.run_ok(&writer(&env), "globex", &format!("put inv/1 {INVOICE}\n"));
    let out = env.run_ok(&reader(&env), "acme", "get inv/1\n");
    assert!(out.contains("get inv/1 -> err not-found"), "{out}");
    let out = env.run_ok(&writer(&env), "globex", "get inv/1\n");
    assert!(out.contains("DE89370400440532013000"), "{out}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

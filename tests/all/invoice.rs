//! The invoice-triage example end to end, with the manifests it ships.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{Env, assert_one_line_error, stdout};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn data(file: &str) -> PathBuf {
    example("invoice-triage/data").join(file)
}

/// The example's own manifest, pointed at the component the test build made.
fn shipped_manifest(env: &Env, agent: &str, component: &str) -> PathBuf {
    let text = std::fs::read_to_string(example(agent).join("agent.toml")).unwrap();
    let built = format!("component = {component:?}");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("component = ") {
                built.as_str()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = env.dir.path().join(format!("{agent}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn triage(env: &Env, manifest: &Path, tenant: &str, file: &str) -> Value {
    let out = env
        .warden()
        .arg("run")
        .arg(manifest)
        .args(["--tenant", tenant, "--input"])
        .arg(data(file))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{file}: {}",
        crate::harness::stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{file}: {e}: {}", stdout(&out)))
}

fn setup() -> (Env, PathBuf) {
    let env = Env::new();
    let sync = shipped_manifest(&env, "vendor-sync", warden_test_programs::VENDOR_SYNC);
    let triage = shipped_manifest(&env, "invoice-triage", warden_test_programs::INVOICE_TRIAGE);
    let out = env
        .warden()
        .arg("run")
        .arg(&sync)
        .args(["--tenant", "acme", "--input"])
        .arg(data("vendors.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    (env, triage)
}

#[test]
fn a_clean_invoice_is_approved_and_the_decision_audited() {
    let (env, manifest) = setup();
    let result = triage(&env, &manifest, "acme", "inv-1001.json");
    assert_eq!(result["invoice_id"], "INV-1001");
    assert_eq!(result["decision"], "approve", "{result}");

    let decisions: Vec<Value> = env
        .events("acme")
        .into_iter()
        .filter(|e| e["body"]["type"] == "agent-decision")
        .filter(|e| e["agent"] == "invoice-triage")
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0]["body"]["outcome"], "approve");
    assert!(
        decisions[0]["body"]["subject"]
            .as_str()
            .unwrap()
            .contains("INV-1001")
    );
    assert!(env.verify("acme").status.success());
}

#[test]
fn a_repeated_invoice_is_held_as_a_duplicate() {
    let (env, manifest) = setup();
    assert_eq!(
        triage(&env, &manifest, "acme", "inv-1004.json")["decision"],
        "approve"
    );
    let again = triage(&env, &manifest, "acme", "inv-1004_resent.json");
    assert_eq!(again["decision"], "hold", "{again}");
    assert!(
        again["reason"].as_str().unwrap().contains("duplicate"),
        "{again}"
    );
}

#[test]
fn another_tenant_does_not_see_acmes_vendors() {
    let (env, manifest) = setup();
    // globex never loaded vendors: the same invoice finds no vendor there.
    let result = triage(&env, &manifest, "globex", "inv-1001.json");
    assert_eq!(result["decision"], "reject", "{result}");
    assert!(
        result["reason"]
            .as_str()
            .unwrap()
            .contains("unknown vendor"),
        "{result}"
    );
}

#[test]
fn a_malformed_invoice_gets_the_agents_own_error() {
    let (env, manifest) = setup();
    let out = env
        .warden()
        .arg("run")
        .arg(&manifest)
        .args(["--tenant", "acme", "--input"])
        .arg(data("malformed.json"))
        .output()
        .unwrap();
    assert_one_line_error(&out, "agent invoice-triage rejected the input");
    assert_eq!(
        env.events("acme").last().unwrap()["body"]["outcome"],
        "invalid-input"
    );
}

#[test]
fn triage_cannot_write_vendor_records() {
    // The shipped grant gives invoice-triage read-only vendors/: least
    // privilege is in the manifest, not in the agent's good behaviour.
    let text = std::fs::read_to_string(example("invoice-triage/agent.toml")).unwrap();
    let manifest: toml::Value = toml::from_str(&text).unwrap();
    let grants = manifest["grants"]["records"].as_array().unwrap();
    let vendors = grants
        .iter()
        .find(|g| g["prefix"].as_str() == Some("vendors/"))
        .unwrap();
    assert_eq!(vendors["access"].as_str(), Some("read"));
}

#[test]
fn triage_never_sees_the_vendors_bank_account_and_the_trail_says_so() {
    let (env, manifest) = setup();
    let result = triage(&env, &manifest, "acme", "inv-1001.json");
    assert_eq!(result["decision"], "approve", "{result}");
    // The shipped grant shows invoice-triage five vendor fields; the IBAN
    // vendor-sync stored stays on the host.
    let gets: Vec<Value> = env
        .calls("acme", "get", "vendors/ACME-001")
        .into_iter()
        .filter(|e| e["agent"] == "invoice-triage")
        .collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    let reason = gets[0]["body"]["reason"].as_str().unwrap();
    assert!(
        reason.ends_with("fields withheld: country, iban"),
        "{reason}"
    );
    assert!(!result.to_string().contains("DE89"), "{result}");

    let shown = env
        .warden()
        .args(["grants", "show"])
        .arg(&manifest)
        .output()
        .unwrap();
    let text = stdout(&shown);
    assert!(
        text.contains("read vendors/ (fields approval_limit, currency, id, name, status)"),
        "{text}"
    );
}

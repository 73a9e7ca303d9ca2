//! End-to-end tests: the real `warden` binary running real components built
//! from `guest-sdk` by `warden-test-programs`.

mod agents;
mod audit_cli;
mod bad_input;
mod config;
mod contain;
mod crash;
mod daemon;
mod daemon_approvals;
mod daemon_authz;
mod daemon_client;
mod egress;
mod fields;
mod files;
mod harness;
mod invoice;
mod isolation;
mod limits;
mod regression;
mod rollback;
mod secrets;
mod tamper;
mod tls;

/// Every guest under `tests/guests/` must be used by a host test or a
/// benchmark: a guest nobody runs is a scenario nobody checks.
#[test]
fn every_test_guest_has_a_host_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = String::new();
    for dir in ["tests/all", "runtime/benches"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            sources += &std::fs::read_to_string(entry.unwrap().path()).unwrap();
        }
    }
    for entry in std::fs::read_dir(root.join("tests/guests")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let constant = name.to_uppercase().replace('-', "_");
        assert!(
            sources.contains(&format!("warden_test_programs::{constant}")),
            "guest tests/guests/{name} has no host test using warden_test_programs::{constant}"
        );
    }
}

//! Operator mistakes: one line naming the thing and the fix, a non-zero
//! exit, and nothing written to the data directory.

use std::path::Path;

use crate::harness::{Env, assert_one_line_error};

/// Runs `manifest` for `tenant` on `input` and expects a clean refusal that
/// mentions `want` and leaves no data directory behind.
fn refused(env: &Env, manifest: &Path, tenant: &str, input: &Path, want: &str) {
    // Unwrapped: the harness's allow step would write the data directory
    // before the run under test could refuse.
    let out = env
        .warden_unwrapped()
        .arg("run")
        .arg(manifest)
        .arg(format!("--tenant={tenant}"))
        .arg("--input")
        .arg(input)
        .output()
        .unwrap();
    assert_one_line_error(&out, want);
    assert!(
        !env.data_dir().exists(),
        "{want}: the refusal wrote to the data directory"
    );
}

fn input(env: &Env) -> std::path::PathBuf {
    let path = env.dir.path().join("in.txt");
    std::fs::write(&path, "get a/x\n").unwrap();
    path
}

#[test]
fn manifest_errors_name_the_field() {
    let env = Env::new();
    let input = input(&env);
    let cases = [
        ("name = \"p\"\n", "missing field `component`"),
        ("component = \"x.wasm\"\n", "missing field `name`"),
        (
            "name = \"p\"\ncomponent = \"x.wasm\"\nnetwork = true\n",
            "unknown field `network`",
        ),
        (
            "name = \"p\"\ncomponent = \"x.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"all\"\n",
            "unknown variant `all`",
        ),
        (
            "name = \"p\"\ncomponent = \"x.wasm\"\n[[grants.records]]\nprefix = \"../a\"\naccess = \"read\"\n",
            "grants.records[0].prefix",
        ),
        (
            "name = \"p\"\ncomponent = \"missing.wasm\"\n",
            "cannot read component",
        ),
    ];
    for (text, want) in cases {
        let manifest = env.dir.path().join("agent.toml");
        std::fs::write(&manifest, text).unwrap();
        refused(&env, &manifest, "acme", &input, want);
    }
}

#[test]
fn missing_manifest_is_named() {
    let env = Env::new();
    let input = input(&env);
    refused(
        &env,
        &env.dir.path().join("nope.toml"),
        "acme",
        &input,
        "cannot read manifest",
    );
}

#[test]
fn files_that_are_not_components_are_named() {
    let env = Env::new();
    let input = input(&env);
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "is a core WebAssembly module, not a component",
        ),
        (
            "text.wasm",
            b"hello, I am not wasm",
            "is not a WebAssembly file",
        ),
        ("empty.wasm", b"", "is not a WebAssembly file"),
        // A component preamble with nothing after it.
        (
            "broken.wasm",
            b"\0asm\x0d\0\x01\0\x01\x02",
            "does not compile",
        ),
    ];
    for (file, bytes, want) in cases {
        std::fs::write(env.dir.path().join(file), bytes).unwrap();
        let manifest = env.manifest("p", file, &[]);
        refused(&env, &manifest, "acme", &input, want);
    }
}

#[test]
fn bad_tenant_ids_are_refused() {
    let env = Env::new();
    let input = input(&env);
    let probe = env.probe();
    for (tenant, want) in [
        ("", "tenant id is empty"),
        ("../etc", "contains '.'"),
        ("acme/x", "contains '/'"),
        ("Acme", "contains 'A'"),
        ("-acme", "must start with a letter or digit"),
    ] {
        refused(&env, &probe, tenant, &input, want);
    }
}

#[test]
fn input_problems_are_named() {
    let env = Env::new();
    let probe = env.probe();
    refused(
        &env,
        &probe,
        "acme",
        &env.dir.path().join("absent.txt"),
        "cannot read input file",
    );
    let huge = env.dir.path().join("huge.txt");
    std::fs::write(&huge, vec![b'x'; 64 * 1024 * 1024 + 1]).unwrap();
    refused(
        &env,
        &probe,
        "acme",
        &huge,
        "input is 67108865 bytes, over the maximum of 67108864",
    );
}

#[test]
fn input_over_the_tenants_maximum_is_refused_before_instantiation_and_audited() {
    let env = Env::new();
    let big = env.dir.path().join("big.txt");
    std::fs::write(&big, vec![b'x'; 1024 * 1024 + 1]).unwrap();
    let out = env
        .warden()
        .arg("run")
        .arg(env.probe())
        .args(["--tenant", "acme", "--input"])
        .arg(&big)
        .output()
        .unwrap();
    assert_one_line_error(&out, "input is 1048577 bytes, over the maximum of 1048576");
    // The refusal is evidence, so it is in the audit trail; no record state
    // was touched (the state database exists: it holds the approval).
    let events = env.events("acme");
    assert!(events.iter().all(|e| e["body"]["type"] != "commit"));
    let hit = events
        .iter()
        .find(|e| e["body"]["type"] == "limit-hit")
        .unwrap();
    assert_eq!(hit["body"]["limit"], "max_input_bytes");
    assert_eq!(events.last().unwrap()["body"]["outcome"], "refused");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let env = Env::new();
    let input = input(&env);
    // A WASI command (it exports wasi:cli/run, not warden:agent/handler).
    let manifest = env.manifest("cmd", warden_test_programs::NOT_AN_AGENT, &[]);
    refused(
        &env,
        &manifest,
        "acme",
        &input,
        "does not fit the warden:agent/agent world",
    );
}

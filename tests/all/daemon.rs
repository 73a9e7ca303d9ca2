//! `warden serve` end to end: the invoice agent deployed, invoked and
//! audited over HTTP, bad input refused without a trace of half-done work,
//! and a graceful shutdown that lets a run finish and signs checkpoints.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};

use crate::daemon_client::{Daemon, deploy_body, manifest, read, sha256_hex};

fn example(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path)
}

/// Control-plane events for `operation`, read over the API.
fn control_events(d: &Daemon, operation: &str) -> Vec<Value> {
    let a = d.get(
        "/v1/audit/_control/events?type=control-request&limit=10000",
        Some(&d.admin),
    );
    assert_eq!(a.status, 200, "{a:?}");
    a.body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .filter(|e| e["body"]["operation"] == operation)
        .collect()
}

#[test]
fn the_invoice_agent_is_deployed_invoked_and_audited_over_http() {
    let d = Daemon::start("");
    d.create_tenant("acme");
    let admin = d.token("ada", "tenant-admin", Some("acme"));
    let invoker = d.token("ivan", "invoker", Some("acme"));
    let auditor = d.token("aude", "auditor", Some("acme"));

    let sync = d.deploy(
        &admin,
        "acme",
        &read(&example("vendor-sync/agent.toml")),
        warden_test_programs::VENDOR_SYNC,
    );
    assert_eq!(sync.status, 201, "{sync:?}");
    let triage = d.deploy(
        &admin,
        "acme",
        &read(&example("invoice-triage/agent.toml")),
        warden_test_programs::INVOICE_TRIAGE,
    );
    assert_eq!(triage.status, 201, "{triage:?}");
    let component = std::fs::read(warden_test_programs::INVOICE_TRIAGE).unwrap();
    assert_eq!(triage.body["component_sha256"], sha256_hex(&component));
    let grant = &triage.body["grant"]["prefixes"];
    assert!(
        grant.as_array().is_some_and(|g| !g.is_empty()),
        "the effective grant is shown: {}",
        triage.body
    );
    let listed = d.get("/v1/tenants/acme/agents", Some(&invoker));
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body.as_array().unwrap().len(), 2);

    // Load the vendors synchronously, then triage an invoice as a run.
    let vendors: Value =
        serde_json::from_str(&read(&example("invoice-triage/data/vendors.json"))).unwrap();
    let loaded = d.post(
        "/v1/tenants/acme/agents/vendor-sync/invoke",
        Some(&invoker),
        &json!({ "input": vendors }),
    );
    assert_eq!(loaded.status, 200, "{loaded:?}");
    assert_eq!(loaded.body["status"], "succeeded", "{loaded:?}");

    let invoice: Value =
        serde_json::from_str(&read(&example("invoice-triage/data/inv-1001.json"))).unwrap();
    let started = d.post(
        "/v1/tenants/acme/agents/invoice-triage/invoke",
        Some(&invoker),
        &json!({ "input": invoice, "async": true }),
    );
    assert_eq!(started.status, 202, "{started:?}");
    let run_id = started.body["id"].as_str().unwrap().to_owned();
    let run = poll(&d, &invoker, "acme", &run_id);
    assert_eq!(run["status"], "succeeded", "{run}");
    let output: Value = serde_json::from_str(run["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["decision"], "approve", "{output}");

    // The run's events are its own invocation's, start to finish.
    let events = run["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .all(|e| e["event"]["invocation"] == run_id.as_str())
    );
    assert_eq!(
        events.first().unwrap()["event"]["body"]["type"],
        "invocation-start"
    );
    assert_eq!(
        events.last().unwrap()["event"]["body"]["type"],
        "invocation-finish"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"]["actor"] == "ivan" && e["event"]["body"]["type"] == "host-call"),
        "host calls are attributed to the invoker"
    );

    // The auditor reads, filters, verifies, proves and exports.
    let decisions = d.get("/v1/audit/acme/events?type=agent-decision", Some(&auditor));
    assert_eq!(decisions.status, 200, "{decisions:?}");
    assert!(!decisions.body.as_array().unwrap().is_empty());
    let verified = d.post("/v1/audit/acme/verify", Some(&auditor), &json!({}));
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["ok"], true, "{verified:?}");
    let checkpoint = d.post("/v1/audit/acme/checkpoint", Some(&auditor), &json!({}));
    assert_eq!(checkpoint.status, 200, "{checkpoint:?}");
    let proof = d.get("/v1/audit/acme/proof?event=1", Some(&auditor));
    assert_eq!(proof.status, 200, "{proof:?}");
    let export = d.post(
        "/v1/audit/acme/export",
        Some(&auditor),
        &json!({ "since": "1h" }),
    );
    assert_eq!(export.status, 200, "{export:?}");
    let dir = d.env.dir.path().join("excerpt");
    std::fs::create_dir(&dir).unwrap();
    for (field, file) in [
        ("events_jsonl", "events.jsonl"),
        ("proofs_jsonl", "proofs.jsonl"),
        ("checkpoint_json", "checkpoint.json"),
    ] {
        std::fs::write(dir.join(file), export.body[field].as_str().unwrap()).unwrap();
    }

    // Every state change and audit read left a control-plane event naming
    // the actor, role, tenant and outcome.
    let deploys = control_events(&d, "agents.deploy");
    assert_eq!(deploys.len(), 2);
    for e in &deploys {
        assert_eq!(e["actor"], "ada");
        assert_eq!(e["tenant"], "acme");
        assert_eq!(e["body"]["role"], "tenant-admin");
        assert_eq!(e["body"]["outcome"], "ok");
        assert_eq!(e["body"]["status"], 201);
    }
    assert!(
        deploys
            .iter()
            .any(|e| e["body"]["resource"] == "invoice-triage")
    );
    let reads = control_events(&d, "audit.export");
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0]["actor"], "aude");
    assert_eq!(reads[0]["body"]["role"], "auditor");

    // Metrics count the invocations, per tenant.
    // They name every tenant: a token of the platform admin or of an
    // auditor of all tenants is needed.
    let metrics = d.send("GET", "/metrics", None, Vec::new());
    assert_eq!(metrics.status, 401);
    let metrics = d.send("GET", "/metrics", Some(&d.admin), Vec::new());
    assert_eq!(metrics.status, 200);
    let health = d.get("/healthz", None);
    assert_eq!(health.body["status"], "ok");

    // After a graceful stop the CLI verifies both logs and the export.
    let mut d = d;
    assert!(d.stop().success());
    let out = d.env.verify("acme");
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    let key = d.env.save("warden.pub", &["public-key"]);
    let out = d.env.audit(&[
        "verify-export",
        dir.to_str().unwrap(),
        "--public-key",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    d.env.audit_ok(&["verify", "--control"]);
}

/// Polls run `id` until it finishes.
fn poll(d: &Daemon, token: &str, tenant: &str, id: &str) -> Value {
    for _ in 0..600 {
        let a = d.get(&format!("/v1/tenants/{tenant}/runs/{id}"), Some(token));
        assert_eq!(a.status, 200, "{a:?}");
        if a.body["status"] != "running" {
            return a.body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("run {id} did not finish");
}

/// Asserts a JSON error answer with `status` whose message mentions `want`.
fn assert_error(a: &crate::daemon_client::Answer, status: u16, want: &str) {
    assert_eq!(a.status, status, "{a:?}");
    let message = a.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error: {a:?}"));
    assert!(
        message.contains(want),
        "{message:?} does not mention {want:?}"
    );
    assert!(!message.contains('\n'), "{message:?}");
}

#[test]
fn bad_input_gets_a_json_error_and_leaves_nothing_half_created() {
    let d = Daemon::start("max_body_bytes = 1048576\n");
    d.create_tenant("acme");
    let admin = d.admin.clone();
    let agents = |tenant: &str| d.env.data_dir().join("agents").join(tenant);

    // Malformed JSON, an unknown field, an oversized body.
    let a = d.send("POST", "/v1/tenants", Some(&admin), b"{\"id\": ".to_vec());
    assert_error(&a, 400, "not valid JSON");
    let a = d.post(
        "/v1/tenants",
        Some(&admin),
        &json!({ "id": "x", "colour": 1 }),
    );
    assert_error(&a, 400, "unknown field `colour`");
    let a = d.send(
        "POST",
        "/v1/tenants/acme/agents",
        Some(&admin),
        vec![b'x'; 1_200_000],
    );
    assert_error(&a, 413, "max_body_bytes");

    // A tenant config with a bad limit, a bad tenant id, a duplicate.
    let a = d.post(
        "/v1/tenants",
        Some(&admin),
        &json!({ "id": "globex", "config": "[limits]\nmax_concurrent = 0\n" }),
    );
    assert_error(&a, 422, "max_concurrent");
    assert!(!d.env.data_dir().join("tenants/globex.toml").exists());
    let a = d.post("/v1/tenants", Some(&admin), &json!({ "id": "Big/Name" }));
    assert_error(&a, 422, "tenant id");
    let a = d.post("/v1/tenants", Some(&admin), &json!({ "id": "acme" }));
    assert_error(&a, 409, "exists already");

    // Components that are not components, a digest that does not match,
    // manifests with errors.
    let sleep = std::fs::read(warden_test_programs::SLEEP).unwrap();
    let cases: [(Value, u16, &str); 6] = [
        (
            deploy_body(&manifest("junk"), b"not wasm at all"),
            422,
            "not a WebAssembly file",
        ),
        (
            deploy_body(&manifest("core"), b"\0asm\x01\0\0\0"),
            422,
            "core WebAssembly module",
        ),
        (
            json!({ "manifest": manifest("sleep"), "component_base64": "AAAA", "sha256": sha256_hex(&sleep) }),
            422,
            "does not match",
        ),
        (
            deploy_body("name = \"sleep\"\ncomponent = \"x\"\ncolour = 1\n", &sleep),
            422,
            "unknown field `colour`",
        ),
        (
            deploy_body(
                "name = \"sleep\"\ncomponent = \"x\"\n[[grants.records]]\nprefix = \"a/../b\"\naccess = \"read\"\n",
                &sleep,
            ),
            422,
            "grants.records[0].prefix",
        ),
        // Found by review: the error named a line of the rewritten manifest,
        // not of the one sent.
        (
            deploy_body(
                "name = \"sleep\"\ncomponent = \"x\"\n\n\n[grants]\nfiles = 5\n",
                &sleep,
            ),
            422,
            "line 6",
        ),
    ];
    for (body, status, want) in cases {
        let a = d.post("/v1/tenants/acme/agents", Some(&admin), &body);
        assert_error(&a, status, want);
        assert!(
            !a.body["error"].as_str().unwrap().contains(".staging"),
            "host paths leak: {a:?}"
        );
    }
    assert!(
        !agents("acme").exists() || std::fs::read_dir(agents("acme")).unwrap().next().is_none(),
        "a refused deployment left files behind"
    );
    let staging = d.env.data_dir().join("agents/.staging");
    assert!(
        !staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none(),
        "staging not cleaned"
    );

    // Unknown tenant, agent and run.
    let a = d.deploy(
        &admin,
        "nope",
        &manifest("sleep"),
        warden_test_programs::SLEEP,
    );
    assert_error(&a, 404, "no tenant nope");
    let a = d.post(
        "/v1/tenants/acme/agents/ghost/invoke",
        Some(&admin),
        &json!({ "input": "" }),
    );
    assert_error(&a, 404, "no agent ghost");
    let a = d.get("/v1/tenants/acme/runs/r-1", Some(&admin));
    assert_error(&a, 404, "no run r-1");
    let a = d.get("/v1/nothing", Some(&admin));
    assert_error(&a, 404, "no such endpoint");

    // No token, a forged one, a revoked one, an expired one.
    let a = d.get("/v1/tenants", None);
    assert_error(&a, 401, "no bearer token");
    let a = d.get("/v1/tenants", Some("wdn_0000_1111"));
    assert_error(&a, 401, "not valid");
    let revoked = d.token("rex", "invoker", Some("acme"));
    let id = revoked.split('_').nth(1).unwrap().to_owned();
    assert_eq!(
        d.delete(&format!("/v1/tokens/{id}"), Some(&admin)).status,
        200
    );
    let a = d.get("/v1/tenants", Some(&revoked));
    assert_error(&a, 401, "revoked");
    let a = d.post(
        "/v1/tokens",
        Some(&admin),
        &json!({ "actor": "old", "role": "invoker", "tenant": "acme", "expires": "1ms" }),
    );
    assert_eq!(a.status, 201);
    std::thread::sleep(Duration::from_millis(20));
    let a = d.get("/v1/tenants", Some(a.body["token"].as_str().unwrap()));
    assert_error(&a, 401, "expired");
    let refused = control_events(&d, "authenticate");
    assert_eq!(
        refused.len(),
        2,
        "one event per refused known token: {refused:?}"
    );
    assert!(refused.iter().any(|e| e["actor"] == "rex"));

    // After all of it the daemon still serves a good deployment.
    let a = d.deploy(
        &admin,
        "acme",
        &manifest("sleep"),
        warden_test_programs::SLEEP,
    );
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(d.get("/readyz", None).status, 200);
}

#[test]
fn shutdown_lets_a_running_run_finish_and_signs_final_checkpoints() {
    let mut d = Daemon::start("shutdown_deadline = \"20s\"\n");
    d.create_tenant("acme");
    let admin = d.admin.clone();
    let a = d.deploy(
        &admin,
        "acme",
        &manifest("pause"),
        warden_test_programs::PAUSE,
    );
    assert_eq!(a.status, 201, "{a:?}");
    let started = d.post(
        "/v1/tenants/acme/agents/pause/invoke",
        Some(&admin),
        &json!({ "input": "1500", "async": true }),
    );
    assert_eq!(started.status, 202, "{started:?}");
    let run = started.body["id"].as_str().unwrap().to_owned();

    std::thread::sleep(Duration::from_millis(200));
    let status = d.stop();
    assert!(status.success(), "{status:?}");

    // The run finished before the process left, and the final checkpoint
    // covers every event of both streams.
    let events = d.env.events("acme");
    let finish = events
        .iter()
        .find(|e| e["invocation"] == run.as_str() && e["body"]["type"] == "invocation-finish")
        .expect("the run was cut off by the shutdown");
    assert_eq!(finish["body"]["outcome"], "ok", "{finish}");
    let out = d.env.verify("acme");
    let text = crate::harness::stdout(&out);
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    let events = text
        .split(" events")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .unwrap()
        .to_owned();
    assert!(
        text.contains(&format!("latest covers {events} events")),
        "no final checkpoint: {text}"
    );
}

#[test]
fn metrics_count_invocations_denials_and_limit_hits_per_tenant() {
    let d = Daemon::start("");
    d.create_tenant("acme");
    let admin = d.admin.clone();
    let a = d.deploy(
        &admin,
        "acme",
        &manifest("pause"),
        warden_test_programs::PAUSE,
    );
    assert_eq!(a.status, 201, "{a:?}");
    let ok = d.post(
        "/v1/tenants/acme/agents/pause/invoke",
        Some(&admin),
        &json!({ "input": "1" }),
    );
    assert_eq!(ok.body["status"], "succeeded", "{ok:?}");
    let bad = d.post(
        "/v1/tenants/acme/agents/pause/invoke",
        Some(&admin),
        &json!({ "input": "soon" }),
    );
    assert_eq!(bad.body["status"], "failed", "{bad:?}");
    let big = d.post(
        "/v1/tenants/acme/agents/pause/invoke",
        Some(&admin),
        &json!({ "input": "1".repeat(2 * 1024 * 1024) }),
    );
    assert_eq!(big.status, 413, "{big:?}");
    let invoker = d.token("ivy", "invoker", Some("acme"));
    assert_eq!(d.get("/v1/tokens", Some(&invoker)).status, 403);

    let text = d.send_text("/metrics");
    for want in [
        "warden_invocations_total{tenant=\"acme\",outcome=\"ok\"} 1",
        "warden_invocations_total{tenant=\"acme\",outcome=\"invalid-input\"} 1",
        "warden_invocations_total{tenant=\"acme\",outcome=\"refused\"} 1",
        "warden_limit_hits_total{tenant=\"acme\",limit=\"max_input_bytes\"} 1",
        "warden_denials_total{tenant=\"\",operation=\"tokens.list\"} 1",
        "warden_queue_depth{tenant=\"acme\"} 0",
        "warden_invocation_duration_seconds_count{tenant=\"acme\"} 3",
    ] {
        assert!(text.contains(want), "metrics lack {want:?}:\n{text}");
    }
    assert!(
        text.contains("warden_audit_appends_total{tenant=\"acme\"}"),
        "{text}"
    );
}

#[test]
fn the_committed_openapi_description_matches_the_served_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let committed: Value = serde_json::from_str(&read(&path)).unwrap();
    let d = Daemon::start("");
    let served = d.get("/v1/openapi.json", None);
    assert_eq!(served.status, 200);
    assert!(
        served.body == committed,
        "runtime/openapi.json differs from the API the daemon serves; regenerate it with \
         `cargo run -p warden-runtime --bin warden -- openapi > runtime/openapi.json`"
    );
    for path in [
        "/v1/tenants/{tenant}/agents",
        "/v1/audit/{stream}/verify",
        "/v1/tokens",
    ] {
        assert!(
            served.body["paths"][path].is_object(),
            "{path} undocumented"
        );
    }
}

/// A run whose grant names a secret the tenant does not have is the
/// operator's to fix: 409 naming the entry, not a server error.
#[test]
fn invoking_an_agent_whose_secret_the_tenant_lacks_is_a_conflict() {
    let d = Daemon::start("");
    d.create_tenant("acme");
    let text = format!(
        "{}\n[[grants.secrets]]\nname = \"payments-key\"\n",
        manifest("needs-key")
    );
    let deployed = d.deploy(&d.admin, "acme", &text, warden_test_programs::SECRETS);
    assert_eq!(deployed.status, 201, "{deployed:?}");
    let a = d.post(
        "/v1/tenants/acme/agents/needs-key/invoke",
        Some(&d.admin),
        &json!({ "input": "reveal payments-key" }),
    );
    assert_eq!(a.status, 409, "{a:?}");
    assert!(a.body.to_string().contains("grants.secrets[0]"), "{a:?}");
}

/// All control-plane events of `type`, read over the API.
fn control_stream(d: &Daemon, kind: &str) -> Vec<Value> {
    let a = d.get(
        &format!("/v1/audit/_control/events?type={kind}&limit=10000"),
        Some(&d.admin),
    );
    assert_eq!(a.status, 200, "{a:?}");
    a.body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect()
}

/// A tenant admin manages the secrets of their own tenant over the API: a
/// set secret reaches the agent granted it, its value is never answered or
/// recorded, and a removed one makes the run a conflict again.
#[test]
fn a_tenant_admin_sets_lists_and_removes_secrets_over_the_api() {
    let d = Daemon::start("");
    d.create_tenant("acme");
    d.create_tenant("globex");
    let tad = d.token("tad", "tenant-admin", Some("acme"));
    let text = format!(
        "{}\n[[grants.secrets]]\nname = \"payments-key\"\nreveal = true\n",
        manifest("reveals")
    );
    let deployed = d.deploy(&tad, "acme", &text, warden_test_programs::SECRETS);
    assert_eq!(deployed.status, 201, "{deployed:?}");
    let invoke = || {
        d.post(
            "/v1/tenants/acme/agents/reveals/invoke",
            Some(&tad),
            &json!({ "input": "reveal payments-key" }),
        )
    };
    assert_eq!(invoke().status, 409);

    let value = "sk-live-4242-unguessable";
    let a = d.put(
        "/v1/tenants/acme/secrets/payments-key",
        Some(&tad),
        &json!({ "value": value }),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert!(!a.body.to_string().contains(value), "{a:?}");
    let run = invoke();
    assert_eq!(run.status, 200, "{run:?}");
    assert_eq!(
        run.body["output"],
        format!("reveal payments-key -> ok {value}\n"),
        "{run:?}"
    );

    let listed = d.get("/v1/tenants/acme/secrets", Some(&tad));
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{listed:?}");
    assert_eq!(listed.body[0]["name"], "payments-key");
    assert!(!listed.body.to_string().contains(value));

    // Another tenant's admin cannot see, set or remove it.
    let other = d.token("gad", "tenant-admin", Some("globex"));
    for a in [
        d.get("/v1/tenants/acme/secrets", Some(&other)),
        d.put(
            "/v1/tenants/acme/secrets/payments-key",
            Some(&other),
            &json!({ "value": "mine now" }),
        ),
        d.delete("/v1/tenants/acme/secrets/payments-key", Some(&other)),
    ] {
        assert_eq!(a.status, 404, "{a:?}");
    }
    assert_eq!(
        invoke().body["output"],
        format!("reveal payments-key -> ok {value}\n")
    );
    // Found by review: a tenant id that cannot exist was refused without a
    // control-plane event.
    let a = d.put(
        "/v1/tenants/Globex/secrets/x",
        Some(&tad),
        &json!({ "value": "v" }),
    );
    assert_eq!(a.status, 404, "{a:?}");
    let refused = control_events(&d, "tenant.resolve");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["body"]["decision"], "deny");
    assert_eq!(refused[0]["body"]["resource"], "Globex");
    assert_eq!(refused[0]["actor"], "tad");

    // Bad input: a bad name, an empty value, a non-JSON body.
    let a = d.put(
        "/v1/tenants/acme/secrets/Bad..Name",
        Some(&tad),
        &json!({ "value": "x" }),
    );
    assert_eq!(a.status, 422, "{a:?}");
    let a = d.put(
        "/v1/tenants/acme/secrets/empty",
        Some(&tad),
        &json!({ "value": "" }),
    );
    assert_eq!(a.status, 422, "{a:?}");
    // The limit: 16 KiB of value.
    let a = d.put(
        "/v1/tenants/acme/secrets/huge",
        Some(&tad),
        &json!({ "value": "x".repeat(16 * 1024 + 1) }),
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(!d.env.data_dir().join("secrets/acme/huge").exists());
    let a = d.send(
        "PUT",
        "/v1/tenants/acme/secrets/raw",
        Some(&tad),
        b"not json".to_vec(),
    );
    assert_eq!(a.status, 400, "{a:?}");
    let a = d.delete("/v1/tenants/acme/secrets/never-set", Some(&tad));
    assert_eq!(a.status, 404, "{a:?}");
    // Found by review: a body of the wrong shape had its value quoted back
    // in the error, and so in the control-plane trail.
    for body in [
        json!("sk-bare-string-9876"),
        json!({ "value": 98_765_432 }),
        json!({ "value": ["sk-in-a-list-9876"] }),
    ] {
        let a = d.put("/v1/tenants/acme/secrets/shaped", Some(&tad), &body);
        assert_eq!(a.status, 400, "{a:?}");
        let text = a.body.to_string();
        assert!(
            !text.contains("9876") && text.contains("wrong type"),
            "{text}"
        );
    }

    // Found by review: writes racing for one name shared a temporary file,
    // so some failed and the stored value was one whose answer was a 500.
    let values: Vec<String> = (0..8).map(|i| format!("racing-value-{i}")).collect();
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = values
            .iter()
            .map(|v| {
                let (d, tad) = (&d, &tad);
                s.spawn(move || {
                    d.put(
                        "/v1/tenants/acme/secrets/raced",
                        Some(tad),
                        &json!({ "value": v }),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let stored = std::fs::read_to_string(d.env.data_dir().join("secrets/acme/raced")).unwrap();
    assert!(values.contains(&stored), "{stored}");
    let leftovers: Vec<_> = std::fs::read_dir(d.env.data_dir().join("secrets/acme"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let a = d.delete("/v1/tenants/acme/secrets/raced", Some(&tad));
    assert_eq!(a.status, 200, "{a:?}");

    let a = d.delete("/v1/tenants/acme/secrets/payments-key", Some(&tad));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(invoke().status, 409);

    // The changes are in the control-plane stream by name and actor; the
    // value is nowhere in the data directory's audit logs.
    let changes = control_stream(&d, "secret-changed");
    let actions: Vec<_> = changes
        .iter()
        .map(|e| (e["actor"].as_str(), e["body"]["action"].as_str()))
        .collect();
    let mut want = vec![(Some("tad"), Some("set"))];
    want.extend([(Some("tad"), Some("set")); 8]);
    want.extend([(Some("tad"), Some("remove")), (Some("tad"), Some("remove"))]);
    assert_eq!(actions, want, "{changes:?}");
    for entry in walk(&d.env.data_dir().join("audit")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "the secret is in {}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A tenant admin sets and unsets the config values an agent reads; each
/// change is a control-plane event with the value's digest, and deploying
/// and removing an agent allow and revoke its grant as `warden agents`
/// does.
#[test]
fn a_tenant_admin_sets_config_values_and_deploys_approve_grants() {
    let d = Daemon::start("");
    d.create_tenant("acme");
    let tad = d.token("tad", "tenant-admin", Some("acme"));
    let text = format!("{}\n[grants]\nconfig = [\"currency\"]\n", manifest("probe"));
    let deployed = d.deploy(&tad, "acme", &text, warden_test_programs::PROBE);
    assert_eq!(deployed.status, 201, "{deployed:?}");
    assert!(
        deployed.body["grant_text"]
            .as_str()
            .unwrap()
            .contains("currency"),
        "{deployed:?}"
    );
    let read = |key: &str| {
        let a = d.post(
            "/v1/tenants/acme/agents/probe/invoke",
            Some(&tad),
            &json!({ "input": format!("config {key}") }),
        );
        assert_eq!(a.status, 200, "{a:?}");
        // The probe answers `<command> -> <result>` per line.
        let line = a.body["output"].as_str().unwrap().trim_end().to_owned();
        line.split_once(" -> ")
            .map(|(_, r)| r.to_owned())
            .unwrap_or(line)
    };
    assert_eq!(read("currency"), "err not-found");

    let a = d.put(
        "/v1/tenants/acme/agents/probe/config/currency",
        Some(&tad),
        &json!({ "value": "EUR" }),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["changed"], true, "{a:?}");
    assert_eq!(read("currency"), "ok EUR");
    // A key the grant does not name can be set, but the agent cannot read it.
    let a = d.put(
        "/v1/tenants/acme/agents/probe/config/iban",
        Some(&tad),
        &json!({ "value": "DE00" }),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert!(read("iban").starts_with("err not-permitted"));
    let listed = d.get("/v1/tenants/acme/agents/probe/config", Some(&tad));
    assert_eq!(
        listed.body,
        json!([{ "key": "currency", "value": "EUR" }, { "key": "iban", "value": "DE00" }]),
        "{listed:?}"
    );

    // Bad input gets a 4xx naming the problem.
    let a = d.put(
        "/v1/tenants/acme/agents/probe/config/Bad%20Key",
        Some(&tad),
        &json!({ "value": "x" }),
    );
    assert_eq!(a.status, 422, "{a:?}");
    let a = d.put(
        "/v1/tenants/acme/agents/probe/config/big",
        Some(&tad),
        &json!({ "value": "x".repeat(5000) }),
    );
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.body["error"].as_str().unwrap().contains("maximum"),
        "{a:?}"
    );
    let a = d.delete("/v1/tenants/acme/agents/probe/config/unset", Some(&tad));
    assert_eq!(a.status, 404, "{a:?}");

    let a = d.delete("/v1/tenants/acme/agents/probe/config/currency", Some(&tad));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(read("currency"), "err not-found");

    let a = d.delete("/v1/tenants/acme/agents/probe", Some(&tad));
    assert_eq!(a.status, 200, "{a:?}");

    let changes = control_stream(&d, "control-change");
    let actions: Vec<_> = changes
        .iter()
        .map(|e| e["body"]["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "agents allow",
            "config set",
            "config set",
            "config unset",
            "agents revoke"
        ],
        "{changes:?}"
    );
    for e in &changes {
        assert_eq!(e["actor"], "tad", "{e}");
        assert!(!e.to_string().contains("EUR"), "a value is in {e}");
    }
    assert_eq!(
        changes[0]["body"]["after_grant_digest"],
        deployed.body["grant_sha256"]
    );
}

#[test]
fn approvals_change_only_through_the_daemon_while_it_runs() {
    let d = Daemon::start("");
    d.create_tenant("acme");
    let tad = d.token("tad", "tenant-admin", Some("acme"));
    let deploy = || {
        d.deploy(
            &tad,
            "acme",
            &manifest("probe"),
            warden_test_programs::PROBE,
        )
    };
    assert_eq!(deploy().status, 201);
    let invoke = || {
        d.post(
            "/v1/tenants/acme/agents/probe/invoke",
            Some(&tad),
            &json!({ "input": "say hi" }),
        )
        .status
    };
    assert_eq!(invoke(), 200);

    // The daemon holds the control-plane stream: a command cannot revoke
    // the approval behind its back (and so the daemon may keep approvals
    // in memory).
    let out = d.env.agents(&["revoke", "probe", "--tenant", "acme"]);
    crate::harness::assert_one_line_error(&out, "is in use by another warden process");
    assert_eq!(invoke(), 200);

    // Removal over the API revokes, and holds from the next invocation on;
    // deployed again, the agent runs again.
    let removed = d.delete("/v1/tenants/acme/agents/probe", Some(&tad));
    assert!(removed.status < 300, "{removed:?}");
    assert_eq!(invoke(), 404);
    assert_eq!(deploy().status, 201);
    assert_eq!(invoke(), 200);
}

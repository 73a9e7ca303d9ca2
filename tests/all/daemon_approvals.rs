//! Human approval: an agent waits, a person answers over the API (or,
//! under `warden run`, nobody can and the request is refused), and the
//! tenant's audit trail binds request, answer, approver and time.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    daemon_client::{Daemon, manifest},
    harness::Env,
};

/// Starts a daemon with tenant acme (whose wall-clock limit is `wall`) and
/// the approval guest deployed; returns it with a tenant-admin token.
fn setup(wall: &str) -> (Daemon, String) {
    let d = Daemon::start("");
    let a = d.post(
        "/v1/tenants",
        Some(&d.admin),
        &json!({ "id": "acme", "config": format!("[limits]\nwall_timeout = {wall:?}\n") }),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let a = d.deploy(
        &d.admin,
        "acme",
        &manifest("approval"),
        warden_test_programs::APPROVAL,
    );
    assert_eq!(a.status, 201, "{a:?}");
    let admin = d.token("tad", "tenant-admin", Some("acme"));
    (d, admin)
}

/// Starts the approval agent as `token` and waits until its run shows as
/// waiting; returns the run id and the request id.
fn wait_for_request(d: &Daemon, token: &str) -> (String, String) {
    let a = d.post(
        "/v1/tenants/acme/agents/approval/invoke",
        Some(token),
        &json!({ "input": "pay invoice INV-1", "async": true }),
    );
    assert_eq!(a.status, 202, "{a:?}");
    let run = a.body["id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let r = d.get(&format!("/v1/tenants/acme/runs/{run}"), Some(token));
        if r.body["status"] == "waiting" {
            return (run, r.body["approval"].as_str().unwrap().to_owned());
        }
        assert_eq!(r.body["status"], "running", "{r:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("run {run} never waited for approval");
}

fn finished(d: &Daemon, token: &str, run: &str) -> Value {
    for _ in 0..400 {
        let r = d.get(&format!("/v1/tenants/acme/runs/{run}"), Some(token));
        if r.body["status"] == "succeeded" || r.body["status"] == "failed" {
            return r.body;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("run {run} did not finish");
}

/// The run's approval events, in order.
fn approval_events(run: &Value) -> Vec<Value> {
    run["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .filter(|e| {
            let t = &e["body"]["type"];
            t == "approval-requested" || t == "approval-decided"
        })
        .collect()
}

#[test]
fn an_approved_request_lets_the_run_complete_and_names_the_approver() {
    let (d, admin) = setup("20s");
    let (run, request) = wait_for_request(&d, &admin);

    let listed = d.get("/v1/tenants/acme/approvals", Some(&admin));
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body[0]["id"], request.as_str());
    assert_eq!(listed.body[0]["action"], "pay invoice INV-1");

    // The token that caused the request cannot answer it; an invoker may
    // not answer at all; another tenant's admin does not see it.
    let own = d.post(
        &format!("/v1/tenants/acme/approvals/{request}"),
        Some(&admin),
        &json!({ "approve": true }),
    );
    assert_eq!(own.status, 403, "{own:?}");
    assert!(own.body["error"].as_str().unwrap().contains("own run"));
    let invoker = d.token("ivy", "invoker", Some("acme"));
    let a = d.post(
        &format!("/v1/tenants/acme/approvals/{request}"),
        Some(&invoker),
        &json!({ "approve": true }),
    );
    assert_eq!(a.status, 403, "{a:?}");
    d.create_tenant("globex");
    let other = d.token("gus", "tenant-admin", Some("globex"));
    let a = d.post(
        &format!("/v1/tenants/acme/approvals/{request}"),
        Some(&other),
        &json!({ "approve": true }),
    );
    assert_eq!(a.status, 404, "{a:?}");

    let second = d.token("sam", "tenant-admin", Some("acme"));
    let a = d.post(
        &format!("/v1/tenants/acme/approvals/{request}"),
        Some(&second),
        &json!({ "approve": true }),
    );
    assert_eq!(a.status, 200, "{a:?}");

    let done = finished(&d, &admin, &run);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], "approved");
    let events = approval_events(&done);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["body"]["type"], "approval-requested");
    assert_eq!(events[0]["body"]["action"], "pay invoice INV-1");
    assert_eq!(events[1]["body"]["request"], request.as_str());
    assert_eq!(events[1]["body"]["answer"], "approved");
    assert_eq!(events[1]["body"]["approver"], "sam (tenant-admin)");
    assert!(events[1]["time_unix_ms"].as_u64() >= events[0]["time_unix_ms"].as_u64());

    // The refused self-approval and the accepted answer are both on the
    // control-plane record.
    let control = d.get(
        "/v1/audit/_control/events?type=control-request&limit=10000",
        Some(&d.admin),
    );
    let decides: Vec<&Value> = control
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .filter(|e| e["body"]["operation"] == "approvals.decide")
        .collect();
    assert!(
        decides
            .iter()
            .any(|e| e["actor"] == "tad" && e["body"]["status"] == 403)
    );
    assert!(
        decides
            .iter()
            .any(|e| e["actor"] == "sam" && e["body"]["status"] == 200)
    );
}

#[test]
fn a_denied_request_is_returned_to_the_agent_with_the_reason_recorded() {
    let (d, admin) = setup("20s");
    let (run, request) = wait_for_request(&d, &admin);
    let a = d.post(
        &format!("/v1/tenants/acme/approvals/{request}"),
        Some(&d.admin),
        &json!({ "approve": false, "reason": "vendor not verified" }),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let done = finished(&d, &admin, &run);
    assert_eq!(done["output"], "denied", "{done}");
    let events = approval_events(&done);
    assert_eq!(events[1]["body"]["answer"], "denied");
    assert_eq!(events[1]["body"]["approver"], "root (platform-admin)");
    assert_eq!(events[1]["body"]["reason"], "vendor not verified");
    // An answered request is gone: a second answer finds nothing.
    let again = d.post(
        &format!("/v1/tenants/acme/approvals/{request}"),
        Some(&d.admin),
        &json!({ "approve": true }),
    );
    assert_eq!(again.status, 404, "{again:?}");
}

#[test]
fn a_request_nobody_answers_is_refused_at_the_deadline() {
    let (d, admin) = setup("1500ms");
    let (run, _request) = wait_for_request(&d, &admin);
    let done = finished(&d, &admin, &run);
    // The agent gets "limit reached" back, or the wall clock ends it first;
    // either way it was not approved.
    let output = done["output"].as_str().unwrap_or("");
    assert!(
        done["status"] == "failed"
            || (output.starts_with("error: ") && output.contains("LimitReached")),
        "{done}"
    );
    let events = approval_events(&done);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["body"]["answer"], "no-answer");
    assert!(events[1].get("approver").is_none_or(Value::is_null));
    let listed = d.get("/v1/tenants/acme/approvals", Some(&admin));
    assert_eq!(listed.body.as_array().map(Vec::len), Some(0), "{listed:?}");
}

#[test]
fn warden_run_without_a_terminal_refuses_approval_requests() {
    let env = Env::new();
    let manifest = env.manifest("approval", warden_test_programs::APPROVAL, &[]);
    let out = env.run_ok(&manifest, "acme", "delete all vendors");
    assert!(out.contains("NotPermitted"), "{out}");
    let decided: Vec<Value> = env
        .events("acme")
        .into_iter()
        .filter(|e| e["body"]["type"] == "approval-decided")
        .collect();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["body"]["answer"], "unavailable");
    assert!(
        decided[0]["body"]["reason"]
            .as_str()
            .unwrap()
            .contains("not a terminal")
    );
}

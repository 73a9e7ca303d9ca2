//! The authorization matrix: every role against every endpoint, on its own
//! tenant and on another tenant, with the expected status in one table.
//!
//! A tenant role naming another tenant gets 404, never 403, so that it
//! cannot learn whether that tenant exists.

use serde_json::json;

use crate::daemon_client::{Daemon, deploy_body, manifest};

/// The callers, in the order of the table's columns.
const CALLERS: [(&str, &str, Option<&str>); 5] = [
    ("pat", "platform-admin", None),
    ("tad", "tenant-admin", Some("acme")),
    ("aud", "auditor", Some("acme")),
    ("all", "auditor", None),
    ("ivy", "invoker", Some("acme")),
];

/// (endpoint, expected statuses: for each caller in [`CALLERS`] order, on
/// acme (the tenant-bound callers' own tenant) then on globex).
const MATRIX: [(&str, [u16; 10]); 27] = [
    //                                  pat       tad       aud       all       ivy
    (
        "GET tenants",
        [200, 200, 200, 200, 200, 200, 200, 200, 200, 200],
    ),
    (
        "POST tenants",
        [201, 201, 403, 403, 403, 403, 403, 403, 403, 403],
    ),
    (
        "POST agents",
        [201, 201, 201, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "GET agents",
        [200, 200, 200, 404, 403, 404, 403, 403, 200, 404],
    ),
    (
        "GET agent",
        [200, 200, 200, 404, 403, 404, 403, 403, 200, 404],
    ),
    (
        "DELETE agent",
        [200, 200, 200, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "POST invoke",
        [200, 200, 200, 404, 403, 404, 403, 403, 200, 404],
    ),
    (
        "GET config",
        [200, 200, 200, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "PUT config",
        [200, 200, 200, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "DELETE config",
        [200, 200, 200, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "GET secrets",
        [200, 200, 200, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "PUT secret",
        [200, 200, 200, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "DELETE secret",
        [200, 200, 200, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "GET run",
        [200, 200, 200, 404, 200, 404, 200, 200, 200, 404],
    ),
    (
        "GET approvals",
        [200, 200, 200, 404, 403, 404, 403, 403, 403, 404],
    ),
    // Allowed callers find no such request: 404 from the queue.
    (
        "POST approval",
        [404, 404, 404, 404, 403, 404, 403, 403, 403, 404],
    ),
    (
        "GET audit events",
        [200, 200, 403, 404, 200, 404, 200, 200, 403, 404],
    ),
    (
        "POST audit verify",
        [200, 200, 403, 404, 200, 404, 200, 200, 403, 404],
    ),
    (
        "POST audit checkpoint",
        [200, 200, 403, 404, 200, 404, 200, 200, 403, 404],
    ),
    (
        "GET audit proof",
        [200, 200, 403, 404, 200, 404, 200, 200, 403, 404],
    ),
    (
        "POST audit export",
        [200, 200, 403, 404, 200, 404, 200, 200, 403, 404],
    ),
    (
        "GET control events",
        [200, 200, 403, 403, 403, 403, 200, 200, 403, 403],
    ),
    (
        "POST control verify",
        [200, 200, 403, 403, 403, 403, 200, 200, 403, 403],
    ),
    (
        "GET metrics",
        [200, 200, 403, 403, 403, 403, 200, 200, 403, 403],
    ),
    (
        "GET tokens",
        [200, 200, 403, 403, 403, 403, 403, 403, 403, 403],
    ),
    (
        "POST tokens",
        [201, 201, 403, 403, 403, 403, 403, 403, 403, 403],
    ),
    (
        "DELETE token",
        [200, 200, 403, 403, 403, 403, 403, 403, 403, 403],
    ),
];

/// The trivial guest's manifest: it writes and reads back `bench/k`.
fn trivial_manifest(name: &str) -> String {
    format!(
        "{}\n[[grants.records]]\nprefix = \"bench/\"\naccess = \"read-write\"\n",
        manifest(name)
    )
}

/// Whether the cell of caller `c` on tenant `t` (0 own, 1 other) with
/// status `want` is a refusal by role or tenant scope, which leaves a deny
/// event; a 404 for an allowed caller is a missing object instead.
fn refused(c: usize, t: usize, want: u16) -> bool {
    want == 403 || (want == 404 && t == 1 && CALLERS[c].2.is_some())
}

#[test]
fn every_role_gets_the_expected_status_on_every_endpoint_and_tenant() {
    let d = Daemon::start("");
    let admin = d.admin.clone();
    let trivial = std::fs::read(warden_test_programs::BENCH_TRIVIAL).unwrap();
    let tokens: Vec<String> = CALLERS
        .iter()
        .map(|(actor, role, tenant)| {
            if tenant.is_some() {
                // Tenants must exist before a token names them.
                for t in ["acme", "globex"] {
                    if !d.env.data_dir().join(format!("tenants/{t}.toml")).exists() {
                        d.create_tenant(t);
                    }
                }
            }
            d.token(actor, role, *tenant)
        })
        .collect();

    // What each cell needs: an agent to show, invoke and remove, a run to
    // read, a token to revoke; one of each per cell so that cells do not
    // depend on each other's order.
    let mut runs = std::collections::HashMap::new();
    for tenant in ["acme", "globex"] {
        let a = d.post(
            &format!("/v1/tenants/{tenant}/agents"),
            Some(&admin),
            &deploy_body(&trivial_manifest("trivial"), &trivial),
        );
        assert_eq!(a.status, 201, "{a:?}");
        let a = d.post(
            &format!("/v1/tenants/{tenant}/agents/trivial/invoke"),
            Some(&admin),
            &json!({ "input": "x" }),
        );
        assert_eq!(a.status, 200, "{a:?}");
        runs.insert(tenant, a.body["id"].as_str().unwrap().to_owned());
        for caller in 0..CALLERS.len() {
            let a = d.post(
                &format!("/v1/tenants/{tenant}/agents"),
                Some(&admin),
                &deploy_body(&trivial_manifest(&format!("rm-{caller}")), &trivial),
            );
            assert_eq!(a.status, 201, "{a:?}");
            // A value and a secret for each caller to remove.
            let a = d.put(
                &format!("/v1/tenants/{tenant}/agents/trivial/config/rm-{caller}"),
                Some(&admin),
                &json!({ "value": "v" }),
            );
            assert_eq!(a.status, 200, "{a:?}");
            let a = d.put(
                &format!("/v1/tenants/{tenant}/secrets/rm-{caller}"),
                Some(&admin),
                &json!({ "value": "s3cret" }),
            );
            assert_eq!(a.status, 200, "{a:?}");
        }
    }

    let mut failures = Vec::new();
    for (endpoint, expected) in MATRIX {
        for (c, token) in tokens.iter().enumerate() {
            for (t, tenant) in ["acme", "globex"].into_iter().enumerate() {
                let cell = format!("{c}-{t}");
                let answer = match endpoint {
                    "GET tenants" => d.get("/v1/tenants", Some(token)),
                    "POST tenants" => d.post(
                        "/v1/tenants",
                        Some(token),
                        &json!({ "id": format!("new-{cell}") }),
                    ),
                    "POST agents" => d.post(
                        &format!("/v1/tenants/{tenant}/agents"),
                        Some(token),
                        &deploy_body(&manifest(&format!("new-{cell}")), &trivial),
                    ),
                    "GET agents" => d.get(&format!("/v1/tenants/{tenant}/agents"), Some(token)),
                    "GET agent" => {
                        d.get(&format!("/v1/tenants/{tenant}/agents/trivial"), Some(token))
                    }
                    "DELETE agent" => {
                        d.delete(&format!("/v1/tenants/{tenant}/agents/rm-{c}"), Some(token))
                    }
                    "POST invoke" => d.post(
                        &format!("/v1/tenants/{tenant}/agents/trivial/invoke"),
                        Some(token),
                        &json!({ "input": "x" }),
                    ),
                    "GET config" => d.get(
                        &format!("/v1/tenants/{tenant}/agents/trivial/config"),
                        Some(token),
                    ),
                    "PUT config" => d.put(
                        &format!("/v1/tenants/{tenant}/agents/trivial/config/k-{cell}"),
                        Some(token),
                        &json!({ "value": "v" }),
                    ),
                    "DELETE config" => d.delete(
                        &format!("/v1/tenants/{tenant}/agents/trivial/config/rm-{c}"),
                        Some(token),
                    ),
                    "GET secrets" => d.get(&format!("/v1/tenants/{tenant}/secrets"), Some(token)),
                    "PUT secret" => d.put(
                        &format!("/v1/tenants/{tenant}/secrets/s-{cell}"),
                        Some(token),
                        &json!({ "value": "s3cret" }),
                    ),
                    "DELETE secret" => {
                        d.delete(&format!("/v1/tenants/{tenant}/secrets/rm-{c}"), Some(token))
                    }
                    "GET run" => d.get(
                        &format!("/v1/tenants/{tenant}/runs/{}", runs[tenant]),
                        Some(token),
                    ),
                    "GET approvals" => {
                        d.get(&format!("/v1/tenants/{tenant}/approvals"), Some(token))
                    }
                    "POST approval" => d.post(
                        &format!("/v1/tenants/{tenant}/approvals/none"),
                        Some(token),
                        &json!({ "approve": true }),
                    ),
                    "GET audit events" => d.get(&format!("/v1/audit/{tenant}/events"), Some(token)),
                    "POST audit verify" => d.post(
                        &format!("/v1/audit/{tenant}/verify"),
                        Some(token),
                        &json!({}),
                    ),
                    "POST audit checkpoint" => d.post(
                        &format!("/v1/audit/{tenant}/checkpoint"),
                        Some(token),
                        &json!({}),
                    ),
                    "GET audit proof" => {
                        d.get(&format!("/v1/audit/{tenant}/proof?event=1"), Some(token))
                    }
                    "POST audit export" => d.post(
                        &format!("/v1/audit/{tenant}/export"),
                        Some(token),
                        &json!({ "since": "1h" }),
                    ),
                    "GET control events" => d.get("/v1/audit/_control/events", Some(token)),
                    "POST control verify" => {
                        d.post("/v1/audit/_control/verify", Some(token), &json!({}))
                    }
                    "GET metrics" => d.send("GET", "/metrics", Some(token), Vec::new()),
                    "GET tokens" => d.get("/v1/tokens", Some(token)),
                    "POST tokens" => d.post(
                        "/v1/tokens",
                        Some(token),
                        &json!({ "actor": format!("new-{cell}"), "role": "auditor" }),
                    ),
                    "DELETE token" => {
                        let victim = d.token(&format!("victim-{cell}"), "auditor", None);
                        let id = victim.split('_').nth(1).unwrap().to_owned();
                        d.delete(&format!("/v1/tokens/{id}"), Some(token))
                    }
                    other => panic!("no request for {other}"),
                };
                let want = expected[c * 2 + t];
                if answer.status != want {
                    failures.push(format!(
                        "{endpoint} by {} on {tenant}: got {} want {want}: {}",
                        CALLERS[c].0, answer.status, answer.body
                    ));
                }
                if answer.status >= 400 {
                    assert!(answer.body["error"].is_string(), "{endpoint}: {answer:?}");
                }
                // A 404 for another tenant must not differ from the answer
                // about a tenant that does not exist at all.
                if refused(c, t, want) && answer.status == 404 {
                    let msg = answer.body["error"].as_str().unwrap_or("");
                    assert!(msg.contains("no tenant"), "{endpoint}: {msg}");
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Without a token every endpoint answers 401 and nothing else.
    for path in [
        "/v1/tenants",
        "/v1/tenants/acme/agents",
        "/v1/audit/acme/events",
        "/v1/tokens",
        "/metrics",
    ] {
        let a = d.get(path, None);
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(
            a.body.as_object().map(|o| o.len()),
            Some(1),
            "{path}: {a:?}"
        );
    }

    // Every refusal left exactly one control-plane event naming the caller.
    let control = d.get(
        "/v1/audit/_control/events?type=control-request&limit=10000",
        Some(&admin),
    );
    let denied = control
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["body"]["decision"] == "deny")
        .count();
    let refusals: usize = MATRIX
        .iter()
        .map(|(_, row)| {
            (0..row.len())
                .filter(|i| refused(i / 2, i % 2, row[*i]))
                .count()
        })
        .sum();
    assert_eq!(denied, refusals, "one deny event per refused cell");
}

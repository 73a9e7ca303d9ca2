//! Secrets: the operator commands, the `secrets` interface, headers the host
//! adds at egress, and the per-tenant HTTP limits, through the real
//! `warden` binary and the secrets guest.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Output, Stdio},
};

use serde_json::Value;

use crate::{
    egress::Server,
    harness::{Env, assert_one_line_error, stderr, stdout},
};

/// A value no other part of a test produces, so that finding it anywhere
/// means it leaked.
const VALUE: &str = "tok-7f3a91c2e4b5";

impl Env {
    /// `warden secrets set --tenant TENANT NAME` with `value` on stdin.
    fn set_secret(&self, tenant: &str, name: &str, value: &[u8]) -> Output {
        let mut child = self
            .warden()
            .args([
                "secrets", "set", "--tenant", tenant, name, "--actor", "ops@acme",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run warden");
        child.stdin.take().unwrap().write_all(value).unwrap();
        child.wait_with_output().unwrap()
    }

    fn secrets(&self, args: &[&str]) -> Output {
        self.warden()
            .arg("secrets")
            .args(args)
            .output()
            .expect("cannot run warden")
    }

    /// The secrets guest with `grants` (TOML text after the header).
    fn secrets_agent(&self, name: &str, grants: &str) -> PathBuf {
        let text = format!(
            "name = {name:?}\ncomponent = {:?}\n{grants}",
            warden_test_programs::SECRETS
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The control-plane stream's events.
    fn control_events(&self) -> Vec<Value> {
        stdout(&self.audit(&["show", "--json", "--control"]))
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
            .collect()
    }

    /// Host-call events of `tenant` on `interface`.
    fn interface_events(&self, tenant: &str, interface: &str) -> Vec<Value> {
        self.events(tenant)
            .into_iter()
            .filter(|e| e["body"]["interface"] == interface)
            .map(|e| e["body"].clone())
            .collect()
    }
}

/// Every file under `dir` except those under `skip`, with its bytes.
fn files(dir: &Path, skip: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.starts_with(skip) {
            continue;
        }
        if path.is_dir() {
            files(&path, skip, out);
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn operator_sets_lists_and_removes_secrets_and_each_change_is_recorded_by_name() {
    let env = Env::new();
    let out = env.set_secret("acme", "payments-key", format!("{VALUE}\n").as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));

    let file = env.data_dir().join("secrets/acme/payments-key");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        VALUE.as_bytes(),
        "one newline dropped"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let list = env.secrets(&["list", "--tenant", "acme"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let listed = stdout(&list);
    assert!(listed.starts_with("payments-key\tset 20"), "{listed}");
    assert!(!listed.contains(VALUE), "{listed}");
    assert_eq!(stdout(&env.secrets(&["list", "--tenant", "globex"])), "");

    // A value on the command line is not accepted.
    let argv = env.secrets(&["set", "--tenant", "acme", "payments-key", VALUE]);
    assert!(!argv.status.success());

    let removed = env.secrets(&[
        "remove",
        "--tenant",
        "acme",
        "payments-key",
        "--actor",
        "ops@acme",
    ]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(!file.exists());
    let again = env.secrets(&["remove", "--tenant", "acme", "payments-key"]);
    assert_one_line_error(&again, "tenant acme has no secret payments-key");

    let changes: Vec<Value> = env
        .control_events()
        .into_iter()
        .filter(|e| e["body"]["type"] == "secret-changed")
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    for (event, action) in changes.iter().zip(["set", "remove"]) {
        assert_eq!(event["actor"], "ops@acme");
        assert_eq!(event["tenant"], "acme");
        assert_eq!(event["body"]["name"], "payments-key");
        assert_eq!(event["body"]["action"], action);
    }
    let mut all = Vec::new();
    files(&env.data_dir(), &env.data_dir().join("secrets"), &mut all);
    for (path, bytes) in &all {
        assert!(!contains(bytes, VALUE), "value found in {}", path.display());
    }
}

#[test]
fn oversized_values_and_names_are_refused_before_anything_is_recorded() {
    let env = Env::new();
    let big = vec![b'x'; 16 * 1024 + 1];
    assert_one_line_error(
        &env.set_secret("acme", "k", &big),
        "over the maximum of 16384 bytes",
    );
    let long = "k".repeat(65);
    assert_one_line_error(
        &env.set_secret("acme", &long, b"v"),
        "secret name is 65 bytes, over the maximum of 64",
    );
    assert_one_line_error(&env.set_secret("acme", "k", b"\n"), "the value is empty");
    assert_one_line_error(&env.set_secret("acme", "../k", b"v"), "is not valid");
    assert!(!env.data_dir().join("audit/_control").exists());
    // Exactly at the maximum is fine.
    let max = vec![b'x'; 16 * 1024];
    assert!(env.set_secret("acme", "k", &max).status.success());
}

#[test]
fn guest_reads_a_secret_granted_with_reveal_and_the_trail_names_it_only() {
    let env = Env::new();
    assert!(
        env.set_secret("acme", "shown", VALUE.as_bytes())
            .status
            .success()
    );
    let manifest = env.secrets_agent(
        "reader",
        "[[grants.secrets]]\nname = \"shown\"\nreveal = true\n",
    );
    let out = env.run_ok(&manifest, "acme", "reveal shown\n");
    assert_eq!(out, format!("reveal shown -> ok {VALUE}\n"));

    let calls = env.interface_events("acme", "warden:agent/secrets");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["function"], "reveal");
    assert_eq!(calls[0]["resource"], "shown");
    assert_eq!(calls[0]["decision"], "allow");
    assert!(calls[0].get("value_digest").is_none(), "{calls:?}");
    let trail = serde_json::to_string(&env.events("acme")).unwrap();
    assert!(!trail.contains(VALUE), "value in the audit trail");
}

#[test]
fn secrets_not_granted_or_granted_without_reveal_are_not_permitted() {
    let env = Env::new();
    for name in ["hidden", "other"] {
        assert!(
            env.set_secret("acme", name, VALUE.as_bytes())
                .status
                .success()
        );
    }
    let manifest = env.secrets_agent("reader", "[[grants.secrets]]\nname = \"hidden\"\n");
    let out = env.run_ok(&manifest, "acme", "reveal hidden\nreveal other\n");
    assert!(
        out.contains(
            "reveal hidden -> err not-permitted: secret hidden is granted for host use only"
        ),
        "{out}"
    );
    assert!(
        out.contains("reveal other -> err not-permitted: secret other is not granted"),
        "{out}"
    );
    assert!(!out.contains(VALUE), "{out}");

    let calls = env.interface_events("acme", "warden:agent/secrets");
    assert_eq!(calls.len(), 2, "one event per refusal: {calls:?}");
    for (call, name) in calls.iter().zip(["hidden", "other"]) {
        assert_eq!(call["resource"], name);
        assert_eq!(call["decision"], "deny");
        assert_eq!(call["blame"], "guest");
    }
    assert!(
        calls[0]["reason"]
            .as_str()
            .unwrap()
            .contains("reveal = true")
    );
    assert!(calls[1]["reason"].as_str().unwrap().contains("not granted"));
}

#[test]
fn a_tenant_cannot_use_another_tenants_secret() {
    let env = Env::new();
    assert!(
        env.set_secret("globex", "pay", VALUE.as_bytes())
            .status
            .success()
    );
    let file = env.data_dir().join("secrets/globex/pay");
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();

    // acme's agent grants globex's secret name: acme has no such secret,
    // so nothing runs.
    let manifest = env.secrets_agent(
        "reader",
        "[[grants.secrets]]\nname = \"pay\"\nreveal = true\n",
    );
    let out = env.run(&manifest, "acme", "reveal pay\n");
    assert_one_line_error(
        &out,
        "manifest grants.secrets[0] names secret pay, which tenant acme does not have",
    );
    assert!(!stdout(&out).contains(VALUE));
    let finish: Vec<Value> = env
        .events("acme")
        .into_iter()
        .filter(|e| e["body"]["type"] == "invocation-finish")
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["body"]["outcome"], "refused");
    assert!(
        finish[0]["body"]["detail"]
            .as_str()
            .unwrap()
            .contains("grants.secrets[0]"),
        "{finish:?}"
    );

    // Without the grant the name is simply not permitted.
    let ungranted = env.secrets_agent("plain", "");
    let out = env.run_ok(&ungranted, "acme", "reveal pay\n");
    assert!(
        out.contains("err not-permitted: secret pay is not granted"),
        "{out}"
    );

    assert_eq!(std::fs::read(&file).unwrap(), VALUE.as_bytes());
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        before
    );
    // globex's own agent still reads its own value.
    assert_eq!(
        env.run_ok(&manifest, "globex", "reveal pay\n"),
        format!("reveal pay -> ok {VALUE}\n")
    );
}

#[test]
fn a_guest_name_over_64_bytes_is_limit_reached_and_recorded() {
    let env = Env::new();
    let manifest = env.secrets_agent("reader", "");
    let long = "k".repeat(10_000);
    let out = env.run_ok(&manifest, "acme", &format!("reveal {long}\n"));
    assert!(
        out.ends_with("err limit-reached: secret name is 10000 bytes, over the maximum of 64\n"),
        "{}",
        &out[out.len() - 200..]
    );
    let calls = env.interface_events("acme", "warden:agent/secrets");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["decision"], "deny");
    assert!(
        calls[0]["resource"].as_str().unwrap().len() < 1100,
        "name cut"
    );
}

fn egress_grants(port: u16) -> String {
    format!(
        "[[grants.secrets]]\nname = \"payments-key\"\n\n[[grants.http]]\nscheme = \"http\"\n\
         host = \"127.0.0.1\"\nport = {port}\n\
         headers = {{ authorization = \"Bearer {{{{secret:payments-key}}}}\" }}\n"
    )
}

#[test]
fn granted_header_carries_the_secret_to_the_server_and_nowhere_else() {
    let server = Server::start();
    let env = Env::new();
    assert!(
        env.set_secret("acme", "payments-key", VALUE.as_bytes())
            .status
            .success()
    );
    let manifest = env.secrets_agent("payer", &egress_grants(server.port));
    let url = format!("http://127.0.0.1:{}/charge", server.port);
    let out = env.run(
        &manifest,
        "acme",
        &format!("send {url}\nreveal payments-key\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("-> ok status 200 body hello guest-headers [authorization=guest-token]"),
        "{text}"
    );
    assert!(
        text.contains("reveal payments-key -> err not-permitted"),
        "{text}"
    );

    // The server got the host's header in place of the guest's.
    let head = server.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        head.contains(&format!(
            "authorization: bearer {}",
            VALUE.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(!head.contains("guest-token"), "{head}");

    let requests: Vec<Value> = env
        .events("acme")
        .into_iter()
        .filter(|e| e["body"]["type"] == "http-request")
        .map(|e| e["body"].clone())
        .collect();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["decision"], "allow");
    assert_eq!(
        requests[0]["injected"],
        serde_json::json!([{"header": "authorization", "secrets": ["payments-key"], "replaced": true}])
    );

    // Nowhere but the secret store: not the output, not stderr, not a
    // single file of the data directory (audit logs, state, keys).
    assert!(!contains(&out.stdout, VALUE) && !contains(&out.stderr, VALUE));
    let mut all = Vec::new();
    files(&env.data_dir(), &env.data_dir().join("secrets"), &mut all);
    assert!(all.len() > 3, "{all:?}");
    for (path, bytes) in &all {
        assert!(!contains(bytes, VALUE), "value found in {}", path.display());
    }
}

#[test]
fn a_header_secret_not_in_grants_secrets_refuses_the_manifest() {
    let env = Env::new();
    let manifest = env.secrets_agent(
        "payer",
        "[[grants.http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = 9\n\
         headers = { authorization = \"Bearer {{secret:payments-key}}\" }\n",
    );
    let out = env.run(&manifest, "acme", "reveal x\n");
    assert_one_line_error(
        &out,
        "grants.http[0].headers.authorization uses secret \"payments-key\", which grants.secrets \
         does not name",
    );
    assert!(!env.data_dir().join("audit/acme").exists(), "nothing ran");
}

#[test]
fn header_limits_and_bad_headers_fail_that_request_alone_and_are_audited() {
    let server = Server::start();
    let env = Env::new();
    env.tenant_config(
        "acme",
        "[limits]\nmax_http_header_count = 4\nmax_http_header_bytes = 256\n",
    );
    let manifest = env.secrets_agent(
        "sender",
        &format!(
            "[[grants.http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {}\n",
            server.port
        ),
    );
    let url = format!("http://127.0.0.1:{}/", server.port);
    let input = format!("headers 5 {url}\nbig-header 300 {url}\nheaders 4 {url}\n");
    let out = env.run_ok(&manifest, "acme", &input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].ends_with("err header x-h4: HeaderError::Forbidden"),
        "{out}"
    );
    assert!(
        lines[1].ends_with("err header x-big: HeaderError::Forbidden"),
        "{out}"
    );
    assert!(lines[2].contains("ok status 200"), "{out}");

    let refused = env.interface_events("acme", "wasi:http/types");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0]["resource"], "x-h4");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("5 headers exceed max_http_header_count (4)"),
        "{refused:?}"
    );
    assert_eq!(refused[1]["resource"], "x-big");
    assert!(
        refused[1]["reason"]
            .as_str()
            .unwrap()
            .contains("exceed max_http_header_bytes (256)"),
        "{refused:?}"
    );
    assert_eq!(server.requests.lock().unwrap().len(), 1);
}

#[test]
fn per_tenant_request_and_body_limits_are_enforced_and_audited() {
    let server = Server::start();
    let env = Env::new();
    env.tenant_config(
        "acme",
        "[limits]\nmax_http_requests = 2\nmax_http_response_body_bytes = 3\n",
    );
    let manifest = env.secrets_agent(
        "sender",
        &format!(
            "[[grants.http]]\nscheme = \"http\"\nhost = \"127.0.0.1\"\nport = {}\n",
            server.port
        ),
    );
    let url = format!("http://127.0.0.1:{}/", server.port);
    let out = env.run_ok(
        &manifest,
        "acme",
        &format!("headers 0 {url}\nheaders 0 {url}\nheaders 0 {url}\n"),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("-> err body:"), "{out}");
    assert!(lines[1].contains("-> err body:"), "{out}");
    assert!(
        lines[2].ends_with("err ErrorCode::ConnectionLimitReached"),
        "{out}"
    );

    let events = env.events("acme");
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|e| {
            let b = &e["body"];
            b["reason"]
                .as_str()
                .or(b["error"].as_str())
                .map(str::to_owned)
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("max_http_response_body_bytes (3)")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("max_http_requests (2)")),
        "{reasons:?}"
    );
    // A third tenant without a config keeps the defaults: three requests go.
    let out = env.run_ok(
        &manifest,
        "globex",
        &format!("headers 0 {url}\nheaders 0 {url}\nheaders 0 {url}\n"),
    );
    assert_eq!(out.matches("ok status 200 body hello").count(), 3, "{out}");
}

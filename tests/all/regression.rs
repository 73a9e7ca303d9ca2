//! Inputs that once broke a promise, each pinned by the behaviour that is
//! right. Found by an adversarial review of the first version.

use crate::harness::{Env, assert_one_line_error, stderr};

// A 300 KB agent error message went unbounded into the finish event; the
// next open of the log then refused it as "damaged" for good.
#[test]
fn a_huge_agent_error_message_is_cut_and_the_tenant_keeps_running() {
    let env = Env::new();
    let out = env.run(
        &env.probe(),
        "acme",
        &format!("fail {}\n", "A".repeat(300_000)),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).len() < 5000, "{}", stderr(&out).len());
    assert!(stderr(&out).contains("[cut: 300000 bytes]"));
    env.run_ok(&env.probe(), "acme", "put a/1 x\n");
    assert!(env.verify("acme").status.success());
}

// Guest text with a carriage return or an escape sequence reached the
// operator's terminal raw and could forge a second line.
#[test]
fn guest_text_cannot_forge_lines_on_the_operators_terminal() {
    let env = Env::new();
    let out = env.run(&env.probe(), "acme", "zzz\rerror: forged\u{1b}[2K\n");
    assert_one_line_error(&out, "unknown command: zzz\\rerror: forged\\u{1b}[2K");
    env.run_ok(&env.probe(), "acme", "decide inv\u{202e}1 approve fine\n");
    let show = env
        .warden()
        .args(["audit", "show", "--tenant", "acme"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("inv\\u{202e}1"), "{text}");
    assert!(!text.contains('\u{1b}') && !text.contains('\r'));
}

// An unbounded or multi-line --actor was recorded in every event.
#[test]
fn a_bad_actor_is_refused_before_anything_runs() {
    let env = Env::new();
    for actor in ["bob\nroot", &"a".repeat(200), "a\u{202e}b"] {
        let out = env
            .warden()
            .arg("run")
            .arg(env.probe())
            .args(["--tenant", "acme", "--input", "-", "--actor", actor])
            .output()
            .unwrap();
        assert_one_line_error(&out, "--actor: actor");
        assert!(!env.data_dir().exists());
    }
}

// A guest looping on refused calls wrote one audit event per call until its
// CPU deadline: tens of thousands of events.
#[test]
fn a_guest_that_keeps_calling_past_the_cap_is_trapped() {
    let env = Env::new();
    // A lower cap and a long wall clock: every call is synced to disk, and
    // on a busy machine 10,000 syncs can outlast the default wall_timeout,
    // which would end the run before the cap is reached.
    env.tenant_config(
        "acme",
        "[limits]\nmax_host_calls = 1000\nwall_timeout = \"120s\"\n",
    );
    let out = env.run(&env.probe(), "acme", "hammer 50000 a/x\n");
    assert_one_line_error(&out, "max_host_calls reached");
    let events = env.events("acme");
    let denied = events
        .iter()
        .filter(|e| e["body"]["decision"] == "deny")
        .count();
    assert_eq!(denied, 16, "refusals recorded before the trap");
    assert!(
        events
            .iter()
            .any(|e| e["body"]["type"] == "limit-hit" && e["body"]["limit"] == "max_host_calls")
    );
}

// Many short stdout lines became one audit event each, and a full capture
// trapped the guest with no limit named.
#[test]
fn std_stream_lines_are_bounded_and_a_full_capture_is_a_limit_hit() {
    let env = Env::new();
    env.run_ok(&env.probe(), "acme", "print-lines 1000\n");
    let lines: Vec<_> = env
        .events("acme")
        .into_iter()
        .filter(|e| e["body"]["type"] == "stream-line")
        .collect();
    assert_eq!(lines.len(), 257, "256 lines and one summary");
    let summary = lines.last().unwrap()["body"]["line"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(summary.starts_with("[744 more lines,"), "{summary}");

    let out = env.run(&env.probe(), "globex", "print-lines 20000\n");
    assert_one_line_error(&out, "after filling its std stream capture");
    assert!(
        env.events("globex")
            .iter()
            .any(|e| e["body"]["type"] == "limit-hit" && e["body"]["limit"] == "max_stream_bytes")
    );
}

// Pending writes were bounded only by max_stored_bytes, in host memory.
#[test]
fn pending_writes_are_bounded_per_invocation() {
    let env = Env::new();
    env.tenant_config("acme", "[limits]\nmax_write_bytes = 4096\n");
    let out = env.run_ok(&env.probe(), "acme", "put-big a/1 3000\nput-big a/2 3000\n");
    assert!(out.contains("put-big a/1 3000 -> ok"), "{out}");
    assert!(
        out.contains("put-big a/2 3000 -> err limit-reached: invocation would hold"),
        "{out}"
    );
}

// `component = "/dev/zero"` read until memory ran out.
#[test]
fn operator_files_must_be_regular_files() {
    let env = Env::new();
    let manifest = env.manifest("zero", "/dev/zero", &[]);
    let out = env.run(&manifest, "acme", "x\n");
    assert_one_line_error(&out, "not a regular file");
}

// Concurrent commits of different tenants from separate processes failed
// with "database is locked" instead of waiting their turn.
#[test]
fn concurrent_processes_of_different_tenants_all_commit() {
    let env = Env::new();
    let probe = env.probe();
    // Allowed one after another first: what runs at once is the four runs.
    for tenant in ["ta", "tb", "tc", "td"] {
        let out = env.agents(&["allow", probe.to_str().unwrap(), "--tenant", tenant]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let children: Vec<_> = ["ta", "tb", "tc", "td"]
        .iter()
        .map(|tenant| {
            let input = env.dir.path().join(format!("{tenant}.txt"));
            std::fs::write(&input, "fill a/many 300\n").unwrap();
            env.warden_unwrapped()
                .arg("run")
                .arg(&probe)
                .args(["--tenant", tenant, "--input"])
                .arg(&input)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

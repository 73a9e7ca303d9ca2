//! Editing, removing or reordering audit events makes `warden audit verify`
//! fail and name the first bad event.

use crate::harness::{Env, stderr, stdout};

/// An env whose acme log holds a few invocations' worth of events.
fn logged() -> (Env, Vec<String>) {
    let env = Env::new();
    let probe = env.probe();
    for i in 0..3 {
        env.run_ok(&probe, "acme", &format!("put a/{i} v{i}\nget a/{i}\n"));
    }
    let text = std::fs::read_to_string(env.log_path("acme")).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 10, "{}", lines.len());
    (env, lines)
}

fn write_lines(env: &Env, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(env.log_path("acme"), text).unwrap();
}

#[test]
fn untouched_log_verifies_and_counts_its_events() {
    let (env, lines) = logged();
    let out = env.verify("acme");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("{} events", lines.len())),
        "{}",
        stdout(&out)
    );
}

#[test]
fn one_edited_byte_is_named() {
    let (env, mut lines) = logged();
    // Change one digit of event 5's timestamp.
    let line = &mut lines[4];
    let at = line
        .find("\"time_unix_ms\":")
        .expect("every event has a time")
        + 15;
    let digit = if &line[at..=at] == "1" { "2" } else { "1" };
    line.replace_range(at..=at, digit);
    write_lines(&env, &lines);
    let out = env.verify("acme");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("event 5 ") && err.contains("edited"), "{err}");
}

#[test]
fn a_deleted_event_is_named() {
    let (env, mut lines) = logged();
    lines.remove(3);
    write_lines(&env, &lines);
    let err = stderr(&env.verify("acme"));
    assert!(err.contains("event 4 ") && err.contains("removed"), "{err}");
}

#[test]
fn swapped_events_are_named() {
    let (env, mut lines) = logged();
    lines.swap(6, 7);
    write_lines(&env, &lines);
    let err = stderr(&env.verify("acme"));
    assert!(
        err.contains("event 7 ") && err.contains("reordered"),
        "{err}"
    );
}

#[test]
fn an_event_copied_from_another_tenant_is_named() {
    let (env, lines) = logged();
    // globex's log rebuilt from acme's lines fails on the first one.
    std::fs::write(env.log_path("globex"), lines.join("\n") + "\n").unwrap();
    let err = stderr(&env.verify("globex"));
    assert!(
        err.contains("event 1 ") && err.contains("another log"),
        "{err}"
    );
}

#[test]
fn a_torn_last_line_is_named_and_blocks_appends() {
    let (env, lines) = logged();
    let mut text = lines.join("\n") + "\n";
    text.push_str(&lines[0][..20]);
    std::fs::write(env.log_path("acme"), &text).unwrap();
    let err = stderr(&env.verify("acme"));
    assert!(err.contains(&format!("event {} ", lines.len() + 1)) && err.contains("cut off"));
    // Appending after a damaged tail would hide the damage; the run refuses.
    let out = env.run(&env.probe(), "acme", "get a/0\n");
    crate::harness::assert_one_line_error(&out, "last record is damaged");
}

#[test]
fn verifying_a_tenant_with_no_log_fails_clearly() {
    let env = Env::new();
    crate::harness::assert_one_line_error(&env.verify("nobody"), "no audit log for tenant nobody");
}

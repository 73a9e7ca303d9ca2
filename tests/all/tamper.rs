//! Tampering with the files the runtime wrote makes `warden audit verify`
//! fail and name what is wrong and where: an edited, removed, reordered,
//! duplicated or copied event, a torn or cut-off tail, a deleted log, and a
//! log rebuilt without the signing key.

use std::path::Path;

use crate::harness::{Env, assert_one_line_error, stderr, stdout};

/// An env whose acme log holds a few invocations' worth of events, each
/// invocation's end covered by a shutdown checkpoint.
fn logged() -> (Env, Vec<String>) {
    let env = Env::new();
    let probe = env.probe();
    for i in 0..3 {
        env.run_ok(&probe, "acme", &format!("put a/{i} v{i}\nget a/{i}\n"));
    }
    let lines = read_lines(&env.segment("acme"));
    assert!(lines.len() >= 10, "{}", lines.len());
    (env, lines)
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// Runs verify with `extra` and expects a one-line failure naming `want`.
fn fails(env: &Env, extra: &[&str], want: &[&str]) -> String {
    let out = env.verify_with("acme", extra);
    let err = stderr(&out);
    assert!(!stdout(&out).contains("verified"), "{}", stdout(&out));
    assert_one_line_error(&out, want[0]);
    for w in want {
        assert!(err.contains(w), "{err:?} does not mention {w:?}");
    }
    err
}

#[test]
fn untouched_log_verifies_and_counts_its_events() {
    let (env, lines) = logged();
    let out = env.verify("acme");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("{} events", lines.len())), "{text}");
    assert!(text.contains("checkpoints signed by key"), "{text}");
}

#[test]
fn one_edited_byte_is_named() {
    let (env, mut lines) = logged();
    // Change one digit of event 3's timestamp (inside an invocation, so the
    // next event's link names it before any checkpoint root is compared).
    let line = &mut lines[2];
    let at = line
        .find("\"time_unix_ms\":")
        .expect("every event has a time")
        + 15;
    let digit = if &line[at..=at] == "1" { "2" } else { "1" };
    line.replace_range(at..=at, digit);
    write_lines(&env.segment("acme"), &lines);
    fails(&env, &[], &["event 3 ", "edited"]);
}

#[test]
fn an_edited_last_event_is_caught_by_the_signed_root() {
    let (env, mut lines) = logged();
    // No later record links to the last one; the checkpoint root does.
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("\"outcome\":\"ok\"", "\"outcome\":\"failed\"");
    write_lines(&env.segment("acme"), &lines);
    fails(
        &env,
        &[],
        &["do not hash to the root signed in checkpoint", "edited"],
    );
}

#[test]
fn a_deleted_event_is_named() {
    let (env, mut lines) = logged();
    lines.remove(3);
    write_lines(&env.segment("acme"), &lines);
    fails(&env, &[], &["event 4 ", "removed"]);
}

#[test]
fn swapped_events_are_named() {
    let (env, mut lines) = logged();
    lines.swap(6, 7);
    write_lines(&env.segment("acme"), &lines);
    fails(&env, &[], &["event 7 ", "reordered"]);
}

#[test]
fn a_duplicated_event_is_named() {
    let (env, mut lines) = logged();
    let copy = lines[4].clone();
    lines.insert(5, copy);
    write_lines(&env.segment("acme"), &lines);
    fails(&env, &[], &["event 6 ", "duplicated"]);
}

#[test]
fn an_event_copied_from_another_tenant_is_named() {
    let (env, lines) = logged();
    env.run_ok(&env.probe(), "globex", "get a/x\n");
    // globex's log rebuilt from acme's lines fails on the first one.
    write_lines(&env.segment("globex"), &lines);
    let err = stderr(&env.verify("globex"));
    assert!(
        err.contains("event 1 ") && err.contains("another log"),
        "{err}"
    );
}

#[test]
fn a_torn_last_record_is_named_then_cut_and_recorded_on_the_next_start() {
    let (env, lines) = logged();
    let mut text = lines.join("\n") + "\n";
    text.push_str(&lines[0][..20]);
    std::fs::write(env.segment("acme"), &text).unwrap();
    fails(
        &env,
        &[],
        &[&format!("event {} ", lines.len() + 1), "cut off"],
    );

    // What a crash during a write leaves: the next start cuts the partial
    // record, records that it did, and goes on.
    env.run_ok(&env.probe(), "acme", "get a/0\n");
    let events = env.events("acme");
    let recovery = events
        .iter()
        .find(|e| e["body"]["type"] == "log-recovered")
        .expect("a recovery event");
    assert_eq!(recovery["body"]["cut_bytes"], 20);
    assert_eq!(recovery["body"]["cut_seq"], lines.len() as u64 + 1);
    assert_eq!(recovery["actor"], "warden");
    let out = env.verify("acme");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_cut_off_tail_is_named_by_the_stored_checkpoints() {
    let (env, mut lines) = logged();
    let n = lines.len();
    lines.truncate(n - 2);
    write_lines(&env.segment("acme"), &lines);
    fails(
        &env,
        &[],
        &[
            &format!("the log ends at event {}", n - 2),
            &format!("covers {n} events"),
            "cut off",
        ],
    );
    // And the runtime refuses to append after signed events went missing.
    let out = env.run(&env.probe(), "acme", "get a/0\n");
    assert_one_line_error(&out, "events were cut off");
}

#[test]
fn a_cut_off_tail_with_its_checkpoints_rewritten_is_caught_by_a_saved_checkpoint() {
    let (env, mut lines) = logged();
    let saved = env.save("cp.json", &["checkpoint", "--tenant", "acme"]);
    let n = lines.len();
    lines.truncate(n - 3);
    write_lines(&env.segment("acme"), &lines);
    // Whoever cut the tail also threw away the checkpoints that named it.
    std::fs::remove_file(env.log_dir("acme").join("checkpoints.jsonl")).unwrap();
    fails(
        &env,
        &["--checkpoint", saved.to_str().unwrap()],
        &["checkpoint file", "cut off"],
    );
}

#[test]
fn a_deleted_whole_log_is_named_by_a_saved_checkpoint() {
    let (env, lines) = logged();
    let saved = env.save("cp.json", &["checkpoint", "--tenant", "acme"]);
    std::fs::remove_dir_all(env.log_dir("acme")).unwrap();
    fails(
        &env,
        &["--checkpoint", saved.to_str().unwrap()],
        &[
            "no audit log for tenant acme",
            &format!("covers {} events", lines.len()),
            "the whole log was deleted",
        ],
    );
}

#[test]
fn a_log_rebuilt_without_the_signing_key_fails_against_the_saved_public_key() {
    let (env, _) = logged();
    let public = env.save("key.pub", &["public-key"]);
    let saved = env.save("cp.json", &["checkpoint", "--tenant", "acme"]);

    // The log and the key are thrown away and a new, self-consistent log is
    // made with a new key: it verifies against itself... The control-plane
    // log goes too, since its checkpoints name the old key and every
    // `warden` command that records in it would refuse to go on.
    std::fs::remove_dir_all(env.log_dir("acme")).unwrap();
    std::fs::remove_dir_all(env.data_dir().join("audit/_control")).unwrap();
    std::fs::remove_dir_all(env.data_dir().join("keys")).unwrap();
    for i in 0..3 {
        env.run_ok(&env.probe(), "acme", &format!("put a/{i} forged\n"));
    }
    assert!(env.verify("acme").status.success());

    // ...but not against the key the auditor kept, nor their checkpoint.
    let public = public.to_str().unwrap();
    fails(
        &env,
        &["--public-key", public],
        &["checkpoint 1 in", "checkpoints.jsonl", "was signed by key"],
    );
    fails(
        &env,
        &[
            "--public-key",
            public,
            "--checkpoint",
            saved.to_str().unwrap(),
        ],
        &["checkpoint", "signed by key"],
    );
}

#[test]
fn a_log_rewritten_with_the_key_does_not_extend_a_saved_checkpoint() {
    let (env, _) = logged();
    let saved = env.save("cp.json", &["checkpoint", "--tenant", "acme"]);
    // Even the holder of the key cannot change history behind a checkpoint
    // someone else kept: the rewritten log signs, but forks.
    std::fs::remove_dir_all(env.log_dir("acme")).unwrap();
    for i in 0..4 {
        env.run_ok(
            &env.probe(),
            "acme",
            &format!("put a/{i} other\nget a/{i}\n"),
        );
    }
    assert!(env.verify("acme").status.success());
    fails(
        &env,
        &["--checkpoint", saved.to_str().unwrap()],
        &["do not hash to the root signed in checkpoint file"],
    );
}

#[test]
fn verifying_a_tenant_with_no_log_fails_clearly() {
    let env = Env::new();
    assert_one_line_error(&env.verify("nobody"), "no audit log for tenant nobody");
}

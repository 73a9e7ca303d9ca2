//! `warden audit checkpoint|prove|export|verify-export|public-key|prune` as
//! an operator and an auditor use them, and their answers to bad input.

use std::path::Path;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use warden_runtime::audit::{
    Checkpoint, PublicKey,
    proof::{ConsistencyProof, InclusionProof},
};

use crate::harness::{Env, assert_one_line_error, stderr, stdout};

fn with_events(runs: usize) -> Env {
    let env = Env::new();
    let probe = env.probe();
    for i in 0..runs {
        env.run_ok(&probe, "acme", &format!("put a/{i} v{i}\nget a/{i}\n"));
    }
    env
}

fn public_key(env: &Env) -> PublicKey {
    PublicKey::parse(&env.audit_ok(&["public-key"])).expect("a public key line")
}

fn segment_lines(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.segment("acme"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_printed_checkpoint_is_signed_and_the_log_verifies_against_it() {
    let env = with_events(2);
    let text = env.audit_ok(&["checkpoint", "--tenant", "acme"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    let checkpoint: Checkpoint = serde_json::from_str(&text).unwrap();
    assert_eq!(checkpoint.stream, "acme");
    assert_eq!(checkpoint.tree_size, segment_lines(&env).len() as u64);
    assert_eq!(checkpoint.verify(&public_key(&env)), Ok(()));

    let saved = env.save("cp.json", &["checkpoint", "--tenant", "acme"]);
    let key = env.save("key.pub", &["public-key"]);
    env.run_ok(&env.probe(), "acme", "get a/0\n");
    let out = env.verify_with(
        "acme",
        &[
            "--checkpoint",
            saved.to_str().unwrap(),
            "--public-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "extends the given checkpoint of {} events",
            checkpoint.tree_size
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_signing_key_is_private_to_its_owner() {
    let env = with_events(1);
    let key = env.data_dir().join("keys/audit-signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // The public key printed is the one stored beside it.
    let stored = std::fs::read_to_string(env.data_dir().join("keys/audit-signing.pub")).unwrap();
    assert_eq!(env.audit_ok(&["public-key"]), stored);
}

#[test]
fn an_inclusion_proof_checks_against_the_signed_root_and_the_stored_bytes() {
    let env = with_events(3);
    let text = env.audit_ok(&["prove", "--tenant", "acme", "--event", "5"]);
    let proof: InclusionProof = serde_json::from_str(&text).unwrap();
    assert!(proof.verify(), "{text}");
    assert_eq!(proof.checkpoint.verify(&public_key(&env)), Ok(()));

    // The leaf is SHA-256(0x00 || the stored line), computed from the file
    // with nothing but sha256, as an auditor in any language would.
    let line = &segment_lines(&env)[4];
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(line.as_bytes());
    assert_eq!(proof.leaf_hash, hex::encode(h.finalize()));
}

#[test]
fn a_consistency_proof_links_an_old_checkpoint_to_the_new_one() {
    let env = with_events(1);
    let old: Checkpoint =
        serde_json::from_str(&env.audit_ok(&["checkpoint", "--tenant", "acme"])).unwrap();
    env.run_ok(&env.probe(), "acme", "put a/9 later\n");
    let size = old.tree_size.to_string();
    let text = env.audit_ok(&["prove", "--tenant", "acme", "--old-size", &size]);
    let proof: ConsistencyProof = serde_json::from_str(&text).unwrap();
    assert_eq!(proof.old_root, old.root_hash);
    assert!(proof.checkpoint.tree_size > old.tree_size);
    assert!(proof.verify(), "{text}");
}

#[test]
fn reading_a_log_is_recorded_in_the_control_plane_stream_with_the_actor() {
    let env = with_events(1);
    env.audit_ok(&["show", "--tenant", "acme", "--actor", "alice@auditor"]);
    env.audit_ok(&["verify", "--tenant", "acme", "--actor", "bob"]);
    let lines = env.audit_ok(&["show", "--control", "--json", "--actor", "carol"]);
    // The control stream also holds the harness's `agents allow`.
    let reads: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .filter(|e| e["body"]["type"] != "control-change")
        .collect();
    let who: Vec<(&str, &str, &str)> = reads
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["body"]["action"].as_str().unwrap(),
                e["body"]["stream"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("alice@auditor", "show", "acme"),
            ("bob", "verify", "acme"),
            ("carol", "show", "_control"),
        ]
    );
    assert!(reads.iter().all(|e| e["body"]["type"] == "audit-read"));
    assert_eq!(reads[0]["tenant"], "acme");
    // The tenant's own stream holds no trace of who read it.
    assert!(
        env.events("acme")
            .iter()
            .all(|e| e["body"]["type"] != "audit-read")
    );
    let out = env.audit(&["verify", "--control"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_export_verifies_alone_and_an_edited_export_does_not() {
    let env = with_events(2);
    let key = env.save("key.pub", &["public-key"]);
    let key = key.to_str().unwrap();
    let dir = env.dir.path().join("export");
    let out = env.audit_ok(&[
        "export",
        "--tenant",
        "acme",
        "--since",
        "1h",
        "--output",
        dir.to_str().unwrap(),
    ]);
    let n = segment_lines(&env).len();
    assert!(
        out.contains(&format!("exported {n} events (1..{n})")),
        "{out}"
    );

    // The auditor's side: the export directory and the public key only.
    let moved = env.dir.path().join("elsewhere");
    std::fs::rename(&dir, &moved).unwrap();
    let moved = moved.to_str().unwrap();
    let ok = env.audit_ok(&["verify-export", moved, "--public-key", key]);
    assert!(ok.contains(&format!("{n} events (1..{n})")), "{ok}");

    let events = Path::new(moved).join("events.jsonl");
    let text = std::fs::read_to_string(&events).unwrap();
    std::fs::write(&events, text.replacen("\"a/0\"", "\"a/X\"", 1)).unwrap();
    let out = env.audit(&["verify-export", moved, "--public-key", key]);
    assert_one_line_error(&out, "is not in the signed log");
    assert!(!stdout(&out).contains("verified"));
}

#[test]
fn an_export_of_a_time_range_holds_only_that_range() {
    let env = with_events(1);
    let dir = env.dir.path().join("old");
    let out = env.audit_ok(&[
        "export",
        "--tenant",
        "acme",
        "--since",
        "2001-01-01",
        "--until",
        "2001-01-02",
        "--output",
        dir.to_str().unwrap(),
    ]);
    assert!(out.contains("exported no events"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.join("events.jsonl")).unwrap(),
        ""
    );
}

#[test]
fn retention_removes_whole_segments_and_the_rest_still_verifies() {
    let env = with_events(2);
    let key = env.save("key.pub", &["public-key"]);
    let before = segment_lines(&env).len() as u64;
    let out = env.audit_ok(&["prune", "--tenant", "acme", "--retention", "0s"]);
    assert!(
        out.contains(&format!("removed events 1..{before}")),
        "{out}"
    );
    assert!(!env.segment("acme").exists());

    // The removal is an event of its own, and a signed record beside the
    // log keeps what the tree needs.
    let events = env.events("acme");
    let removal = &events[0];
    assert_eq!(removal["body"]["type"], "retention-removed");
    assert_eq!(removal["body"]["last_seq"], before);
    env.run_ok(&env.probe(), "acme", "get a/0\n");

    let out = env.verify_with("acme", &["--public-key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("events 1..{before} removed by retention")),
        "{}",
        stdout(&out)
    );
    let after = (before + 2).to_string();
    let proof: InclusionProof =
        serde_json::from_str(&env.audit_ok(&["prove", "--tenant", "acme", "--event", &after]))
            .unwrap();
    assert!(proof.verify());
    let out = env.audit(&["prove", "--tenant", "acme", "--event", "1"]);
    assert_one_line_error(&out, "removed by retention");

    // A forged retention record (here: claiming fewer removed events) is
    // refused by its signature.
    let record = env.log_dir("acme").join("retention.jsonl");
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(
        &record,
        text.replace("\"retention\":\"0s\"", "\"retention\":\"1s\""),
    )
    .unwrap();
    assert_one_line_error(&env.verify("acme"), "retention record 1");
}

#[test]
fn bad_checkpoint_and_key_files_get_one_line_naming_the_file() {
    let env = with_events(1);
    let saved = env.save("cp.json", &["checkpoint", "--tenant", "acme"]);
    let corrupt = env.dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{\"stream\":\"acme\",").unwrap();
    let corrupt = corrupt.to_str().unwrap();
    let out = env.verify_with("acme", &["--checkpoint", corrupt]);
    assert_one_line_error(
        &out,
        &format!("checkpoint file {corrupt} is not a warden checkpoint"),
    );

    // A checkpoint edited to claim a different size fails its signature.
    let altered = env.dir.path().join("altered.json");
    let text = std::fs::read_to_string(&saved).unwrap();
    let size = serde_json::from_str::<Checkpoint>(&text).unwrap().tree_size;
    std::fs::write(
        &altered,
        text.replace(
            &format!("\"tree_size\":{size}"),
            &format!("\"tree_size\":{}", size - 1),
        ),
    )
    .unwrap();
    let out = env.verify_with("acme", &["--checkpoint", altered.to_str().unwrap()]);
    assert_one_line_error(&out, "signature that does not match its fields");

    let missing = env.dir.path().join("missing.json");
    let out = env.verify_with("acme", &["--checkpoint", missing.to_str().unwrap()]);
    assert_one_line_error(&out, "cannot read checkpoint file");

    // Someone else's valid key.
    let other = env.dir.path().join("other.pub");
    std::fs::write(
        &other,
        format!(
            "ed25519 {}\n",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        ),
    )
    .unwrap();
    let out = env.verify_with("acme", &["--public-key", other.to_str().unwrap()]);
    assert_one_line_error(&out, "was signed by key");
    assert!(stderr(&out).contains("checkpoints.jsonl"));

    let garbled = env.dir.path().join("garbled.pub");
    std::fs::write(&garbled, "not a key\n").unwrap();
    let garbled = garbled.to_str().unwrap();
    let out = env.verify_with("acme", &["--public-key", garbled]);
    assert_one_line_error(
        &out,
        &format!("key file {garbled} is not a warden audit key"),
    );
}

#[test]
fn a_directory_that_is_not_a_warden_log_is_refused_by_name() {
    let env = Env::new();
    let dir = env.log_dir("acme");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    let want = format!("{} is not a warden audit log", dir.display());
    assert_one_line_error(&env.verify("acme"), &want);
    assert_one_line_error(&env.audit(&["show", "--tenant", "acme"]), &want);
    let out = env.run(&env.probe(), "acme", "get a/0\n");
    assert_one_line_error(&out, &want);
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn a_sequence_number_beyond_the_end_is_named() {
    let env = with_events(1);
    let n = segment_lines(&env).len();
    for seq in [n + 1, 1_000_000] {
        let out = env.audit(&["prove", "--tenant", "acme", "--event", &seq.to_string()]);
        assert_one_line_error(
            &out,
            &format!("event {seq} is not in the log of acme: it holds events 1..{n}"),
        );
    }
    let out = env.audit(&["prove", "--tenant", "acme", "--event", "0"]);
    assert_one_line_error(&out, "event 0 is not in the log");
    let out = env.audit(&["prove", "--tenant", "acme", "--old-size", "99999"]);
    assert_one_line_error(&out, "old size 99999");
    let out = env.audit(&["prove", "--tenant", "acme", "--event", "-3"]);
    assert!(!out.status.success());
    assert!(!stderr(&out).contains("panicked"));
}

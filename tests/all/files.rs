//! The files capability: `wasi:filesystem` over granted directories of the
//! tenant's files directory, driven through the real binary with the
//! `files` guest writing real files.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::harness::{Env, assert_one_line_error, stderr, stdout};

/// An env whose agent has `inbox` read-only and `outbox` read-write.
struct Files {
    env: Env,
    manifest: PathBuf,
}

impl Files {
    fn new() -> Self {
        let env = Env::new();
        let manifest = manifest(
            &env,
            "files",
            &[("inbox", "read"), ("outbox", "read-write")],
        );
        Self { env, manifest }
    }

    /// `tenant`'s files directory.
    fn dir(&self, tenant: &str) -> PathBuf {
        self.env.data_dir().join("files").join(tenant)
    }

    /// Writes `text` at `path` under `tenant`'s files directory.
    fn put(&self, tenant: &str, path: &str, text: &str) {
        let path = self.dir(tenant).join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Runs the script for `tenant`; returns each command's result by
    /// command.
    fn run(&self, tenant: &str, script: &str) -> BTreeMap<String, String> {
        let out = self.env.run_ok(&self.manifest, tenant, script);
        results(&out)
    }

    /// `tenant`'s host-call events on `wasi:filesystem/types`.
    fn fs_events(&self, tenant: &str) -> Vec<Value> {
        self.env
            .events(tenant)
            .into_iter()
            .filter(|e| {
                e["body"]["type"] == "host-call"
                    && e["body"]["interface"] == "wasi:filesystem/types"
            })
            .collect()
    }
}

fn manifest(env: &Env, name: &str, grants: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "name = {name:?}\ncomponent = {:?}\n",
        warden_test_programs::FILES
    );
    for (path, access) in grants {
        text.push_str(&format!(
            "\n[[grants.files]]\npath = {path:?}\naccess = {access:?}\n"
        ));
    }
    let path = env.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn results(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(" -> "))
        .map(|(c, r)| (c.to_owned(), r.to_owned()))
        .collect()
}

/// Events whose resource contains `token`, split into (allowed, refused).
fn by_token<'a>(events: &'a [Value], token: &str) -> (Vec<&'a Value>, Vec<&'a Value>) {
    events
        .iter()
        .filter(|e| e["body"]["resource"].as_str().unwrap_or("").contains(token))
        .partition(|e| e["body"]["decision"] == "allow")
}

/// Every file under `dir` with its contents, to show nothing changed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            } else {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(path, target.into_os_string().into_encoded_bytes());
            }
        }
    }
    out
}

#[test]
fn reads_and_writes_granted_directories() {
    let f = Files::new();
    f.put("acme", "inbox/a.txt", "hello");
    let r = f.run(
        "acme",
        "read /inbox/a.txt\nls /inbox\nwrite /outbox/b.txt hi there\nappend /outbox/b.txt !\n\
         read /outbox/b.txt\nmkdir /outbox/d\nrename /outbox/b.txt /outbox/d/c.txt\n\
         write /outbox/gone.txt x\nrm /outbox/gone.txt\n",
    );
    assert_eq!(r["read /inbox/a.txt"], "ok hello");
    assert_eq!(r["ls /inbox"], "ok [a.txt]");
    assert_eq!(r["write /outbox/b.txt hi there"], "ok");
    assert_eq!(r["read /outbox/b.txt"], "ok hi there!");
    assert_eq!(r["rename /outbox/b.txt /outbox/d/c.txt"], "ok");
    assert_eq!(r["rm /outbox/gone.txt"], "ok");
    assert_eq!(
        std::fs::read_to_string(f.dir("acme").join("outbox/d/c.txt")).unwrap(),
        "hi there!"
    );
    assert!(!f.dir("acme").join("outbox/gone.txt").exists());

    let events = f.fs_events("acme");
    let find = |function: &str, resource: &str| {
        events
            .iter()
            .filter(|e| e["body"]["function"] == function && e["body"]["resource"] == resource)
            .collect::<Vec<_>>()
    };
    let open = find("open-at", "/inbox/a.txt");
    assert_eq!(open.len(), 1, "{events:#?}");
    assert_eq!(open[0]["body"]["decision"], "allow");
    assert_eq!(open[0]["body"]["reason"], "files grant \"inbox\" (read)");
    assert_eq!(
        find("rename-at", "/outbox/b.txt -> /outbox/d/c.txt").len(),
        1
    );
    assert_eq!(find("unlink-file-at", "/outbox/gone.txt").len(), 1);
    assert_eq!(find("create-directory-at", "/outbox/d").len(), 1);
    let written: Vec<_> = find("output-stream.write", "/outbox/b.txt");
    let reasons: Vec<&str> = written
        .iter()
        .map(|e| e["body"]["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"8 bytes written"), "{reasons:?}");
    assert!(reasons.contains(&"1 bytes written"), "{reasons:?}");
    assert!(f.env.verify("acme").status.success());
}

#[test]
fn refuses_writes_and_paths_outside_the_grant() {
    let f = Files::new();
    f.put("acme", "inbox/a.txt", "hello");
    f.put("acme", "private/p.txt", "not granted");
    let before = snapshot(&f.dir("acme"));
    let r = f.run(
        "acme",
        "write /inbox/new-ro.txt x\nrm /inbox/a.txt\nmkdir /inbox/dir-ro\n\
         read /inbox/../private/p.txt\nread /private/p.txt\n",
    );
    for cmd in [
        "write /inbox/new-ro.txt x",
        "rm /inbox/a.txt",
        "mkdir /inbox/dir-ro",
        "read /inbox/../private/p.txt",
    ] {
        assert_eq!(r[cmd], "err PermissionDenied", "{cmd}");
    }
    // No preopen is named /private: the guest's libc refuses it without
    // asking the host, so there is nothing to record.
    assert!(r["read /private/p.txt"].starts_with("err "), "{r:?}");
    assert_eq!(snapshot(&f.dir("acme")), before);

    let events = f.fs_events("acme");
    for (token, reason) in [
        ("new-ro", "files grant \"inbox\" is read-only"),
        ("/inbox/a.txt", "files grant \"inbox\" is read-only"),
        ("dir-ro", "files grant \"inbox\" is read-only"),
        ("private/p.txt", "path leads above the directory"),
    ] {
        let (_, denied) = by_token(&events, token);
        assert_eq!(denied.len(), 1, "{token}: {events:#?}");
        let got = denied[0]["body"]["reason"].as_str().unwrap();
        assert!(got.starts_with(reason), "{token}: {got}");
        assert_eq!(denied[0]["body"]["blame"], "guest");
    }
}

#[test]
fn a_tenant_cannot_reach_another_tenants_files() {
    let f = Files::new();
    f.put("globex", "inbox/secret.txt", "globex secret");
    let r = f.run("globex", "read /inbox/secret.txt\n");
    assert_eq!(r["read /inbox/secret.txt"], "ok globex secret");
    let globex_before = snapshot(&f.dir("globex"));
    let globex_events = f.env.events("globex").len();

    let secret = f.dir("globex").join("inbox/secret.txt");
    std::fs::create_dir_all(f.dir("acme").join("inbox")).unwrap();
    std::os::unix::fs::symlink(&secret, f.dir("acme").join("inbox/to-globex")).unwrap();
    let abs = secret.display().to_string();
    let script = format!(
        "read /inbox/../../globex/inbox/secret.txt\n\
         raw-open /inbox ../../globex/inbox/secret.txt\n\
         raw-open /inbox {abs}\n\
         write /outbox/../../globex/inbox/secret.txt pwned\n\
         read /inbox/to-globex\n\
         read /globex/inbox/secret.txt\n\
         read {abs}\n"
    );
    let r = f.run("acme", &script);
    for (cmd, want) in [
        (
            "read /inbox/../../globex/inbox/secret.txt",
            "err PermissionDenied",
        ),
        (
            "raw-open /inbox ../../globex/inbox/secret.txt",
            "err not-permitted",
        ),
        (&format!("raw-open /inbox {abs}")[..], "err not-permitted"),
        (
            "write /outbox/../../globex/inbox/secret.txt pwned",
            "err PermissionDenied",
        ),
        ("read /inbox/to-globex", "err PermissionDenied"),
    ] {
        assert_eq!(r[cmd], want, "{cmd}: {r:?}");
    }
    // Paths that name no preopen fail inside the guest.
    for cmd in ["read /globex/inbox/secret.txt", &format!("read {abs}")[..]] {
        assert!(r[cmd].starts_with("err "), "{cmd}: {r:?}");
    }

    assert_eq!(snapshot(&f.dir("globex")), globex_before);
    assert_eq!(f.env.events("globex").len(), globex_events);
    let events = f.fs_events("acme");
    let (allowed, denied) = by_token(&events, "globex");
    assert!(allowed.is_empty(), "{allowed:#?}");
    assert_eq!(denied.len(), 5, "{denied:#?}");
}

/// A write past `max_file_bytes` fails with `file-too-large`. Through
/// `std::fs` the guest sees it as an I/O error (`Uncategorized`): Rust's
/// `std` writes files through the preview 1 adapter, which reports every
/// failed stream write as `EIO`; the raw `wasi:filesystem` write shows the
/// code itself. Growing a file with `set-size` reports `file-too-large`
/// through `std` too.
#[test]
fn a_write_past_max_file_bytes_fails_with_file_too_large() {
    let f = Files::new();
    f.env
        .tenant_config("acme", "[limits]\nmax_file_bytes = 1024\n");
    let r = f.run(
        "acme",
        "fill /outbox/big.txt 2000\nfill /outbox/ok.txt 1024\ngrow /outbox/ok.txt 4096\n\
         append /outbox/ok.txt x\nraw-write /outbox raw.txt 5000\n",
    );
    assert_eq!(r["fill /outbox/big.txt 2000"], "err Uncategorized", "{r:?}");
    assert_eq!(r["fill /outbox/ok.txt 1024"], "ok");
    assert_eq!(r["grow /outbox/ok.txt 4096"], "err FileTooLarge", "{r:?}");
    assert_eq!(r["append /outbox/ok.txt x"], "err Uncategorized", "{r:?}");
    assert_eq!(
        r["raw-write /outbox raw.txt 5000"], "err file-too-large",
        "{r:?}"
    );
    let size = |p: &str| std::fs::metadata(f.dir("acme").join(p)).unwrap().len();
    assert!(size("outbox/big.txt") <= 1024);
    assert_eq!(size("outbox/ok.txt"), 1024);
    assert!(size("outbox/raw.txt") <= 1024);

    let events = f.fs_events("acme");
    for (token, count) in [("big.txt", 1), ("ok.txt", 2), ("raw.txt", 1)] {
        let (_, denied) = by_token(&events, token);
        assert_eq!(denied.len(), count, "{token}: {denied:#?}");
        for d in denied {
            let reason = d["body"]["reason"].as_str().unwrap();
            assert!(reason.contains("over max_file_bytes (1024)"), "{reason}");
        }
    }
}

#[test]
fn byte_at_a_time_writes_are_summed_not_recorded_one_by_one() {
    let f = Files::new();
    let r = f.run("acme", "bytes /outbox/many.txt 500\n");
    assert_eq!(r["bytes /outbox/many.txt 500"], "ok");
    assert_eq!(
        std::fs::metadata(f.dir("acme").join("outbox/many.txt"))
            .unwrap()
            .len(),
        500
    );
    let events = f.fs_events("acme");
    let (allowed, denied) = by_token(&events, "many.txt");
    assert!(denied.is_empty());
    assert!(allowed.len() <= 4, "{allowed:#?}");
    let written: u64 = allowed
        .iter()
        .filter(|e| e["body"]["function"] == "output-stream.write")
        .map(|e| {
            let reason = e["body"]["reason"].as_str().unwrap();
            reason.split(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(written, 500, "{allowed:#?}");
}

/// The escape suite: every way out of a granted directory the issue names.
/// Each attempt fails with a permission error, changes nothing outside,
/// and leaves exactly one refusal event naming it, with the reason.
#[test]
fn escapes_from_granted_directories_fail_and_are_recorded() {
    let f = Files::new();
    let outside = f.env.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let names = [
        "dotdot-root",
        "dotdot-sub",
        "absolute",
        "planted-read",
        "planted-write",
        "planted-rel",
        "made-link",
        "hard",
        "renamed",
    ];
    for name in names {
        std::fs::write(outside.join(format!("{name}.txt")), "outside").unwrap();
    }
    f.put("acme", "inbox/hard-ro.txt", "read only");
    f.put("acme", "inbox/rename-ro.txt", "read only");
    f.put("acme", "inbox/trunc-ro.txt", "read only");
    f.put("acme", "inbox/setlen-ro.txt", "read only");
    f.put("acme", "outbox/mine.txt", "mine");
    let o = |name: &str| outside.join(format!("{name}.txt")).display().to_string();
    let out_dir = f.dir("acme").join("outbox");
    std::os::unix::fs::symlink(o("planted-read"), out_dir.join("planted-read")).unwrap();
    std::os::unix::fs::symlink(o("planted-write"), out_dir.join("planted-write")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../outside/planted-rel.txt",
        out_dir.join("planted-rel"),
    )
    .unwrap();
    // From outbox: acme, files, data, then the test's scratch directory.
    let up = "../../../../outside";
    let before_outside = snapshot(&outside);
    let before_inbox = snapshot(&f.dir("acme").join("inbox"));

    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("read /outbox/{up}/dotdot-root.txt"),
            "dotdot-root",
            "path leads above",
        ),
        (
            format!("read /outbox/sub/../{up}/dotdot-sub.txt"),
            "dotdot-sub",
            "path leads above",
        ),
        (
            format!("raw-open /outbox {}", o("absolute")),
            "absolute",
            "absolute paths are not accepted",
        ),
        (
            "read /outbox/planted-read".into(),
            "planted-read",
            "a symbolic link on the path leads outside",
        ),
        (
            "write /outbox/planted-write pwned".into(),
            "planted-write",
            "a symbolic link on the path leads outside",
        ),
        (
            "read /outbox/planted-rel".into(),
            "planted-rel",
            "a symbolic link on the path leads outside",
        ),
        (
            format!("raw-symlink /outbox {up}/made-link.txt made-link"),
            "made-link",
            "symbolic link target",
        ),
        (
            format!("link /outbox/{up}/hard.txt /outbox/hard-in"),
            "hard.txt",
            "path leads above",
        ),
        (
            "link /inbox/hard-ro.txt /outbox/hard-ro".into(),
            "hard-ro",
            "files grant \"inbox\" is read-only",
        ),
        (
            format!("rename /outbox/mine.txt /outbox/{up}/renamed.txt"),
            "renamed",
            "path leads above",
        ),
        (
            "rename /inbox/rename-ro.txt /outbox/stolen.txt".into(),
            "rename-ro",
            "files grant \"inbox\" is read-only",
        ),
        (
            "truncate /inbox/trunc-ro.txt".into(),
            "trunc-ro",
            "files grant \"inbox\" is read-only",
        ),
        (
            "set-len /inbox/setlen-ro.txt 0".into(),
            "setlen-ro",
            "files grant \"inbox\" is read-only",
        ),
    ];
    let mut script = String::from("mkdir /outbox/sub\n");
    for (cmd, _, _) in &cases {
        script.push_str(cmd);
        script.push('\n');
    }
    let r = f.run("acme", &script);

    let events = f.fs_events("acme");
    for (cmd, token, reason) in &cases {
        let got = &r[cmd];
        assert!(
            got == "err PermissionDenied" || got == "err not-permitted",
            "{cmd}: {got}"
        );
        let (_, denied) = by_token(&events, token);
        assert_eq!(denied.len(), 1, "{cmd}: {denied:#?}");
        let text = denied[0]["body"]["reason"].as_str().unwrap();
        assert!(text.starts_with(reason), "{cmd}: {text}");
    }
    assert_eq!(snapshot(&outside), before_outside);
    assert_eq!(snapshot(&f.dir("acme").join("inbox")), before_inbox);
    assert!(!out_dir.join("made-link").exists());
    assert!(!out_dir.join("hard-in").exists());
    assert!(!out_dir.join("stolen.txt").exists());
    assert_eq!(
        std::fs::read_to_string(out_dir.join("mine.txt")).unwrap(),
        "mine"
    );
    assert!(f.env.verify("acme").status.success());
}

#[test]
fn bad_files_grants_are_refused_at_load_naming_the_entry() {
    let env = Env::new();
    for (grants, want) in [
        (
            &[("../acme", "read")][..],
            "grants.files[0].path \"../acme\"",
        ),
        (
            &[("/etc", "read")][..],
            "grants.files[0].path \"/etc\": path is absolute",
        ),
        (
            &[("", "read")][..],
            "grants.files[0].path \"\": path is empty",
        ),
        (
            &[("in", "read"), ("in", "read-write")][..],
            "grants.files[1].path \"in\" overlaps grants.files[0].path \"in\"",
        ),
        (&[("in", "append")][..], "unknown variant `append`"),
    ] {
        let path = manifest(&env, "bad", grants);
        let out = env.run(&path, "acme", "ls /in\n");
        assert_one_line_error(&out, want);
        assert!(stdout(&out).is_empty(), "{}", stderr(&out));
    }
}

//! One place that builds a data directory, a manifest and a `warden`
//! command, so that each test reads as its scenario.
//!
//! A tenant runs only the agents an operator allowed (`warden agents
//! allow`). Tests about something else should not each repeat that step, so
//! [`Env::warden`] runs the real binary through a small shell wrapper that,
//! before every `warden run MANIFEST --tenant T [--actor A]`, allows that
//! manifest for that tenant as that actor, exactly as an operator would.
//! Tests about approval itself use [`Env::warden_unwrapped`].

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

/// A scratch data directory plus manifests written for the test.
pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("cannot create a temp dir"),
        }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Allows the agent of `manifest` for `tenant`, as `warden agents
    /// allow` does, for tests that run agents in process. The control-plane
    /// log is let go of at once, so that `warden` commands the test runs
    /// afterwards can record in it.
    pub(crate) fn allow(&self, tenant: &str, manifest: &warden_runtime::manifest::Manifest) {
        let tenant = warden_runtime::TenantId::new(tenant).unwrap();
        warden_runtime::ControlPlane::new(self.data_dir())
            .allow_agent(&tenant, manifest, "test")
            .expect("cannot allow the agent");
    }

    /// Writes `tenant`'s configuration file.
    pub(crate) fn tenant_config(&self, tenant: &str, text: &str) {
        let dir = self.data_dir().join("tenants");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{tenant}.toml")), text).unwrap();
    }

    /// A `warden` command using this env's data directory, which allows
    /// the agent of every `run` for its tenant first (see the module docs).
    pub(crate) fn warden(&self) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", ALLOW_THEN_RUN, "warden"])
            .env("WARDEN_BIN", env!("CARGO_BIN_EXE_warden"))
            .env("WARDEN_DATA_DIR", self.data_dir())
            .env_remove("RUST_LOG");
        cmd
    }

    /// A `warden` command using this env's data directory, with nothing
    /// done before it.
    pub(crate) fn warden_unwrapped(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
        cmd.env("WARDEN_DATA_DIR", self.data_dir())
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs `warden agents ARGS...` (unwrapped) and returns its output.
    pub(crate) fn agents(&self, args: &[&str]) -> Output {
        self.warden_unwrapped()
            .arg("agents")
            .args(args)
            .output()
            .expect("run warden")
    }

    /// Writes a manifest named `name` for `component` with `grants`, given
    /// as `(prefix, access)` pairs; returns its path.
    pub(crate) fn manifest(&self, name: &str, component: &str, grants: &[(&str, &str)]) -> PathBuf {
        let mut text = format!("name = {name:?}\ncomponent = {component:?}\n");
        for (prefix, access) in grants {
            text.push_str(&format!(
                "\n[[grants.records]]\nprefix = {prefix:?}\naccess = {access:?}\n"
            ));
        }
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("cannot write manifest");
        path
    }

    /// The probe guest with read-write on `a/` and read on `ro/`.
    pub(crate) fn probe(&self) -> PathBuf {
        self.manifest(
            "probe",
            warden_test_programs::PROBE,
            &[("a/", "read-write"), ("ro/", "read")],
        )
    }

    /// Runs `manifest` for `tenant` with `input` given on stdin.
    pub(crate) fn run(&self, manifest: &Path, tenant: &str, input: &str) -> Output {
        let input_path = self.dir.path().join("input.txt");
        std::fs::write(&input_path, input).expect("cannot write input");
        self.warden()
            .arg("run")
            .arg(manifest)
            .args(["--tenant", tenant, "--input"])
            .arg(&input_path)
            .output()
            .expect("cannot run warden")
    }

    /// Runs and expects success; returns stdout.
    pub(crate) fn run_ok(&self, manifest: &Path, tenant: &str, input: &str) -> String {
        let out = self.run(manifest, tenant, input);
        assert!(out.status.success(), "warden run failed: {}", stderr(&out));
        stdout(&out)
    }

    /// The tenant's audit events as JSON, via `warden audit show --json`.
    pub(crate) fn events(&self, tenant: &str) -> Vec<Value> {
        let out = self
            .warden()
            .args(["audit", "show", "--json", "--tenant", tenant])
            .output()
            .expect("cannot run warden");
        assert!(out.status.success(), "audit show failed: {}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("audit line is JSON")["event"].clone())
            .collect()
    }

    /// Host-call events of `tenant` for `function` on `resource`.
    pub(crate) fn calls(&self, tenant: &str, function: &str, resource: &str) -> Vec<Value> {
        self.events(tenant)
            .into_iter()
            .filter(|e| {
                e["body"]["type"] == "host-call"
                    && e["body"]["function"] == function
                    && e["body"]["resource"] == resource
            })
            .collect()
    }

    pub(crate) fn verify(&self, tenant: &str) -> Output {
        self.verify_with(tenant, &[])
    }

    /// `warden audit verify --tenant TENANT` plus `extra` arguments.
    pub(crate) fn verify_with(&self, tenant: &str, extra: &[&str]) -> Output {
        self.warden()
            .args(["audit", "verify", "--tenant", tenant])
            .args(extra)
            .output()
            .expect("run warden")
    }

    /// Runs `warden audit ARGS...` and returns its output.
    pub(crate) fn audit(&self, args: &[&str]) -> Output {
        self.warden()
            .arg("audit")
            .args(args)
            .output()
            .expect("run warden")
    }

    /// Runs `warden audit ARGS...`, expects success and returns stdout.
    pub(crate) fn audit_ok(&self, args: &[&str]) -> String {
        let out = self.audit(args);
        assert!(
            out.status.success(),
            "warden audit {args:?} failed: {}",
            stderr(&out)
        );
        stdout(&out)
    }

    /// Writes the output of `warden audit ARGS...` to a file in the env's
    /// scratch directory (outside the data directory, where an auditor
    /// would keep it) and returns its path.
    pub(crate) fn save(&self, name: &str, args: &[&str]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, self.audit_ok(args)).expect("cannot save");
        path
    }

    /// The directory of `tenant`'s audit stream.
    pub(crate) fn log_dir(&self, tenant: &str) -> PathBuf {
        self.data_dir().join("audit").join(tenant)
    }

    /// The first segment file of `tenant`'s audit stream, where a small
    /// log keeps all its events.
    pub(crate) fn segment(&self, tenant: &str) -> PathBuf {
        self.log_dir(tenant).join("seg-00000000000000000001.jsonl")
    }
}

/// The wrapper behind [`Env::warden`]. For `run MANIFEST ...` it first runs
/// `warden agents allow MANIFEST --tenant T [--actor A]`, quietly: when the
/// allow fails (a bad manifest, tenant or actor), the run that follows
/// reports the same mistake itself. Two processes cannot hold the
/// control-plane log at once, so a concurrent allow is retried. Then it
/// `exec`s the command, so the process a test waits on or kills is warden.
const ALLOW_THEN_RUN: &str = r#"
if [ "$1" = run ]; then
  manifest=$2 tenant= actor= prev=
  for arg in "$@"; do
    case $prev in
      --tenant) tenant=$arg ;;
      --actor) actor=$arg ;;
    esac
    case $arg in
      --tenant=*) tenant=${arg#--tenant=} ;;
      --actor=*) actor=${arg#--actor=} ;;
    esac
    prev=$arg
  done
  i=0
  while [ $i -lt 100 ]; do
    if [ -n "$actor" ]; then
      out=$("$WARDEN_BIN" agents allow "$manifest" --tenant "$tenant" --actor "$actor" 2>&1 </dev/null)
    else
      out=$("$WARDEN_BIN" agents allow "$manifest" --tenant "$tenant" 2>&1 </dev/null)
    fi
    case $out in
      *"in use by another warden process"*) sleep 0.05; i=$((i + 1)) ;;
      *) break ;;
    esac
  done
fi
exec "$WARDEN_BIN" "$@"
"#;

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failed run: non-zero exit, one `error:` line on stderr that
/// contains `want`, and no panic.
pub(crate) fn assert_one_line_error(out: &Output, want: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(!err.contains("panicked at"), "host panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    assert!(lines[0].starts_with("error: "), "not an error line: {err}");
    assert!(
        err.contains(want),
        "stderr {err:?} does not mention {want:?}"
    );
}

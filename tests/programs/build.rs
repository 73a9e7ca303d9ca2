//! Builds the example and test guests for wasm32-wasip2 and writes their
//! paths into `OUT_DIR/programs.rs`.
//!
//! The guests are members of this workspace, built by a nested cargo with its
//! own target directory (sharing the outer one would deadlock on its lock).

use std::{
    env,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

/// (package, const name, file) of every guest the tests and benches use.
const GUESTS: &[(&str, &str, &str)] = &[
    ("invoice-triage", "INVOICE_TRIAGE", "invoice_triage.wasm"),
    ("vendor-sync", "VENDOR_SYNC", "vendor_sync.wasm"),
    ("guest-probe", "PROBE", "guest_probe.wasm"),
    ("guest-egress", "EGRESS", "guest_egress.wasm"),
    ("guest-secrets", "SECRETS", "guest_secrets.wasm"),
    ("guest-files", "FILES", "guest_files.wasm"),
    (
        "guest-bench-trivial",
        "BENCH_TRIVIAL",
        "guest_bench_trivial.wasm",
    ),
    (
        "guest-not-an-agent",
        "NOT_AN_AGENT",
        "guest-not-an-agent.wasm",
    ),
    ("guest-spin", "SPIN", "guest_spin.wasm"),
    ("guest-sleep", "SLEEP", "guest_sleep.wasm"),
    ("guest-pause", "PAUSE", "guest_pause.wasm"),
    ("guest-approval", "APPROVAL", "guest_approval.wasm"),
    ("guest-memory-hog", "MEMORY_HOG", "guest_memory_hog.wasm"),
    ("guest-recurse", "RECURSE", "guest_recurse.wasm"),
    (
        "guest-memory-marker",
        "MEMORY_MARKER",
        "guest_memory_marker.wasm",
    ),
];

/// (file under `wat/`, const name) of guests written as component text,
/// for what no Rust code can express.
const WAT_GUESTS: &[(&str, &str)] = &[("table_grow.wat", "TABLE_GROW")];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root exists");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets this"));
    let target_dir = out_dir.join("wasm-target");

    for dir in ["wit", "guest-sdk", "examples", "tests/guests", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (package, _, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // Settings meant for the outer host build must not leak into the guests'.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build the guests");
    assert!(
        status.success(),
        "building the guests for wasm32-wasip2 failed; if the target is missing, run \
         `rustup target add wasm32-wasip2`"
    );

    let mut code = String::new();
    for (package, name, file) in GUESTS {
        let path = target_dir.join("wasm32-wasip2/release").join(file);
        assert!(
            exists(&path),
            "guest {package} was built but {} is missing",
            path.display()
        );
        writeln!(code, "/// Component file of the `{package}` guest.").unwrap();
        writeln!(
            code,
            "pub const {name}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    for (file, name) in WAT_GUESTS {
        let source = manifest_dir.join("wat").join(file);
        println!("cargo:rerun-if-changed={}", source.display());
        let binary = wat::parse_file(&source)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", source.display()));
        let path = out_dir.join(file).with_extension("wasm");
        std::fs::write(&path, binary).expect("cannot write a wat guest");
        writeln!(code, "/// Component file of the `{file}` guest.").unwrap();
        writeln!(
            code,
            "pub const {name}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
    }
    std::fs::write(out_dir.join("programs.rs"), code).expect("cannot write programs.rs");
}

fn exists(path: &Path) -> bool {
    path.is_file()
}

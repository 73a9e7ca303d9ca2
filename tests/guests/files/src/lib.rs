//! Test guest: works on files through Rust's `std::fs` (and, where `std`
//! cannot say it, the raw `wasi:filesystem` interface) and reports each
//! result.
//!
//! The input is one command per line; the output has one line per command,
//! `<command> -> <result>`, where `<result>` is `ok`, `ok <text>` or
//! `err <kind>` (an `std::io::ErrorKind`, or a `wasi:filesystem` error code
//! for the raw commands), and the script goes on after an error. Commands:
//!
//! - `read PATH`, `ls DIR`, `write PATH TEXT`, `append PATH TEXT`,
//!   `mkdir PATH`, `rm PATH`, `rename OLD NEW`, `link OLD NEW`;
//! - `fill PATH N` writes N bytes at once; `bytes PATH N` writes N bytes
//!   one `write` call at a time;
//! - `truncate PATH` opens PATH for writing with truncation;
//!   `set-len PATH N` opens PATH read-only and sets its length;
//!   `grow PATH N` opens PATH for writing and sets its length;
//! - `raw-write DIR PATH N` creates PATH on the preopened directory DIR and
//!   writes N bytes through a `wasi:io` stream, reporting a failure by its
//!   `wasi:filesystem` error code;
//! - `raw-open DIR PATH` opens PATH on the preopened directory DIR, following
//!   symbolic links; `raw-symlink DIR TARGET LINK` creates LINK pointing to
//!   TARGET. Both send PATH, TARGET and LINK to the host exactly as given.
//!
//! Grant: whatever the test gives it; it asks for nothing by itself.

use std::{
    fs::{self, File, OpenOptions},
    io::Write as _,
};

use warden_guest_sdk::{Agent, Error, export_agent};
use wasi::{
    filesystem::{
        preopens::get_directories,
        types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags, filesystem_error_code},
    },
    io::streams::StreamError,
};

struct Files;

fn io<T>(result: std::io::Result<T>, ok: impl FnOnce(T) -> String) -> String {
    match result {
        Ok(v) => ok(v),
        Err(e) => format!("err {:?}", e.kind()),
    }
}

fn done<T>(result: std::io::Result<T>) -> String {
    io(result, |_| "ok".to_owned())
}

/// Creates `path` under `dir` and writes `len` bytes to it in one
/// `blocking-write-and-flush`, reporting a stream failure by its
/// `wasi:filesystem` error code (which `std` cannot show: its writes go
/// through the preview 1 adapter, which reports any stream failure as
/// `EIO`).
fn raw_write(dir: &Descriptor, path: &str, len: u64) -> String {
    let file = match dir.open_at(
        PathFlags::empty(),
        path,
        OpenFlags::CREATE,
        DescriptorFlags::WRITE,
    ) {
        Ok(f) => f,
        Err(e) => return format!("err {}", e.name()),
    };
    let stream = match file.write_via_stream(0) {
        Ok(s) => s,
        Err(e) => return format!("err {}", e.name()),
    };
    let bytes = vec![b'x'; usize::try_from(len).unwrap_or(0)];
    let mut result = "ok".to_owned();
    for chunk in bytes.chunks(4096) {
        match stream.blocking_write_and_flush(chunk) {
            Ok(()) => {}
            Err(StreamError::LastOperationFailed(e)) => {
                result = match filesystem_error_code(&e) {
                    Some(code) => format!("err {}", code.name()),
                    None => format!("err {}", e.to_debug_string()),
                };
                break;
            }
            Err(StreamError::Closed) => {
                result = "err closed".to_owned();
                break;
            }
        }
    }
    result
}

/// The preopened directory the guest sees as `name`.
fn preopen(name: &str) -> Option<Descriptor> {
    get_directories()
        .into_iter()
        .find(|(_, n)| n == name)
        .map(|(d, _)| d)
}

fn run(words: &[&str], line: &str) -> Result<String, Error> {
    let rest = |n: usize| words.get(n..).map(|w| w.join(" ")).unwrap_or_default();
    let arg = |n: usize| words.get(n).copied().unwrap_or("");
    let num = |n: usize| arg(n).parse::<u64>().unwrap_or(0);
    Ok(match words.first().copied().unwrap_or("") {
        "read" => io(fs::read_to_string(arg(1)), |s| format!("ok {s}")),
        "ls" => io(fs::read_dir(arg(1)), |entries| {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            format!("ok [{}]", names.join(","))
        }),
        "write" => done(fs::write(arg(1), rest(2))),
        "append" => done(
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(arg(1))
                .and_then(|mut f| f.write_all(rest(2).as_bytes())),
        ),
        "fill" => done(fs::write(arg(1), vec![b'x'; num(2) as usize])),
        "bytes" => done(File::create(arg(1)).and_then(|mut f| {
            for _ in 0..num(2) {
                f.write_all(b"x")?;
            }
            Ok(())
        })),
        "mkdir" => done(fs::create_dir(arg(1))),
        "rm" => done(fs::remove_file(arg(1))),
        "rename" => done(fs::rename(arg(1), arg(2))),
        "link" => done(fs::hard_link(arg(1), arg(2))),
        "truncate" => done(OpenOptions::new().write(true).truncate(true).open(arg(1))),
        "set-len" => done(File::open(arg(1)).and_then(|f| f.set_len(num(2)))),
        "grow" => done(
            OpenOptions::new()
                .write(true)
                .open(arg(1))
                .and_then(|f| f.set_len(num(2))),
        ),
        "raw-open" => match preopen(arg(1)) {
            None => "err no-such-preopen".to_owned(),
            Some(dir) => match dir.open_at(
                PathFlags::SYMLINK_FOLLOW,
                arg(2),
                OpenFlags::empty(),
                DescriptorFlags::READ,
            ) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("err {}", e.name()),
            },
        },
        "raw-write" => match preopen(arg(1)) {
            None => "err no-such-preopen".to_owned(),
            Some(dir) => raw_write(&dir, arg(2), num(3)),
        },
        "raw-symlink" => match preopen(arg(1)) {
            None => "err no-such-preopen".to_owned(),
            Some(dir) => match dir.symlink_at(arg(2), arg(3)) {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("err {}", e.name()),
            },
        },
        _ => return Err(Error::InvalidInput(format!("unknown command: {line}"))),
    })
}

impl Agent for Files {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let script = String::from_utf8(input)
            .map_err(|_| Error::InvalidInput("script is not UTF-8".to_owned()))?;
        let mut out = String::new();
        for line in script.lines().filter(|l| !l.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let result = run(&words, line)?;
            out.push_str(&format!("{line} -> {result}\n"));
        }
        Ok(out.into_bytes())
    }
}

export_agent!(Files);

//! Test guest: runs a script of capability calls and reports each result.
//!
//! The input is one command per line; the output has one line per command,
//! `<command> -> <result>`, where a refused or failed call is reported as
//! `err <kind>: <message>` and the script goes on. That shows a guest
//! handling "not permitted" as an ordinary answer. Commands:
//!
//! - `get KEY`, `put KEY VALUE`, `delete KEY`, `list PREFIX`;
//! - `decide SUBJECT OUTCOME REASON...`;
//! - `config KEY` reads a config value; `config-long N` reads a key of N
//!   bytes;
//! - `say TEXT...` prints to stdout, `warn TEXT...` to stderr;
//! - `put-big KEY SIZE` stores SIZE bytes; `fill PREFIX N` stores N keys;
//! - `hammer N KEY` calls `get KEY` N times ignoring every answer;
//! - `print-lines N` prints N numbered lines to stdout;
//! - `repeat N get KEY` runs `get KEY` N times and reports the first error;
//! - `fail TEXT...` returns the agent's `failed` error;
//! - `panic` panics (a trap); `loop` never returns (the deadline).
//!
//! Grant: whatever the test gives it; it asks for nothing by itself.

use warden_guest_sdk::{Agent, Error, config, decisions, export_agent, records};

struct Probe;

fn records_err(e: &records::Error) -> String {
    match e {
        records::Error::NotPermitted(m) => format!("err not-permitted: {m}"),
        records::Error::NotFound => "err not-found".to_owned(),
        records::Error::LimitReached(m) => format!("err limit-reached: {m}"),
        records::Error::InvalidKey(m) => format!("err invalid-key: {m}"),
        records::Error::Other(m) => format!("err other: {m}"),
    }
}

fn config_err(e: &config::Error) -> String {
    match e {
        config::Error::NotPermitted(m) => format!("err not-permitted: {m}"),
        config::Error::NotFound => "err not-found".to_owned(),
        config::Error::LimitReached(m) => format!("err limit-reached: {m}"),
        config::Error::Other(m) => format!("err other: {m}"),
    }
}

fn run(words: &[&str], line: &str) -> Result<String, Error> {
    let rest = |n: usize| words.get(n..).map(|w| w.join(" ")).unwrap_or_default();
    let arg = |n: usize| words.get(n).copied().unwrap_or("");
    Ok(match words.first().copied().unwrap_or("") {
        "get" => match records::get(arg(1)) {
            Ok(v) => format!("ok {}", String::from_utf8_lossy(&v)),
            Err(e) => records_err(&e),
        },
        "put" => match records::put(arg(1), rest(2).as_bytes()) {
            Ok(()) => "ok".to_owned(),
            Err(e) => records_err(&e),
        },
        "put-big" => {
            let size: usize = arg(2).parse().unwrap_or(0);
            match records::put(arg(1), &vec![b'x'; size]) {
                Ok(()) => "ok".to_owned(),
                Err(e) => records_err(&e),
            }
        }
        "fill" => {
            let n: usize = arg(2).parse().unwrap_or(0);
            let failed = (0..n).find_map(|i| records::put(&format!("{}/{i}", arg(1)), b"v").err());
            failed.map_or_else(|| "ok".to_owned(), |e| records_err(&e))
        }
        "delete" => match records::delete(arg(1)) {
            Ok(()) => "ok".to_owned(),
            Err(e) => records_err(&e),
        },
        "list" => match records::list(arg(1)) {
            Ok(keys) => format!("ok [{}]", keys.join(",")),
            Err(e) => records_err(&e),
        },
        "config" => match config::get(arg(1)) {
            Ok(v) => format!("ok {v}"),
            Err(e) => config_err(&e),
        },
        "config-long" => {
            let n: usize = arg(1).parse().unwrap_or(0);
            match config::get(&"k".repeat(n)) {
                Ok(v) => format!("ok {v}"),
                Err(e) => config_err(&e),
            }
        }
        "decide" => match decisions::record(arg(1), arg(2), &rest(3)) {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("err {e:?}"),
        },
        "repeat" => {
            let n: u32 = arg(1).parse().unwrap_or(0);
            let mut first_err = None;
            for i in 0..n {
                match records::get(arg(3)) {
                    Ok(_) | Err(records::Error::NotFound) => {}
                    Err(e) => {
                        first_err = Some(format!("call {}: {}", i + 1, records_err(&e)));
                        break;
                    }
                }
            }
            first_err.unwrap_or_else(|| "ok".to_owned())
        }
        "hammer" => {
            // Keeps calling whatever the answers, as a runaway loop would.
            let n: u32 = arg(1).parse().unwrap_or(0);
            for _ in 0..n {
                let _ = records::get(arg(2));
            }
            "ok".to_owned()
        }
        "print-lines" => {
            let n: u32 = arg(1).parse().unwrap_or(0);
            for i in 0..n {
                println!("line {i}");
            }
            "ok".to_owned()
        }
        "say" => {
            println!("{}", rest(1));
            "ok".to_owned()
        }
        "warn" => {
            eprintln!("{}", rest(1));
            "ok".to_owned()
        }
        "fail" => return Err(Error::Failed(rest(1))),
        "panic" => panic!("probe was told to panic"),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => return Err(Error::InvalidInput(format!("unknown command: {line}"))),
    })
}

impl Agent for Probe {
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

export_agent!(Probe);

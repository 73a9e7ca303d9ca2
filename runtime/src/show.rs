//! `warden audit show`: print a tenant's audit events.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use serde_json::Value;
use warden_host_api::scope::printable;
use warden_runtime::audit::StoredLine;

pub(crate) fn show(path: &Path, json: bool) -> anyhow::Result<()> {
    if !path.exists() {
        bail!(
            "no audit log at {}; has the tenant run anything?",
            path.display()
        );
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read audit log {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read audit log {}", path.display()))?;
        if json {
            writeln!(out, "{line}")?;
            continue;
        }
        let stored: StoredLine<'_> = serde_json::from_str(&line).with_context(|| {
            format!(
                "line {} of {} is not an audit record",
                i + 1,
                path.display()
            )
        })?;
        let event: Value = serde_json::from_str(stored.event.get())?;
        writeln!(out, "{}", describe(stored.seq, &event))?;
    }
    Ok(())
}

fn describe(seq: u64, e: &Value) -> String {
    let s = |k: &str| printable(e.get(k).and_then(Value::as_str).unwrap_or(""));
    let b = e.get("body").cloned().unwrap_or(Value::Null);
    // Guest text (decisions, stream lines, messages) is escaped so that it
    // cannot forge a line of this report or hide characters in it.
    let bs = |k: &str| printable(b.get(k).and_then(Value::as_str).unwrap_or(""));
    let time = e
        .get("time_unix_ms")
        .and_then(Value::as_u64)
        .map(|ms| humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)))
        .map_or_else(String::new, |t| t.to_string());
    let what = match bs("type").as_str() {
        "invocation-start" => {
            format!(
                "start input {} bytes sha256:{}",
                b["input_bytes"],
                short(&bs("input_digest"))
            )
        }
        "invocation-finish" => {
            let detail = bs("detail");
            let sep = if detail.is_empty() { "" } else { ": " };
            format!(
                "finish {} after {} us{sep}{detail}",
                bs("outcome"),
                b["duration_us"]
            )
        }
        "host-call" => format!(
            "{}.{} {:?} {} ({})",
            bs("interface"),
            bs("function"),
            bs("resource"),
            bs("decision"),
            bs("reason")
        ),
        "agent-decision" => {
            format!(
                "decision {}: {} ({})",
                bs("subject"),
                bs("outcome"),
                bs("reason")
            )
        }
        "stream-line" => format!("{}: {}", bs("stream"), bs("line")),
        "limit-hit" => format!("limit {} reached: {}", bs("limit"), bs("detail")),
        "commit" => format!("commit {} writes", b["writes"]),
        "rollback" => {
            format!(
                "rollback {} writes: {}",
                b["discarded_writes"],
                bs("reason")
            )
        }
        other => format!("{other} event"),
    };
    format!("#{seq} {time} {} {} {}", s("agent"), s("invocation"), what)
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

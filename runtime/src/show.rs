//! `warden audit show`: print a tenant's audit events.

use std::{
    io::Write,
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context;
use serde_json::Value;
use warden_host_api::scope::printable;
use warden_runtime::audit::{StreamId, VerifyError, for_each_record};

pub(crate) fn show(data_dir: &Path, stream: &StreamId, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut write_err = None;
    for_each_record(data_dir, stream, |record, line| {
        let written = if json {
            out.write_all(line).and_then(|()| out.write_all(b"\n"))
        } else {
            let event: Value = serde_json::from_slice(record.event).unwrap_or(Value::Null);
            writeln!(out, "{}", describe(record.seq, &event))
        };
        if let Err(e) = written {
            write_err.get_or_insert(e);
            // Stop reading: nobody takes the output any more.
            return Err(VerifyError::Io {
                path: "stdout".into(),
                source: std::io::Error::other("stdout closed"),
            });
        }
        Ok(())
    })
    .or_else(|e| if write_err.is_some() { Ok(()) } else { Err(e) })?;
    if let Some(e) = write_err {
        return Err(e).context("cannot write to stdout");
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
        "log-recovered" => format!(
            "recovered: cut {} torn bytes from {}",
            b["cut_bytes"],
            bs("file")
        ),
        "retention-removed" => format!(
            "retention {}: removed events {}..{}",
            bs("retention"),
            b["first_seq"],
            b["last_seq"]
        ),
        "secret-changed" => format!(
            "secret {} of {} {} by {}",
            bs("name"),
            s("tenant"),
            if bs("action") == "remove" {
                "removed"
            } else {
                "set"
            },
            s("actor")
        ),
        "audit-read" => format!(
            "{} {} of {} by {}",
            bs("action"),
            bs("range"),
            bs("stream"),
            s("actor")
        ),
        "control-change" => {
            let digest = |k: &str| {
                let d = bs(k);
                if d.is_empty() {
                    "none".to_owned()
                } else {
                    format!("sha256:{}", short(&d))
                }
            };
            format!(
                "{} {} of tenant {} by {}: grant {} -> {}; {}",
                bs("action"),
                bs("agent"),
                s("tenant"),
                s("actor"),
                digest("before_grant_digest"),
                digest("after_grant_digest"),
                bs("change")
            )
        }
        "control-request" => {
            let status = b
                .get("status")
                .and_then(Value::as_u64)
                .map_or_else(String::new, |s| format!(" {s}"));
            let tenant = s("tenant");
            let tenant = if tenant.is_empty() {
                String::new()
            } else {
                format!(" of tenant {tenant}")
            };
            format!(
                "{} {}{tenant} by {} ({}): {}{status} {}",
                bs("operation"),
                bs("resource"),
                s("actor"),
                bs("role"),
                bs("decision"),
                bs("outcome")
            )
        }
        other => format!("{other} event"),
    };
    format!("#{seq} {time} {} {} {}", s("agent"), s("invocation"), what)
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

//! `warden audit …`: checkpoints, proofs, verification, export, retention.
//!
//! Every command that reads a stream's events records the read in the
//! control-plane stream first, naming the actor; a read that cannot be
//! recorded does not happen. The stream is checked to exist and to be a
//! warden log before anything is recorded, so that a mistyped data
//! directory is not filled with a control-plane log.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use warden_runtime::audit::{
    AuditLogs, AuditOptions, Checkpoint, PublicKey, StreamId, VerifyOptions, VerifyReport,
    export::{ExportReport, export, verify_export},
    proof::{StoredTree, prove_consistency, prove_inclusion},
    retention::format_period,
    stream::MARKER_FILE,
    verify,
};

use crate::{AuditCommand, show};

pub(crate) fn dispatch(data_dir: &Path, command: AuditCommand) -> anyhow::Result<()> {
    let logs = AuditLogs::new(data_dir, AuditOptions::default());
    match command {
        AuditCommand::Show {
            stream,
            json,
            actor,
        } => {
            let stream = stream.stream()?;
            record_show(&logs, &stream, &actor.name(), "all")?;
            show::show(data_dir, &stream, json)
        }
        AuditCommand::Verify {
            stream,
            checkpoint,
            public_key,
            actor,
        } => {
            let stream = stream.stream()?;
            // Bad input first: a corrupt checkpoint or key file is named
            // before anything is read or recorded.
            let trusted = checkpoint
                .map(|path| Checkpoint::read_file(&path).map(|cp| (path, cp)))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let public_key = public_key.as_deref().map(PublicKey::read).transpose()?;
            let options = VerifyOptions {
                public_key,
                trusted,
            };
            let report = verify_stream(&logs, &stream, &options, &actor.name())?;
            println!("{}", describe_report(&stream, &report));
            Ok(())
        }
        AuditCommand::Checkpoint { stream } => {
            let checkpoint = checkpoint(&logs, &stream.stream()?)?;
            println!("{}", serde_json::to_string(&checkpoint)?);
            Ok(())
        }
        AuditCommand::Prove {
            stream,
            event,
            old_size,
            actor,
        } => {
            let of = match (event, old_size) {
                (Some(seq), _) => ProofOf::Event(seq),
                (None, Some(n)) => ProofOf::OldSize(n),
                (None, None) => bail!("give --event SEQ or --old-size N"),
            };
            let proof = prove(&logs, &stream.stream()?, of, &actor.name())?;
            println!("{}", serde_json::to_string_pretty(&proof)?);
            Ok(())
        }
        AuditCommand::Export {
            stream,
            since,
            until,
            output,
            actor,
        } => {
            let stream = stream.stream()?;
            let since_ms = parse_time("--since", &since)?;
            let until_ms = match &until {
                Some(u) => parse_time("--until", u)?,
                None => now_ms(),
            };
            let report =
                export_range(&logs, &stream, (since_ms, until_ms), &output, &actor.name())?;
            let events = match report.range {
                Some((a, b)) => format!("{} events ({a}..{b})", report.events),
                None => "no events".into(),
            };
            println!(
                "exported {events} of {stream} to {}, proved against a checkpoint of {} events",
                output.display(),
                report.tree_size
            );
            Ok(())
        }
        AuditCommand::VerifyExport { dir, public_key } => {
            let key = PublicKey::read(&public_key)?;
            let (checkpoint, report) = verify_export(&dir, &key)?;
            let events = match report.range {
                Some((a, b)) => format!("{} events ({a}..{b})", report.events),
                None => "no events".into(),
            };
            println!(
                "export {} verified: {events} of stream {}, each proved in the log of {} events \
                 signed by key {}",
                dir.display(),
                checkpoint.stream,
                checkpoint.tree_size,
                checkpoint.key_id
            );
            Ok(())
        }
        AuditCommand::PublicKey => {
            let signer = logs.signer()?;
            std::io::stdout()
                .write_all(signer.public_key().to_file_text().as_bytes())
                .context("cannot write the public key to stdout")?;
            Ok(())
        }
        AuditCommand::Prune { stream, retention } => {
            let stream = stream.stream()?;
            require_log(data_dir, &stream)?;
            let period = format_period(retention);
            match logs.open(&stream)?.remove_expired(retention)? {
                Some(last) => println!(
                    "removed events 1..{last} of {stream}: every one was older than {period}"
                ),
                None => println!(
                    "nothing removed from {stream}: no sealed segment is wholly older than {period}"
                ),
            }
            Ok(())
        }
    }
}

// The operations below are shared by the `warden audit` commands and the
// daemon's `/v1/.../audit` endpoints: one implementation of each, so that a
// read recorded from the command line and one recorded over the API look
// the same in the control-plane stream.

/// Checks that `stream` has a log and records in the control-plane stream
/// that `actor` is about to read its events (`range` says which); the
/// caller reads them afterwards.
pub(crate) fn record_show(
    logs: &AuditLogs,
    stream: &StreamId,
    actor: &str,
    range: &str,
) -> anyhow::Result<()> {
    require_log(logs.data_dir(), stream)?;
    logs.record_read(stream, actor, "show", range)?;
    Ok(())
}

/// Verifies `stream`, recording the read first when the log exists.
pub(crate) fn verify_stream(
    logs: &AuditLogs,
    stream: &StreamId,
    options: &VerifyOptions,
    actor: &str,
) -> anyhow::Result<VerifyReport> {
    if stream.dir(logs.data_dir()).join(MARKER_FILE).exists() {
        logs.record_read(stream, actor, "verify", "all")?;
    }
    Ok(verify(logs.data_dir(), stream, options)?)
}

/// One line describing a verified log.
pub(crate) fn describe_report(stream: &StreamId, report: &VerifyReport) -> String {
    let mut line = format!(
        "audit log of {stream} verified: {} events, root {}",
        report.events,
        hex::encode(report.root)
    );
    if report.checkpoints > 0 {
        line += &format!(
            ", {} checkpoints signed by key {} (latest covers {} events)",
            report.checkpoints, report.key_id, report.signed_size
        );
    }
    if let Some(size) = report.extends {
        line += &format!(", extends the given checkpoint of {size} events");
    }
    if report.removed > 0 {
        line += &format!(", events 1..{} removed by retention", report.removed);
    }
    line
}

/// A signed checkpoint of everything `stream` holds, signing a new one
/// unless the latest covers every event.
pub(crate) fn checkpoint(logs: &AuditLogs, stream: &StreamId) -> anyhow::Result<Checkpoint> {
    require_log(logs.data_dir(), stream)?;
    Ok(logs.open(stream)?.checkpoint()?)
}

/// What a proof is about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ProofOf {
    /// The inclusion of the event with this sequence number.
    Event(u64),
    /// The consistency of the tree of the first N events with the latest.
    OldSize(u64),
}

/// An inclusion or consistency proof against the latest checkpoint, as
/// JSON; the read is recorded first.
pub(crate) fn prove(
    logs: &AuditLogs,
    stream: &StreamId,
    of: ProofOf,
    actor: &str,
) -> anyhow::Result<serde_json::Value> {
    require_log(logs.data_dir(), stream)?;
    let range = match of {
        ProofOf::Event(seq) => format!("event {seq}"),
        ProofOf::OldSize(n) => format!("events 1..{n}"),
    };
    logs.record_read(stream, actor, "prove", &range)?;
    let checkpoint = logs.open(stream)?.checkpoint()?;
    let key = *logs.signer()?.public_key();
    let tree = StoredTree::load(logs.data_dir(), stream, &key)?;
    Ok(match of {
        ProofOf::Event(seq) => serde_json::to_value(prove_inclusion(&tree, &checkpoint, seq)?)?,
        ProofOf::OldSize(n) => serde_json::to_value(prove_consistency(&tree, &checkpoint, n)?)?,
    })
}

/// Exports the events of `stream` in `(since_ms, until_ms)` with their
/// checkpoint and proofs into the new directory `output`; the read is
/// recorded first, and refused before that when `output` is not empty.
pub(crate) fn export_range(
    logs: &AuditLogs,
    stream: &StreamId,
    (since_ms, until_ms): (u64, u64),
    output: &Path,
    actor: &str,
) -> anyhow::Result<ExportReport> {
    if until_ms < since_ms {
        bail!("--until is before --since; give a range that moves forward in time");
    }
    require_log(logs.data_dir(), stream)?;
    // Refused before the read is recorded: nothing is read.
    if std::fs::read_dir(output).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "export directory {} is not empty; give a new directory",
            output.display()
        );
    }
    let range = format!(
        "{}..{}",
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(since_ms)),
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(until_ms))
    );
    logs.record_read(stream, actor, "export", &range)?;
    let checkpoint = logs.open(stream)?.checkpoint()?;
    let key = *logs.signer()?.public_key();
    Ok(export(
        logs.data_dir(),
        stream,
        &key,
        &checkpoint,
        (since_ms, until_ms),
        output,
    )?)
}

/// Fails unless `stream` has a warden log under `data_dir`.
pub(crate) fn require_log(data_dir: &Path, stream: &StreamId) -> anyhow::Result<()> {
    let dir: PathBuf = stream.dir(data_dir);
    if !dir.exists() {
        bail!(
            "no audit log for {stream} at {}; check --data-dir and the tenant id",
            dir.display()
        );
    }
    if !dir.join(MARKER_FILE).exists() {
        bail!(
            "{} is not a warden audit log: it has no {MARKER_FILE} file; check --data-dir",
            dir.display()
        );
    }
    Ok(())
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An RFC 3339 time, a date (midnight UTC), or an age before now.
pub(crate) fn parse_time(flag: &str, text: &str) -> anyhow::Result<u64> {
    let ms = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(ms(t));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00Z")) {
        return Ok(ms(t));
    }
    if let Ok(age) = humantime::parse_duration(text) {
        return Ok(now_ms().saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)));
    }
    bail!(
        "{flag} {text:?} is not a time; use RFC 3339 (2026-01-31T12:00:00Z), a date (2026-01-31) \
         or an age (24h)"
    )
}

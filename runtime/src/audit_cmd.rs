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
    AuditLogs, AuditOptions, Checkpoint, PublicKey, StreamId, VerifyOptions,
    export::{export, verify_export},
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
            require_log(data_dir, &stream)?;
            logs.record_read(&stream, &actor.name(), "show", "all")?;
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
            if stream.dir(data_dir).join(MARKER_FILE).exists() {
                logs.record_read(&stream, &actor.name(), "verify", "all")?;
            }
            let report = verify(data_dir, &stream, &options)?;
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
            println!("{line}");
            Ok(())
        }
        AuditCommand::Checkpoint { stream } => {
            let stream = stream.stream()?;
            require_log(data_dir, &stream)?;
            let checkpoint = logs.open(&stream)?.checkpoint()?;
            println!("{}", serde_json::to_string(&checkpoint)?);
            Ok(())
        }
        AuditCommand::Prove {
            stream,
            event,
            old_size,
            actor,
        } => {
            let stream = stream.stream()?;
            require_log(data_dir, &stream)?;
            let range = match (event, old_size) {
                (Some(seq), _) => format!("event {seq}"),
                (None, Some(n)) => format!("events 1..{n}"),
                (None, None) => bail!("give --event SEQ or --old-size N"),
            };
            logs.record_read(&stream, &actor.name(), "prove", &range)?;
            let checkpoint = logs.open(&stream)?.checkpoint()?;
            let key = *logs.signer()?.public_key();
            let tree = StoredTree::load(data_dir, &stream, &key)?;
            let text = match (event, old_size) {
                (Some(seq), _) => {
                    serde_json::to_string_pretty(&prove_inclusion(&tree, &checkpoint, seq)?)?
                }
                (None, Some(n)) => {
                    serde_json::to_string_pretty(&prove_consistency(&tree, &checkpoint, n)?)?
                }
                (None, None) => bail!("give --event SEQ or --old-size N"),
            };
            println!("{text}");
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
            if until_ms < since_ms {
                bail!("--until is before --since; give a range that moves forward in time");
            }
            require_log(data_dir, &stream)?;
            // Refused before the read is recorded: nothing is read.
            if std::fs::read_dir(&output).is_ok_and(|mut d| d.next().is_some()) {
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
            logs.record_read(&stream, &actor.name(), "export", &range)?;
            let checkpoint = logs.open(&stream)?.checkpoint()?;
            let key = *logs.signer()?.public_key();
            let report = export(
                data_dir,
                &stream,
                &key,
                &checkpoint,
                (since_ms, until_ms),
                &output,
            )?;
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

/// Fails unless `stream` has a warden log under `data_dir`.
fn require_log(data_dir: &Path, stream: &StreamId) -> anyhow::Result<()> {
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An RFC 3339 time, a date (midnight UTC), or an age before now.
fn parse_time(flag: &str, text: &str) -> anyhow::Result<u64> {
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

//! `warden secrets …`: set, list and remove a tenant's secrets.
//!
//! A thin layer over [`warden_runtime::secrets::SecretStore`], which records
//! every change in the control-plane audit stream. Values are read from
//! stdin only, never from the command line, where `ps` and shell history
//! would show them.

use std::{
    io::{IsTerminal, Read},
    path::Path,
};

use anyhow::{Context, bail};
use clap::Subcommand;
use warden_host_api::secrets::{MAX_SECRET_VALUE_BYTES, SecretValue};
use warden_runtime::{
    TenantId,
    audit::{AuditLogs, AuditOptions},
    secrets::SecretStore,
};
use zeroize::Zeroizing;

use crate::ActorArg;

#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// Set a secret, reading its value from stdin.
    ///
    /// One trailing newline is dropped, so `printf` and `echo` both work.
    /// The change is recorded in the control-plane stream with --actor.
    Set {
        /// The tenant the secret belongs to.
        #[arg(long)]
        tenant: String,
        /// The secret's name: 1 to 64 of a-z, 0-9, '-' and '_'.
        name: String,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// List a tenant's secrets by name, with when each was set; never
    /// values.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Remove a secret.
    ///
    /// The change is recorded in the control-plane stream with --actor.
    Remove {
        /// The tenant the secret belongs to.
        #[arg(long)]
        tenant: String,
        /// The secret's name.
        name: String,
        #[command(flatten)]
        actor: ActorArg,
    },
}

pub(crate) fn dispatch(data_dir: &Path, command: SecretsCommand) -> anyhow::Result<()> {
    let store = SecretStore::new(data_dir);
    match command {
        SecretsCommand::Set {
            tenant,
            name,
            actor,
        } => {
            let tenant = TenantId::new(&tenant)?;
            let actor = actor.checked()?;
            let value = read_value()?;
            let logs = AuditLogs::new(data_dir, AuditOptions::default());
            store.set(&logs, &actor, &tenant, &name, &value)?;
            eprintln!("secret {name} of tenant {tenant} set");
        }
        SecretsCommand::List { tenant } => {
            let tenant = TenantId::new(&tenant)?;
            for info in store.list(&tenant)? {
                println!(
                    "{}\tset {}",
                    info.name,
                    humantime::format_rfc3339_seconds(info.set_at)
                );
            }
        }
        SecretsCommand::Remove {
            tenant,
            name,
            actor,
        } => {
            let tenant = TenantId::new(&tenant)?;
            let actor = actor.checked()?;
            let logs = AuditLogs::new(data_dir, AuditOptions::default());
            store.remove(&logs, &actor, &tenant, &name)?;
            eprintln!("secret {name} of tenant {tenant} removed");
        }
    }
    Ok(())
}

/// Reads the value from stdin, at most [`MAX_SECRET_VALUE_BYTES`] after one
/// trailing newline is dropped.
fn read_value() -> anyhow::Result<SecretValue> {
    let stdin = std::io::stdin().lock();
    if stdin.is_terminal() {
        eprintln!("reading the secret value from stdin; end it with Ctrl-D");
    }
    // Room for the largest value plus a CR LF up front: a buffer that grew
    // would leave copies of the first bytes behind, outside the zeroed one.
    let limit = MAX_SECRET_VALUE_BYTES + 2;
    let mut bytes = Zeroizing::new(Vec::with_capacity(limit + 1));
    stdin
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the secret value from stdin")?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.len() > MAX_SECRET_VALUE_BYTES {
        bail!("the secret value is over the maximum of {MAX_SECRET_VALUE_BYTES} bytes");
    }
    Ok(SecretValue::new(bytes))
}

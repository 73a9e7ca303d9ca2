//! `warden agents …`, `warden config …` and `warden grants show`: the
//! operator's review and approval of agents and their config values, a thin
//! layer over [`ControlPlane`].
//!
//! Every change goes through the library, which records it in the
//! control-plane stream before storing it; this module only parses,
//! validates the operator's input and prints.

use std::{
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use warden_runtime::{ControlPlane, TenantId, grants, manifest::Manifest};

use warden_host_api::scope::printable;

use crate::{AgentsCommand, ConfigCommand, GrantsCommand};

pub(crate) fn agents(data_dir: &Path, command: AgentsCommand) -> anyhow::Result<()> {
    match command {
        AgentsCommand::Allow {
            manifest,
            tenant,
            actor,
        } => {
            // Everything the operator gave is checked before the data
            // directory is touched.
            let tenant = TenantId::new(&tenant)?;
            let actor = actor.checked()?;
            let manifest = Manifest::load(&manifest)?;
            let change = ControlPlane::new(data_dir).allow_agent(&tenant, &manifest, &actor)?;
            if change.changed {
                println!(
                    "agent {} allowed for tenant {tenant} with grant sha256:{}: {}",
                    manifest.name, manifest.grant_digest, change.change
                );
            } else {
                println!(
                    "agent {} already allowed for tenant {tenant} with grant sha256:{}; nothing \
                     changed",
                    manifest.name, manifest.grant_digest
                );
            }
        }
        AgentsCommand::Revoke {
            agent,
            tenant,
            actor,
        } => {
            let tenant = TenantId::new(&tenant)?;
            let actor = actor.checked()?;
            let change = ControlPlane::new(data_dir).revoke_agent(&tenant, &agent, &actor)?;
            println!(
                "agent {agent} revoked for tenant {tenant}: {}",
                change.change
            );
        }
        AgentsCommand::List { tenant } => {
            let tenant = TenantId::new(&tenant)?;
            // Listing is not a change: nothing is created when nothing was
            // ever allowed.
            if !data_dir.join("state.sqlite3").exists() {
                return Ok(());
            }
            for allowed in ControlPlane::new(data_dir).allowed_agents(&tenant)? {
                let when = humantime::format_rfc3339_seconds(
                    UNIX_EPOCH + Duration::from_millis(allowed.allowed_unix_ms),
                );
                println!(
                    "{} sha256:{} allowed by {} at {when}",
                    allowed.agent, allowed.grant_digest, allowed.actor
                );
            }
        }
    }
    Ok(())
}

pub(crate) fn config(data_dir: &Path, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Set {
            target,
            key,
            value,
            actor,
        } => {
            let tenant = TenantId::new(&target.tenant)?;
            let actor = actor.checked()?;
            let change = ControlPlane::new(data_dir).set_config(
                &tenant,
                &target.agent,
                &key,
                &value,
                &actor,
            )?;
            println!(
                "agent {} of tenant {tenant}: {}",
                target.agent, change.change
            );
        }
        ConfigCommand::Unset { target, key, actor } => {
            let tenant = TenantId::new(&target.tenant)?;
            let actor = actor.checked()?;
            let change =
                ControlPlane::new(data_dir).unset_config(&tenant, &target.agent, &key, &actor)?;
            println!(
                "agent {} of tenant {tenant}: {}",
                target.agent, change.change
            );
        }
        ConfigCommand::List { tenant, agent } => {
            let tenant = TenantId::new(&tenant)?;
            if !data_dir.join("state.sqlite3").exists() {
                return Ok(());
            }
            let control = ControlPlane::new(data_dir);
            match agent {
                Some(agent) => {
                    for (key, value) in control.config_values(&tenant, &agent)? {
                        println!("{key} = {}", printable(&value));
                    }
                }
                None => {
                    for (agent, key, value) in control.tenant_config_values(&tenant)? {
                        println!("{agent}: {key} = {}", printable(&value));
                    }
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn grants(command: GrantsCommand) -> anyhow::Result<()> {
    match command {
        GrantsCommand::Show { manifest } => {
            let manifest = Manifest::load(&manifest)?;
            print!("{}", grants::show(&manifest));
        }
    }
    Ok(())
}

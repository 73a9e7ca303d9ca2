//! `warden token create|revoke|list`: the daemon's API tokens from the
//! command line, through the same [`TokenStore`] as `/v1/tokens`.
//!
//! Each change is a control-plane event naming `--actor` with the role
//! `operator`. The control-plane log is opened before anything changes, so
//! that while a daemon holds it the command fails without a change.

use std::path::Path;

use warden_host_api::audit::Decision;
use warden_runtime::{
    TenantId,
    audit::{AuditLogs, AuditOptions},
};

use crate::{
    TokenCommand,
    daemon::{
        control::{self, ControlRecord, OPERATOR_ROLE, TOKEN_COMPONENT},
        roles::Role,
        tokens::{NewToken, TokenStore},
    },
};

pub(crate) fn dispatch(data_dir: &Path, command: TokenCommand) -> anyhow::Result<()> {
    let store = TokenStore::open(data_dir)?;
    match command {
        TokenCommand::List => {
            for t in store.list()? {
                let state = if t.revoked_unix_ms.is_some() {
                    "revoked"
                } else if t
                    .expires_unix_ms
                    .is_some_and(|e| e <= crate::audit_cmd::now_ms())
                {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{} {} {} {} {state}",
                    t.id,
                    t.role,
                    t.tenant.as_deref().unwrap_or("*"),
                    warden_host_api::scope::printable(&t.actor),
                );
            }
            Ok(())
        }
        TokenCommand::Create {
            actor: holder,
            role,
            tenant,
            expires,
        } => {
            let logs = AuditLogs::new(data_dir, AuditOptions::default());
            logs.control()?;
            let tenant = tenant.as_deref().map(TenantId::new).transpose()?;
            let request = format!(
                "cli-{:x}-{:x}",
                crate::audit_cmd::now_ms(),
                std::process::id()
            );
            let result = Role::parse(&role)
                .map_err(anyhow::Error::msg)
                .and_then(|role| {
                    store.create(&NewToken {
                        actor: holder,
                        role,
                        tenant: tenant.clone(),
                        expires,
                    })
                });
            let (resource, outcome) = match &result {
                Ok((info, _)) => (info.id.clone(), "ok".to_owned()),
                Err(e) => (String::new(), format!("{e:#}")),
            };
            control::record(
                &logs,
                &ControlRecord {
                    component: TOKEN_COMPONENT,
                    request: &request,
                    tenant: tenant.as_ref(),
                    actor: &crate::os_user(),
                    role: OPERATOR_ROLE,
                    operation: "tokens.create",
                    resource: &resource,
                    decision: Decision::Allow,
                    outcome: &outcome,
                    status: None,
                },
            )?;
            let (info, secret) = result?;
            println!("{secret}");
            eprintln!(
                "token {} for {} ({}); the secret above is shown only now",
                info.id, info.actor, info.role
            );
            Ok(())
        }
        TokenCommand::Revoke { id, actor } => {
            let logs = AuditLogs::new(data_dir, AuditOptions::default());
            logs.control()?;
            let request = format!(
                "cli-{:x}-{:x}",
                crate::audit_cmd::now_ms(),
                std::process::id()
            );
            let result = store.revoke(&id);
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{e:#}"),
            };
            let tenant = result
                .as_ref()
                .ok()
                .and_then(|i| i.tenant.as_deref())
                .and_then(|t| TenantId::new(t).ok());
            control::record(
                &logs,
                &ControlRecord {
                    component: TOKEN_COMPONENT,
                    request: &request,
                    tenant: tenant.as_ref(),
                    actor: &actor.name(),
                    role: OPERATOR_ROLE,
                    operation: "tokens.revoke",
                    resource: &id,
                    decision: Decision::Allow,
                    outcome: &outcome,
                    status: None,
                },
            )?;
            let info = result?;
            println!("revoked token {} of {}", info.id, info.actor);
            Ok(())
        }
    }
}

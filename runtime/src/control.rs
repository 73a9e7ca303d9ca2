//! The control plane: operator changes to what tenants' agents may do.
//!
//! [`ControlPlane`] is the one place that changes which agents a tenant may
//! run and with which grant, and the config values each agent reads. The `warden agents` commands are a thin layer
//! over it, and the daemon calls the same methods, so that every path
//! follows the same order: validate the operator's input, take the state
//! database's write lock, record the change in the control-plane audit
//! stream (`_control`), then store it. A change that cannot be recorded is
//! not stored. Guests have no path here: no WIT interface reaches these
//! methods.
//!
//! Approvals live in the state database (see `state/agents.rs`), keyed by
//! tenant and agent name, holding the approved grant's digest and its
//! canonical form; [`Runtime::invoke`](crate::Runtime::invoke) refuses an
//! agent whose name is not approved for the tenant or whose grant digest
//! differs from the approved one.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use thiserror::Error;
use warden_host_api::{
    audit::{self, AuditError, EventBody, HostScope, value_digest},
    error::StoreError,
    scope::{TenantId, is_hidden, validate_actor},
    warden_agent::scope::config::{
        ConfigKeyError, MAX_CONFIG_AGENTS, MAX_CONFIG_KEYS, MAX_CONFIG_VALUE_BYTES,
        validate_config_key,
    },
};

use crate::{
    audit::{AuditLogError, AuditLogs, AuditOptions, StreamId, now_unix_ms},
    grants::describe_change,
    manifest::{Manifest, validate_name},
    state::{AllowedAgent, OpenStateError, Records},
};

/// The `agent` field of control-plane events about allowed agents.
pub const AGENTS_COMPONENT: &str = "warden agents";
/// The `agent` field of control-plane events about config values.
pub const CONFIG_COMPONENT: &str = "warden config";

/// Why a control-plane operation did not happen. Nothing was stored.
#[derive(Debug, Error)]
pub enum ControlError {
    /// The actor is not a valid actor name.
    #[error("{0}")]
    Actor(String),
    /// The agent name is not valid.
    #[error("{0}")]
    AgentName(String),
    /// A config key breaks the key rule.
    #[error(
        "config key {key:?}: {rule}; use 1 to 64 of a-z, 0-9, '_', '-' and '.', starting with a letter"
    )]
    ConfigKey {
        /// The key, as given, escaped and cut to 80 bytes.
        key: String,
        /// The rule it breaks.
        rule: ConfigKeyError,
    },
    /// A config value is too large or holds control characters.
    #[error("config value for {key}: {reason}")]
    ConfigValue {
        /// The key.
        key: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// The agent already has the most config values allowed.
    #[error(
        "agent {agent} of tenant {tenant} already has {MAX_CONFIG_KEYS} config values, the \
         maximum; unset one first"
    )]
    TooManyConfigKeys {
        /// The tenant.
        tenant: TenantId,
        /// The agent.
        agent: String,
    },
    /// The tenant already has config values for the most agents allowed.
    #[error(
        "tenant {tenant} already has config values for {MAX_CONFIG_AGENTS} agents, the maximum; \
         list them with `warden config list --tenant {tenant}` and unset the values of an agent \
         it no longer runs first"
    )]
    TooManyConfigAgents {
        /// The tenant.
        tenant: TenantId,
    },
    /// Unsetting a config key that has no value.
    #[error("config key {key} is not set for agent {agent} of tenant {tenant}; nothing to unset")]
    ConfigNotSet {
        /// The tenant.
        tenant: TenantId,
        /// The agent.
        agent: String,
        /// The key.
        key: String,
    },
    /// Revoking an agent the tenant does not allow.
    #[error("agent {agent} is not allowed for tenant {tenant}; nothing to revoke")]
    NotAllowed {
        /// The tenant.
        tenant: TenantId,
        /// The agent.
        agent: String,
    },
    /// The state database could not be opened.
    #[error(transparent)]
    State(#[from] OpenStateError),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The control-plane audit stream could not be opened.
    #[error(transparent)]
    AuditLog(#[from] AuditLogError),
    /// The change could not be recorded, so it was not made.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A change made (or found unnecessary) by the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The approved grant digest before, hex; `None` when not allowed.
    pub before: Option<String>,
    /// The approved grant digest after, hex; `None` when not allowed.
    pub after: Option<String>,
    /// What changed, in plain words.
    pub change: String,
    /// Whether anything changed (and so was recorded). An approval of the
    /// grant already approved changes nothing and records nothing.
    pub changed: bool,
}

/// Operator changes to tenants' allowed agents and config values; see the
/// module docs.
pub struct ControlPlane {
    data_dir: PathBuf,
    audit: Arc<AuditLogs>,
    records: Mutex<Option<Records>>,
    /// Approved grant digests by tenant and agent, kept only while this
    /// process holds the control stream; see
    /// [`ControlPlane::allowed_grant_digest`].
    allowed: Mutex<AllowedCache>,
}

/// Approvals read while this process holds the control stream.
#[derive(Default)]
struct AllowedCache {
    /// Tenant to agent to the approved grant digest (`None`: not allowed)
    /// and when it was read.
    entries: HashMap<String, HashMap<String, (Option<String>, Instant)>>,
    /// Moves on at every change of an approval, so that an answer read
    /// from the database while a change was under way is not kept.
    generation: u64,
}

/// How long a cached approval is trusted before the database is read
/// again: a change made to the database outside the control plane (a hand
/// edit during an incident) is seen within this time.
pub(crate) const APPROVAL_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most approvals the cache holds before it starts over.
const MAX_CACHED_APPROVALS: usize = 16 * 1024;

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// The control plane of `data_dir`, with default audit options, for a
    /// process that runs no agents (the `warden` command). A process that
    /// also invokes agents uses [`Runtime::control`](crate::Runtime::control)
    /// instead, which shares the runtime's audit streams: each stream may be
    /// open once per process.
    ///
    /// Nothing is created on disk until the first change.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let audit = Arc::new(AuditLogs::new(data_dir.clone(), AuditOptions::default()));
        Self::with_audit(data_dir, audit)
    }

    pub(crate) fn with_audit(data_dir: PathBuf, audit: Arc<AuditLogs>) -> Self {
        Self {
            data_dir,
            audit,
            records: Mutex::new(None),
            allowed: Mutex::new(AllowedCache::default()),
        }
    }

    fn allowed_cache(&self) -> MutexGuard<'_, AllowedCache> {
        // The cache is rebuilt from the database on any miss; a panic
        // elsewhere cannot leave an entry that disagrees with it, because
        // entries change only under this lock together with the database.
        self.allowed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The grant digest `tenant` approved for `agent`, or `None` when the
    /// agent is not allowed.
    ///
    /// Every change of an approval is recorded in the control stream
    /// before it is stored, and a stream is open in one process at a time
    /// (its lock file). So while this process holds the control stream,
    /// approvals change only through this control plane, which drops the
    /// cached answer as it changes one, and the answer is kept in memory
    /// for up to [`APPROVAL_CACHE_TTL`] (so that a hand edit of the
    /// database is seen within that time too). Otherwise the state
    /// database is read each time, so that a revocation made by another
    /// process holds from the next call on.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] when the state database fails.
    pub(crate) fn allowed_grant_digest(
        &self,
        records: &Records,
        tenant: &TenantId,
        agent: &str,
    ) -> Result<Option<String>, StoreError> {
        let held = self.audit.is_open(&StreamId::Control);
        let generation = {
            let cache = self.allowed_cache();
            if held
                && let Some((digest, read)) = cache
                    .entries
                    .get(tenant.as_str())
                    .and_then(|agents| agents.get(agent))
                && read.elapsed() < APPROVAL_CACHE_TTL
            {
                return Ok(digest.clone());
            }
            cache.generation
        };
        // Read without the cache locked, so that a slow database holds up
        // only this caller, not every other tenant's cached answers.
        let digest = records.allowed_grant_digest(tenant, agent)?;
        let mut cache = self.allowed_cache();
        // Kept only if no approval changed since before the read.
        if held && cache.generation == generation {
            if cache.entries.values().map(HashMap::len).sum::<usize>() >= MAX_CACHED_APPROVALS {
                cache.entries.clear();
            }
            cache
                .entries
                .entry(tenant.as_str().to_owned())
                .or_default()
                .insert(agent.to_owned(), (digest.clone(), Instant::now()));
        }
        Ok(digest)
    }

    /// The state database, opened (and created) on first use.
    pub(crate) fn records(&self) -> Result<Records, OpenStateError> {
        let mut slot = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(records) = &*slot {
            return Ok(records.clone());
        }
        std::fs::create_dir_all(&self.data_dir).map_err(|e| OpenStateError {
            path: self.data_dir.clone(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        let records = Records::open(&self.data_dir.join("state.sqlite3"))?;
        *slot = Some(records.clone());
        Ok(records)
    }

    /// Allows `tenant` to run the agent of `manifest` with exactly the
    /// manifest's grant, on behalf of `actor`.
    ///
    /// Approving a new grant for an agent already allowed replaces the old
    /// one; approving the grant already approved changes and records
    /// nothing.
    ///
    /// # Scope
    ///
    /// Records one `control-change` event (`agents allow`) in the
    /// control-plane stream, naming `actor`, the tenant, the grant digests
    /// before and after, and the entries added and removed, before the
    /// approval is stored.
    ///
    /// # Errors
    ///
    /// Returns [`ControlError`]: a bad actor, a state database or audit
    /// failure. Nothing is stored then.
    pub fn allow_agent(
        &self,
        tenant: &TenantId,
        manifest: &Manifest,
        actor: &str,
    ) -> Result<Change, ControlError> {
        validate_actor(actor).map_err(ControlError::Actor)?;
        let records = self.records()?;
        let control = self.audit.control()?;
        let after_digest = manifest.grant_digest.to_hex();
        let mut cache = self.allowed_cache();
        forget(&mut cache, tenant, &manifest.name);
        let change = records.change_allowed_agent(tenant, &manifest.name, |before| {
            let before_digest = before.as_ref().map(|b| b.grant_digest.clone());
            if before_digest.as_deref() == Some(after_digest.as_str()) {
                let same = Change {
                    before: before_digest.clone(),
                    after: before_digest,
                    change: "unchanged; this grant is already allowed".into(),
                    changed: false,
                };
                return Ok((before, same));
            }
            let change = describe_change(before.as_ref().map(|b| &b.grant), Some(&manifest.grant));
            let body = EventBody::ControlChange {
                action: "agents allow".into(),
                agent: manifest.name.clone(),
                before_grant_digest: before_digest.clone(),
                after_grant_digest: Some(after_digest.clone()),
                change: change.clone(),
            };
            audit::emit_host(&*control, &self.scope(tenant, actor), body)?;
            let approval = AllowedAgent {
                agent: manifest.name.clone(),
                grant_digest: after_digest.clone(),
                grant: manifest.grant.clone(),
                actor: actor.to_owned(),
                allowed_unix_ms: now_unix_ms(),
            };
            let change = Change {
                before: before_digest,
                after: Some(after_digest.clone()),
                change,
                changed: true,
            };
            Ok::<_, AuditError>((Some(approval), change))
        })??;
        Ok(change)
    }

    /// Stops `tenant` from running the agent named `agent`, on behalf of
    /// `actor`.
    ///
    /// # Scope
    ///
    /// Records one `control-change` event (`agents revoke`) in the
    /// control-plane stream, with the grant digest that was approved and
    /// the entries removed, before the approval is removed.
    ///
    /// # Errors
    ///
    /// Returns [`ControlError`]: a bad actor or name, an agent the tenant
    /// does not allow, a state database or audit failure.
    pub fn revoke_agent(
        &self,
        tenant: &TenantId,
        agent: &str,
        actor: &str,
    ) -> Result<Change, ControlError> {
        validate_actor(actor).map_err(ControlError::Actor)?;
        validate_name(agent).map_err(ControlError::AgentName)?;
        let records = self.records()?;
        let control = self.audit.control()?;
        let mut cache = self.allowed_cache();
        forget(&mut cache, tenant, agent);
        let change = records.change_allowed_agent(tenant, agent, |before| {
            let Some(before) = before else {
                return Err(ControlError::NotAllowed {
                    tenant: tenant.clone(),
                    agent: agent.to_owned(),
                });
            };
            let change = describe_change(Some(&before.grant), None);
            let body = EventBody::ControlChange {
                action: "agents revoke".into(),
                agent: agent.to_owned(),
                before_grant_digest: Some(before.grant_digest.clone()),
                after_grant_digest: None,
                change: change.clone(),
            };
            audit::emit_host(&*control, &self.scope(tenant, actor), body)?;
            let change = Change {
                before: Some(before.grant_digest),
                after: None,
                change,
                changed: true,
            };
            Ok((None, change))
        })??;
        Ok(change)
    }

    /// The agents `tenant` may run, by name, with their approved grants.
    ///
    /// # Errors
    ///
    /// Returns [`ControlError`] when the state database fails.
    pub fn allowed_agents(&self, tenant: &TenantId) -> Result<Vec<AllowedAgent>, ControlError> {
        Ok(self.records()?.allowed_agents(tenant)?)
    }

    /// Sets the config value of `key` for `agent` of `tenant` to `value`, on
    /// behalf of `actor`. The agent reads it through `warden:agent/config`
    /// when its grant names `key`.
    ///
    /// # Scope
    ///
    /// Records one `control-change` event (`config set`) in the
    /// control-plane stream, naming `actor`, the key and the digests of the
    /// old and new values (never the values), with the agent's allowed
    /// grant digest as before and after, before the value is stored.
    /// Setting the value already set changes and records nothing.
    ///
    /// # Errors
    ///
    /// Returns [`ControlError`]: a bad actor, agent name, key or value
    /// (over [`MAX_CONFIG_VALUE_BYTES`], control characters), more than
    /// [`MAX_CONFIG_KEYS`] keys for the agent, a new agent when the tenant
    /// already holds values for [`MAX_CONFIG_AGENTS`] agents, a state
    /// database or audit failure. Nothing is stored then.
    pub fn set_config(
        &self,
        tenant: &TenantId,
        agent: &str,
        key: &str,
        value: &str,
        actor: &str,
    ) -> Result<Change, ControlError> {
        validate_actor(actor).map_err(ControlError::Actor)?;
        validate_name(agent).map_err(ControlError::AgentName)?;
        check_config_key(key)?;
        if value.len() > MAX_CONFIG_VALUE_BYTES {
            return Err(ControlError::ConfigValue {
                key: key.to_owned(),
                reason: format!(
                    "value is {} bytes, over the maximum of {MAX_CONFIG_VALUE_BYTES}",
                    value.len()
                ),
            });
        }
        if value
            .chars()
            .any(|c| (c.is_control() && !matches!(c, '\t' | '\n')) || is_hidden(c))
        {
            return Err(ControlError::ConfigValue {
                key: key.to_owned(),
                reason: "value contains a control or invisible character; use printable text"
                    .into(),
            });
        }
        self.change_config(tenant, agent, key, Some(value), actor)
    }

    /// Removes the config value of `key` for `agent` of `tenant`, on behalf
    /// of `actor`.
    ///
    /// # Scope
    ///
    /// Records one `control-change` event (`config unset`) in the
    /// control-plane stream, with the digest of the removed value, before
    /// it is removed.
    ///
    /// # Errors
    ///
    /// Returns [`ControlError`]: a bad actor, agent name or key, a key that
    /// is not set, a state database or audit failure.
    pub fn unset_config(
        &self,
        tenant: &TenantId,
        agent: &str,
        key: &str,
        actor: &str,
    ) -> Result<Change, ControlError> {
        validate_actor(actor).map_err(ControlError::Actor)?;
        validate_name(agent).map_err(ControlError::AgentName)?;
        check_config_key(key)?;
        self.change_config(tenant, agent, key, None, actor)
    }

    /// The config values set for every agent of `tenant`, as (agent, key,
    /// value), by agent and key.
    ///
    /// # Errors
    ///
    /// Returns [`ControlError`] when the state database fails.
    pub fn tenant_config_values(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(String, String, String)>, ControlError> {
        Ok(self.records()?.tenant_config_values(tenant)?)
    }

    /// The config values set for `agent` of `tenant`, by key.
    ///
    /// # Errors
    ///
    /// Returns [`ControlError`] for a bad agent name or when the state
    /// database fails.
    pub fn config_values(
        &self,
        tenant: &TenantId,
        agent: &str,
    ) -> Result<Vec<(String, String)>, ControlError> {
        validate_name(agent).map_err(ControlError::AgentName)?;
        Ok(self.records()?.config_values(tenant, agent)?)
    }

    fn change_config(
        &self,
        tenant: &TenantId,
        agent: &str,
        key: &str,
        value: Option<&str>,
        actor: &str,
    ) -> Result<Change, ControlError> {
        let records = self.records()?;
        let control = self.audit.control()?;
        // The grant does not change with a value, but naming it ties the
        // event to the approval the value is for.
        let grant = records.allowed_grant_digest(tenant, agent)?;
        let action = if value.is_some() {
            "config set"
        } else {
            "config unset"
        };
        let change = records.change_config(tenant, agent, key, |slot| {
            let new = value.map(str::to_owned);
            // Unsetting a key that has no value is an error, not a no-op:
            // the operator named something that is not there.
            if value.is_none() && slot.value.is_none() {
                return Err(ControlError::ConfigNotSet {
                    tenant: tenant.clone(),
                    agent: agent.to_owned(),
                    key: key.to_owned(),
                });
            }
            if slot.value == new {
                let same = Change {
                    before: grant.clone(),
                    after: grant.clone(),
                    change: "unchanged; this value is already set".into(),
                    changed: false,
                };
                return Ok((new, same));
            }
            if slot.value.is_none() && slot.keys >= MAX_CONFIG_KEYS {
                return Err(ControlError::TooManyConfigKeys {
                    tenant: tenant.clone(),
                    agent: agent.to_owned(),
                });
            }
            if slot.keys == 0 && slot.other_agents >= MAX_CONFIG_AGENTS {
                return Err(ControlError::TooManyConfigAgents {
                    tenant: tenant.clone(),
                });
            }
            let digest = |v: &str| format!("sha256:{}", value_digest(v.as_bytes()));
            let words = match (&slot.value, value) {
                (None, Some(v)) => format!("config: + {key} = {}", digest(v)),
                (Some(old), Some(v)) => {
                    format!("config: {key} = {} (was {})", digest(v), digest(old))
                }
                (Some(old), None) => format!("config: - {key} (was {})", digest(old)),
                (None, None) => format!("config: {key} unchanged"),
            };
            let body = EventBody::ControlChange {
                action: action.into(),
                agent: agent.to_owned(),
                before_grant_digest: grant.clone(),
                after_grant_digest: grant.clone(),
                change: words.clone(),
            };
            let scope = self.scope_of(CONFIG_COMPONENT, tenant, actor);
            audit::emit_host(&*control, &scope, body)?;
            let change = Change {
                before: grant.clone(),
                after: grant.clone(),
                change: words,
                changed: true,
            };
            Ok((new, change))
        })??;
        Ok(change)
    }

    fn scope(&self, tenant: &TenantId, actor: &str) -> HostScope {
        self.scope_of(AGENTS_COMPONENT, tenant, actor)
    }

    fn scope_of(&self, component: &str, tenant: &TenantId, actor: &str) -> HostScope {
        HostScope {
            tenant: Some(tenant.clone()),
            component: component.into(),
            invocation: format!("{:x}-{:x}", now_unix_ms(), std::process::id()),
            actor: actor.to_owned(),
        }
    }
}

/// Drops the cached approval of `agent` of `tenant` and moves the cache's
/// generation on. Called with the cache locked before the approval changes,
/// and the lock held until the change is stored, so that no reader keeps
/// the value being replaced: one that read it before the change finds the
/// generation moved on.
fn forget(cache: &mut AllowedCache, tenant: &TenantId, agent: &str) {
    cache.generation = cache.generation.wrapping_add(1);
    if let Some(agents) = cache.entries.get_mut(tenant.as_str()) {
        agents.remove(agent);
    }
}

fn check_config_key(key: &str) -> Result<(), ControlError> {
    validate_config_key(key).map_err(|rule| ControlError::ConfigKey {
        key: warden_host_api::scope::printable(&warden_host_api::audit::bounded(key, 80)),
        rule,
    })
}

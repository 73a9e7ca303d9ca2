//! Config values an operator set per tenant and agent.
//!
//! The table `config_values` holds, per tenant, agent and key, one value of
//! non-secret text. Like the allowed agents it changes only through the
//! control plane (`warden config set|unset`), which records each change in
//! the control-plane audit stream first. Invocations read the values of the
//! keys their agent was granted, once, when the store is created.

use rusqlite::{OptionalExtension, params};
use warden_host_api::{error::StoreError, scope::TenantId};

use super::{Records, failed};

/// The schema of the table, created with the others when the database is
/// opened.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS config_values (
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (tenant, agent, key)
) WITHOUT ROWID;
";

/// The stored value of one key and how many keys the agent has, as a
/// change sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConfigSlot {
    /// The value now stored under the key, if any.
    pub(crate) value: Option<String>,
    /// How many keys are set for the tenant's agent.
    pub(crate) keys: usize,
    /// How many other agents of the tenant have at least one value set.
    pub(crate) other_agents: usize,
}

impl Records {
    /// Every value set for any agent of `tenant`, as (agent, key, value),
    /// by agent and key.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] when the query fails.
    pub fn tenant_config_values(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT agent, key, value FROM config_values WHERE tenant = ?1 ORDER BY agent, key",
            )
            .map_err(failed("config values", tenant))?;
        let rows = stmt
            .query_map(params![tenant.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(failed("config values", tenant))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(failed("config values", tenant))
    }

    /// Every value set for `agent` of `tenant`, by key.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] when the query fails.
    pub fn config_values(
        &self,
        tenant: &TenantId,
        agent: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, value FROM config_values WHERE tenant = ?1 AND agent = ?2
                 ORDER BY key",
            )
            .map_err(failed("config values", tenant))?;
        let rows = stmt
            .query_map(params![tenant.as_str(), agent], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(failed("config values", tenant))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(failed("config values", tenant))
    }

    /// Runs `change` on the value of `key` for `agent` of `tenant` inside
    /// one immediate SQLite transaction: `change` sees the current
    /// [`ConfigSlot`], may record the change elsewhere, and returns the value
    /// to store (`Some`) or remove (`None`) with a result for the caller.
    /// Nothing is stored when `change` fails or returns the value unchanged.
    pub(crate) fn change_config<T, E>(
        &self,
        tenant: &TenantId,
        agent: &str,
        key: &str,
        change: impl FnOnce(ConfigSlot) -> Result<(Option<String>, T), E>,
    ) -> Result<Result<T, E>, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(failed("config set", tenant))?;
        let value: Option<String> = tx
            .prepare_cached(
                "SELECT value FROM config_values WHERE tenant = ?1 AND agent = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant.as_str(), agent, key], |r| r.get(0))
                    .optional()
            })
            .map_err(failed("config set", tenant))?;
        let keys: i64 = tx
            .prepare_cached("SELECT count(*) FROM config_values WHERE tenant = ?1 AND agent = ?2")
            .and_then(|mut s| s.query_row(params![tenant.as_str(), agent], |r| r.get(0)))
            .map_err(failed("config set", tenant))?;
        let other_agents: i64 = tx
            .prepare_cached(
                "SELECT count(DISTINCT agent) FROM config_values WHERE tenant = ?1 AND agent != ?2",
            )
            .and_then(|mut s| s.query_row(params![tenant.as_str(), agent], |r| r.get(0)))
            .map_err(failed("config set", tenant))?;
        let slot = ConfigSlot {
            value: value.clone(),
            keys: usize::try_from(keys).unwrap_or(usize::MAX),
            other_agents: usize::try_from(other_agents).unwrap_or(usize::MAX),
        };
        let (after, result) = match change(slot) {
            Ok(changed) => changed,
            Err(e) => return Ok(Err(e)),
        };
        if after == value {
            return Ok(Ok(result));
        }
        match &after {
            Some(v) => tx
                .prepare_cached(
                    "INSERT INTO config_values (tenant, agent, key, value) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, agent, key) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut s| s.execute(params![tenant.as_str(), agent, key, v])),
            None => tx
                .prepare_cached(
                    "DELETE FROM config_values WHERE tenant = ?1 AND agent = ?2 AND key = ?3",
                )
                .and_then(|mut s| s.execute(params![tenant.as_str(), agent, key])),
        }
        .map_err(failed("config set", tenant))?;
        tx.commit().map_err(failed("config set", tenant))?;
        Ok(Ok(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_per_tenant_and_agent() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::open(&dir.path().join("state.sqlite3")).unwrap();
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        let set = |t: &TenantId, agent: &str, key: &str, v: Option<&str>| {
            records
                .change_config(t, agent, key, |slot| {
                    Ok::<_, ()>((v.map(str::to_owned), slot))
                })
                .unwrap()
                .unwrap()
        };
        set(&acme, "triage", "currency", Some("EUR"));
        let slot = set(&acme, "triage", "limit", Some("100"));
        assert_eq!(
            slot,
            ConfigSlot {
                value: None,
                keys: 1,
                other_agents: 0,
            }
        );
        let slot = set(&acme, "sync", "limit", Some("5"));
        assert_eq!(
            slot.other_agents, 1,
            "triage holds values, sync did not yet"
        );
        assert_eq!(set(&globex, "sync", "limit", Some("5")).other_agents, 0);
        assert_eq!(
            records.config_values(&acme, "triage").unwrap(),
            [
                ("currency".into(), "EUR".into()),
                ("limit".into(), "100".into())
            ]
        );
        assert!(records.config_values(&globex, "triage").unwrap().is_empty());
        assert!(records.config_values(&acme, "other").unwrap().is_empty());
        set(&acme, "triage", "currency", None);
        assert_eq!(records.config_values(&acme, "triage").unwrap().len(), 1);
    }
}

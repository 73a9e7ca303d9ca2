//! Which agents each tenant may run, with which grant.
//!
//! The table `allowed_agents` holds, per tenant and agent name, the digest
//! and the canonical JSON of the grant an operator approved, who approved
//! it and when. It lives in the state database rather than in a file an
//! operator edits, so that the only way to change it is a `warden` command
//! (or the daemon calling the same code), and every such change is first
//! recorded in the control-plane audit stream. A hand edit of the database
//! is possible for whoever owns the host, but it leaves the stored digest
//! without a matching control-plane event, which an auditor can see.
//!
//! [`Runtime::invoke`](crate::Runtime::invoke) checks the approved digest
//! on every invocation, so a revocation takes effect at the next run; a
//! process that holds the control-plane stream (the daemon) keeps the
//! answers in memory for up to a second, see
//! [`ControlPlane`](crate::ControlPlane).

use rusqlite::{OptionalExtension, params};
use warden_host_api::{error::StoreError, scope::AgentGrant, scope::TenantId};

use super::{Records, failed};

/// The schema of the table, created with the others when the database is
/// opened.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS allowed_agents (
  tenant TEXT NOT NULL,
  agent TEXT NOT NULL,
  grant_digest TEXT NOT NULL,
  grant_json TEXT NOT NULL,
  actor TEXT NOT NULL,
  allowed_unix_ms INTEGER NOT NULL,
  PRIMARY KEY (tenant, agent)
) WITHOUT ROWID;
";

/// One agent a tenant may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedAgent {
    /// The agent's name from its manifest.
    pub agent: String,
    /// sha256 of the approved grant, hex.
    pub grant_digest: String,
    /// The approved grant.
    pub grant: AgentGrant,
    /// Who approved it.
    pub actor: String,
    /// When, in milliseconds since the Unix epoch.
    pub allowed_unix_ms: u64,
}

type Row = (String, String, String, String, i64);

fn decode(tenant: &TenantId, row: Row) -> Result<AllowedAgent, StoreError> {
    let (agent, grant_digest, grant_json, actor, ms) = row;
    let grant = serde_json::from_str(&grant_json).map_err(|e| {
        StoreError::new(
            format!("allowed grant of agent {agent} for tenant {tenant} does not decode"),
            e,
        )
    })?;
    Ok(AllowedAgent {
        agent,
        grant_digest,
        grant,
        actor,
        allowed_unix_ms: u64::try_from(ms).unwrap_or(0),
    })
}

impl Records {
    /// The grant digest `tenant` approved for `agent`, or `None` when the
    /// agent is not allowed.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] when the query fails.
    pub fn allowed_grant_digest(
        &self,
        tenant: &TenantId,
        agent: &str,
    ) -> Result<Option<String>, StoreError> {
        self.lock()
            .prepare_cached(
                "SELECT grant_digest FROM allowed_agents WHERE tenant = ?1 AND agent = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant.as_str(), agent], |r| r.get(0))
                    .optional()
            })
            .map_err(failed("allowed agent", tenant))
    }

    /// Every agent `tenant` may run, by name.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] when the query fails or a stored grant does
    /// not decode.
    pub fn allowed_agents(&self, tenant: &TenantId) -> Result<Vec<AllowedAgent>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT agent, grant_digest, grant_json, actor, allowed_unix_ms
                 FROM allowed_agents WHERE tenant = ?1 ORDER BY agent",
            )
            .map_err(failed("allowed agents", tenant))?;
        let rows = stmt
            .query_map(params![tenant.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(failed("allowed agents", tenant))?
            .collect::<Result<Vec<Row>, _>>()
            .map_err(failed("allowed agents", tenant))?;
        rows.into_iter().map(|row| decode(tenant, row)).collect()
    }

    /// Runs `change` on the stored approval of `agent` for `tenant` inside
    /// one immediate SQLite transaction: `change` sees the approval as it
    /// is, may record the change elsewhere (the audit stream), and returns
    /// the approval to store (`Some`) or remove (`None`) with a result for
    /// the caller. Nothing is stored when `change` fails or returns the
    /// approval unchanged.
    pub(crate) fn change_allowed_agent<T, E>(
        &self,
        tenant: &TenantId,
        agent: &str,
        change: impl FnOnce(Option<AllowedAgent>) -> Result<(Option<AllowedAgent>, T), E>,
    ) -> Result<Result<T, E>, StoreError> {
        let mut conn = self.lock();
        let sql = failed("allow agent", tenant);
        // IMMEDIATE takes the write lock before the read, so that two
        // operators changing one agent at once see each other's change.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(failed("allow agent", tenant))?;
        let row: Option<Row> = tx
            .prepare_cached(
                "SELECT agent, grant_digest, grant_json, actor, allowed_unix_ms
                 FROM allowed_agents WHERE tenant = ?1 AND agent = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant.as_str(), agent], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()
            })
            .map_err(failed("allow agent", tenant))?;
        let before = row.map(|row| decode(tenant, row)).transpose()?;
        let (after, result) = match change(before.clone()) {
            Ok(changed) => changed,
            Err(e) => return Ok(Err(e)),
        };
        if after == before {
            return Ok(Ok(result));
        }
        match after {
            Some(a) => {
                let json = serde_json::to_string(&a.grant).map_err(|e| {
                    StoreError::new(format!("grant of agent {agent} does not encode"), e)
                })?;
                tx.prepare_cached(
                    "INSERT INTO allowed_agents
                       (tenant, agent, grant_digest, grant_json, actor, allowed_unix_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tenant, agent) DO UPDATE SET
                       grant_digest = excluded.grant_digest,
                       grant_json = excluded.grant_json,
                       actor = excluded.actor,
                       allowed_unix_ms = excluded.allowed_unix_ms",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant.as_str(),
                        agent,
                        a.grant_digest,
                        json,
                        a.actor,
                        i64::try_from(a.allowed_unix_ms).unwrap_or(i64::MAX)
                    ])
                })
                .map_err(failed("allow agent", tenant))?;
            }
            None => {
                tx.prepare_cached("DELETE FROM allowed_agents WHERE tenant = ?1 AND agent = ?2")
                    .and_then(|mut s| s.execute(params![tenant.as_str(), agent]))
                    .map_err(failed("revoke agent", tenant))?;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(Ok(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(agent: &str, digest: &str) -> AllowedAgent {
        AllowedAgent {
            agent: agent.into(),
            grant_digest: digest.into(),
            grant: AgentGrant::default(),
            actor: "alice".into(),
            allowed_unix_ms: 1,
        }
    }

    #[test]
    fn approvals_are_per_tenant_and_can_be_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::open(&dir.path().join("state.sqlite3")).unwrap();
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        let set = |t: &TenantId, a: Option<AllowedAgent>| {
            records
                .change_allowed_agent(t, "triage", |_| Ok::<_, ()>((a, ())))
                .unwrap()
                .unwrap();
        };
        set(&acme, Some(allowed("triage", "d1")));
        assert_eq!(
            records.allowed_grant_digest(&acme, "triage").unwrap(),
            Some("d1".into())
        );
        assert_eq!(
            records.allowed_grant_digest(&globex, "triage").unwrap(),
            None
        );
        set(&acme, Some(allowed("triage", "d2")));
        assert_eq!(records.allowed_agents(&acme).unwrap()[0].grant_digest, "d2");
        set(&acme, None);
        assert!(records.allowed_agents(&acme).unwrap().is_empty());
    }

    #[test]
    fn a_failed_change_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::open(&dir.path().join("state.sqlite3")).unwrap();
        let acme = TenantId::new("acme").unwrap();
        let out = records
            .change_allowed_agent(&acme, "triage", |_| Err::<(_, ()), _>("audit down"))
            .unwrap();
        assert_eq!(out, Err("audit down"));
        assert_eq!(records.allowed_grant_digest(&acme, "triage").unwrap(), None);
    }
}

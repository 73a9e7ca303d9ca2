//! Tenant records in SQLite.
//!
//! One database file, `<data-dir>/state.sqlite3`, holds every tenant's
//! records in one table keyed by `(tenant, key)`, and each tenant's stored
//! bytes in `usage`. Every statement binds the tenant as a parameter, and
//! [`RecordStore`] takes a [`TenantId`] on every call, so that no query can be
//! formed without one.
//!
//! An invocation never writes to the database directly: it gets a
//! [`Transaction`] (see `state/transaction.rs`) that keeps its writes in
//! memory, shows them to its own reads, and applies them in one SQLite
//! transaction only when the invocation succeeds.
//!
//! The same file holds the control plane's tables, changed only through
//! `warden` commands: which agents each tenant may run (`state/agents.rs`)
//! and the config values set for them (`state/config.rs`).

mod agents;
mod config;
mod transaction;

pub use agents::AllowedAgent;
pub use transaction::{CommitError, Transaction};

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;
use warden_host_api::{error::StoreError, scope::TenantId, warden_agent::RecordStore};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
  tenant TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
  tenant TEXT PRIMARY KEY,
  bytes INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The state database could not be opened.
#[derive(Debug, Error)]
#[error("cannot open state database {path}")]
pub struct OpenStateError {
    /// The database file.
    pub path: PathBuf,
    /// SQLite's error.
    #[source]
    pub source: rusqlite::Error,
}

/// A shared handle to the records database.
#[derive(Clone, Debug)]
pub struct Records {
    conn: Arc<Mutex<Connection>>,
}

impl Records {
    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    ///
    /// Fails when SQLite cannot open or initialise the file.
    pub fn open(path: &Path) -> Result<Self, OpenStateError> {
        let err = |source| OpenStateError {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        // WAL lets readers run beside the writer; NORMAL syncs at checkpoints,
        // which survives a process crash. The audit log, not this file, is
        // the evidence, and it is synced before every invocation returns.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // Every statement warden runs stays prepared: an invocation's
        // statements are not parsed again once the process has run one.
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(agents::SCHEMA).map_err(err)?;
        conn.execute_batch(config::SCHEMA).map_err(err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Starts a transaction of `tenant`'s writes for one invocation.
    pub fn begin(&self, tenant: &TenantId) -> Transaction {
        Transaction::new(self.clone(), tenant.clone())
    }

    /// Bytes of keys plus values `tenant` holds.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] when the query fails.
    pub fn usage(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.lock()
            .prepare_cached("SELECT bytes FROM usage WHERE tenant = ?1")
            .and_then(|mut s| {
                s.query_row(params![tenant.as_str()], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .map(|b| b.map_or(0, |b| u64::try_from(b).unwrap_or(0)))
            .map_err(failed("usage", tenant))
    }

    /// The value of `key` of `tenant`, if any, and the bytes `tenant`
    /// holds, read in one statement.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] when the query fails.
    pub fn get_with_usage(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<(Option<Vec<u8>>, u64), StoreError> {
        self.lock()
            .prepare_cached(
                "SELECT (SELECT value FROM records WHERE tenant = ?1 AND key = ?2),
                        (SELECT bytes FROM usage WHERE tenant = ?1)",
            )
            .and_then(|mut s| {
                s.query_row(params![tenant.as_str(), key], |r| {
                    Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?))
                })
            })
            .map(|(value, bytes)| (value, bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0))))
            .map_err(failed("get", tenant))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection cannot leave a statement half
        // applied: SQLite rolls back an unfinished statement on its own.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn failed(
    op: &'static str,
    tenant: &TenantId,
) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::new(format!("records {op} for tenant {tenant} failed"), e)
}

impl RecordStore for Records {
    fn get(&mut self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.lock()
            .prepare_cached("SELECT value FROM records WHERE tenant = ?1 AND key = ?2")
            .and_then(|mut s| {
                s.query_row(params![tenant.as_str(), key], |r| r.get(0))
                    .optional()
            })
            .map_err(failed("get", tenant))
    }

    fn put(&mut self, tenant: &TenantId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut txn = self.begin(tenant);
        txn.put(tenant, key, value)?;
        txn.commit(u64::MAX)
            .map(|_| ())
            .map_err(|e| StoreError::new("records put failed", e))
    }

    fn delete(&mut self, tenant: &TenantId, key: &str) -> Result<bool, StoreError> {
        let mut txn = self.begin(tenant);
        let existed = txn.delete(tenant, key)?;
        txn.commit(u64::MAX)
            .map_err(|e| StoreError::new("records delete failed", e))?;
        Ok(existed)
    }

    fn stored_bytes(&mut self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.usage(tenant)
    }

    fn list(
        &mut self,
        tenant: &TenantId,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        // Keys under `prefix/` sort between `prefix/` and `prefix0` ('0' is
        // the byte after '/'), so the primary key index answers the range.
        let lo = format!("{prefix}/");
        let hi = format!("{prefix}0");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key FROM records WHERE tenant = ?1
                 AND (key = ?2 OR (key >= ?3 AND key < ?4))
                 ORDER BY key LIMIT ?5",
            )
            .map_err(failed("list", tenant))?;
        let rows = stmt
            .query_map(params![tenant.as_str(), prefix, lo, hi, limit], |r| {
                r.get(0)
            })
            .map_err(failed("list", tenant))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(failed("list", tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Records) {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::open(&dir.path().join("state.sqlite3")).unwrap();
        (dir, records)
    }

    #[test]
    fn tenants_do_not_see_each_others_keys() {
        let (_dir, mut r) = open();
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        r.put(&acme, "a/1", b"x").unwrap();
        assert_eq!(r.get(&globex, "a/1").unwrap(), None);
        assert!(r.list(&globex, "a", 10).unwrap().is_empty());
        assert!(!r.delete(&globex, "a/1").unwrap());
        assert_eq!(r.get(&acme, "a/1").unwrap().as_deref(), Some(&b"x"[..]));
    }

    #[test]
    fn list_returns_whole_segments_only() {
        let (_dir, mut r) = open();
        let t = TenantId::new("t").unwrap();
        for k in ["a", "a/1", "a/2/x", "a-b", "ab", "a0"] {
            r.put(&t, k, b"v").unwrap();
        }
        assert_eq!(r.list(&t, "a", 10).unwrap(), ["a", "a/1", "a/2/x"]);
        assert_eq!(r.list(&t, "a", 2).unwrap(), ["a", "a/1"]);
    }
}

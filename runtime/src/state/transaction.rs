//! One invocation's record writes, held until the invocation succeeds.
//!
//! Processing integrity asks that a failed run leaves nothing half written.
//! A [`Transaction`] keeps puts and deletes in memory, lets the invocation's
//! own reads and lists see them, and applies them all in one SQLite
//! transaction in [`Transaction::commit`]. A trap, a timeout or an agent
//! error drops them with [`Transaction::discard`]. No database lock is held
//! while the guest runs, so one tenant's long invocation never blocks
//! another's writes.
//!
//! Two invocations of one tenant that write the same key both succeed; the
//! one that commits last wins, as with two separate writes.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use rusqlite::{OptionalExtension, params};
use thiserror::Error;
use warden_host_api::{error::StoreError, scope::TenantId, warden_agent::RecordStore};

use super::Records;

/// Why a transaction could not be applied. Nothing of it was applied.
#[derive(Debug, Error)]
pub enum CommitError {
    /// The writes would take the tenant past its stored-bytes limit (another
    /// invocation of the tenant committed in the meantime).
    #[error("tenant {tenant} would hold {bytes} bytes of records, over max_stored_bytes ({max})")]
    OverQuota {
        /// The tenant.
        tenant: String,
        /// What the tenant would hold.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// SQLite failed.
    #[error("cannot apply the writes of tenant {tenant}")]
    Sqlite {
        /// The tenant.
        tenant: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

struct Pending {
    records: Records,
    tenant: TenantId,
    /// Key to new value; `None` is a delete.
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// The tenant's stored bytes when first asked, from the database.
    base_usage: Option<u64>,
    /// Change in stored bytes the pending writes make.
    delta: i64,
    /// Bytes of keys and values held in `writes`.
    held: u64,
    /// The last key read from the database (not pending) and the size of
    /// its key plus value then, if it existed. A `put` or `delete` usually
    /// follows a read of the same key (the host reads the value it
    /// replaces for the audit event), and needs only that size.
    last_read: Option<(String, Option<i64>)>,
}

/// A handle on one invocation's pending writes. Clones share them.
#[derive(Clone)]
pub struct Transaction {
    pending: Arc<Mutex<Pending>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.lock();
        f.debug_struct("Transaction")
            .field("tenant", &p.tenant)
            .field("writes", &p.writes.len())
            .finish()
    }
}

fn size(key: &str, value: &[u8]) -> i64 {
    i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX)
}

impl Transaction {
    pub(super) fn new(records: Records, tenant: TenantId) -> Self {
        let pending = Pending {
            records,
            tenant,
            writes: BTreeMap::new(),
            base_usage: None,
            delta: 0,
            held: 0,
            last_read: None,
        };
        Self {
            pending: Arc::new(Mutex::new(pending)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Pending writes are plain data; a panic elsewhere cannot leave them
        // half updated in a way a later commit or discard would misread.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many writes are pending.
    pub fn pending_writes(&self) -> u64 {
        self.lock().writes.len() as u64
    }

    /// Drops the pending writes; returns how many there were.
    pub fn discard(&self) -> u64 {
        let mut p = self.lock();
        let n = p.writes.len() as u64;
        p.writes.clear();
        p.delta = 0;
        p.held = 0;
        p.last_read = None;
        n
    }

    /// Applies the pending writes in one SQLite transaction, refusing them
    /// all if the tenant would then hold more than `max_stored_bytes`;
    /// returns how many were applied.
    ///
    /// # Errors
    ///
    /// Returns [`CommitError`]; the database is then unchanged.
    pub fn commit(&self, max_stored_bytes: u64) -> Result<u64, CommitError> {
        let mut p = self.lock();
        if p.writes.is_empty() {
            return Ok(0);
        }
        let tenant = p.tenant.as_str().to_owned();
        let sql = |source| CommitError::Sqlite {
            tenant: tenant.clone(),
            source,
        };
        let mut conn = p.records.lock();
        // IMMEDIATE takes the write lock at BEGIN: a deferred transaction that
        // reads first and then writes fails at once with SQLITE_BUSY when
        // another process committed meanwhile, without waiting out the busy
        // timeout.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql)?;
        let mut delta: i64 = 0;
        for (key, value) in &p.writes {
            let old: Option<i64> = tx
                .prepare_cached(
                    "SELECT length(CAST(key AS BLOB)) + length(value) FROM records
                     WHERE tenant = ?1 AND key = ?2",
                )
                .and_then(|mut s| s.query_row(params![tenant, key], |r| r.get(0)).optional())
                .map_err(sql)?;
            delta -= old.unwrap_or(0);
            match value {
                Some(value) => {
                    tx.prepare_cached(
                        "INSERT INTO records (tenant, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
                    )
                    .and_then(|mut s| s.execute(params![tenant, key, value]))
                    .map_err(sql)?;
                    delta += size(key, value);
                }
                None => {
                    tx.prepare_cached("DELETE FROM records WHERE tenant = ?1 AND key = ?2")
                        .and_then(|mut s| s.execute(params![tenant, key]))
                        .map_err(sql)?;
                }
            }
        }
        let before: i64 = tx
            .prepare_cached("SELECT bytes FROM usage WHERE tenant = ?1")
            .and_then(|mut s| s.query_row(params![tenant], |r| r.get(0)).optional())
            .map_err(sql)?
            .unwrap_or(0);
        let after = before.saturating_add(delta).max(0);
        let after_bytes = u64::try_from(after).unwrap_or(0);
        if delta > 0 && after_bytes > max_stored_bytes {
            // Dropping `tx` rolls everything back.
            return Err(CommitError::OverQuota {
                tenant,
                bytes: after_bytes,
                max: max_stored_bytes,
            });
        }
        tx.prepare_cached(
            "INSERT INTO usage (tenant, bytes) VALUES (?1, ?2)
             ON CONFLICT (tenant) DO UPDATE SET bytes = excluded.bytes",
        )
        .and_then(|mut s| s.execute(params![tenant, after]))
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        drop(conn);
        let n = p.writes.len() as u64;
        p.writes.clear();
        p.delta = 0;
        p.held = 0;
        p.base_usage = None;
        p.last_read = None;
        Ok(n)
    }
}

impl Pending {
    fn check_tenant(&self, tenant: &TenantId) -> Result<(), StoreError> {
        if *tenant == self.tenant {
            return Ok(());
        }
        Err(StoreError {
            message: format!(
                "transaction of tenant {} used for tenant {tenant}; this is a warden bug, please \
                 report it",
                self.tenant
            ),
            source: None,
        })
    }

    fn current(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(pending) => Ok(pending.clone()),
            None => {
                // The first read of the transaction also takes the tenant's
                // stored bytes, from the same snapshot: a `put` asks for
                // both, and one statement costs one read lock, not two.
                let value = if self.base_usage.is_none() {
                    let (value, usage) = self.records.get_with_usage(&self.tenant, key)?;
                    self.base_usage = Some(usage);
                    value
                } else {
                    self.records.clone().get(&self.tenant, key)?
                };
                let found = value.as_deref().map(|v| size(key, v));
                self.last_read = Some((key.to_owned(), found));
                Ok(value)
            }
        }
    }

    /// Size of the key plus the value `key` holds as this transaction sees
    /// it, if any.
    fn current_size(&mut self, key: &str) -> Result<Option<i64>, StoreError> {
        if let Some(pending) = self.writes.get(key) {
            return Ok(pending.as_deref().map(|v| size(key, v)));
        }
        match &self.last_read {
            Some((read, found)) if read == key => Ok(*found),
            _ => Ok(self.current(key)?.map(|v| size(key, &v))),
        }
    }
}

/// Bytes a replaced pending write held.
fn held_by(key: &str, replaced: Option<Option<Vec<u8>>>) -> u64 {
    match replaced {
        None => 0,
        Some(value) => (key.len() + value.map_or(0, |v| v.len())) as u64,
    }
}

impl RecordStore for Transaction {
    fn pending_write_bytes(&mut self) -> u64 {
        self.lock().held
    }

    fn get(&mut self, tenant: &TenantId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut p = self.lock();
        p.check_tenant(tenant)?;
        p.current(key)
    }

    fn put(&mut self, tenant: &TenantId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut p = self.lock();
        p.check_tenant(tenant)?;
        let old = p.current_size(key)?;
        p.delta = p.delta - old.unwrap_or(0) + size(key, value);
        let replaced = p.writes.insert(key.to_owned(), Some(value.to_vec()));
        p.held = p.held + (key.len() + value.len()) as u64 - held_by(key, replaced);
        Ok(())
    }

    fn delete(&mut self, tenant: &TenantId, key: &str) -> Result<bool, StoreError> {
        let mut p = self.lock();
        p.check_tenant(tenant)?;
        let Some(old) = p.current_size(key)? else {
            return Ok(false);
        };
        p.delta -= old;
        let replaced = p.writes.insert(key.to_owned(), None);
        p.held = p.held + key.len() as u64 - held_by(key, replaced);
        Ok(true)
    }

    fn stored_bytes(&mut self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut p = self.lock();
        p.check_tenant(tenant)?;
        let base = match p.base_usage {
            Some(base) => base,
            None => {
                let base = p.records.usage(tenant)?;
                p.base_usage = Some(base);
                base
            }
        };
        let base = i64::try_from(base).unwrap_or(i64::MAX);
        Ok(u64::try_from(base.saturating_add(p.delta)).unwrap_or(0))
    }

    fn list(
        &mut self,
        tenant: &TenantId,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let p = self.lock();
        p.check_tenant(tenant)?;
        let under = |k: &str| warden_host_api::warden_agent::scope::is_under(k, prefix);
        let deleted: BTreeSet<&String> = p
            .writes
            .iter()
            .filter(|(k, v)| v.is_none() && under(k))
            .map(|(k, _)| k)
            .collect();
        // Ask for as many more keys as could be hidden by pending deletes.
        let stored = p
            .records
            .clone()
            .list(tenant, prefix, limit.saturating_add(deleted.len()))?;
        let mut keys: BTreeSet<String> = stored
            .into_iter()
            .filter(|k| !deleted.contains(k))
            .collect();
        keys.extend(
            p.writes
                .iter()
                .filter(|(k, v)| v.is_some() && under(k))
                .map(|(k, _)| k.clone()),
        );
        Ok(keys.into_iter().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Records, TenantId) {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::open(&dir.path().join("state.sqlite3")).unwrap();
        (dir, records, TenantId::new("t").unwrap())
    }

    #[test]
    fn writes_are_invisible_until_commit_and_gone_after_discard() {
        let (_dir, mut records, t) = open();
        let mut txn = records.begin(&t);
        txn.put(&t, "a/1", b"x").unwrap();
        assert_eq!(txn.get(&t, "a/1").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(records.get(&t, "a/1").unwrap(), None);
        assert_eq!(txn.discard(), 1);
        assert_eq!(txn.commit(u64::MAX).unwrap(), 0);
        assert_eq!(records.get(&t, "a/1").unwrap(), None);

        let mut txn = records.begin(&t);
        txn.put(&t, "a/1", b"x").unwrap();
        txn.put(&t, "a/2", b"y").unwrap();
        assert_eq!(txn.commit(u64::MAX).unwrap(), 2);
        assert_eq!(records.get(&t, "a/2").unwrap().as_deref(), Some(&b"y"[..]));
        assert_eq!(records.usage(&t).unwrap(), 8);
    }

    #[test]
    fn list_merges_pending_puts_and_deletes() {
        let (_dir, mut records, t) = open();
        for k in ["a/1", "a/2", "a/3"] {
            records.put(&t, k, b"v").unwrap();
        }
        let mut txn = records.begin(&t);
        txn.delete(&t, "a/2").unwrap();
        txn.put(&t, "a/4", b"v").unwrap();
        txn.put(&t, "b/1", b"v").unwrap();
        assert_eq!(txn.list(&t, "a", 10).unwrap(), ["a/1", "a/3", "a/4"]);
        assert_eq!(txn.list(&t, "a", 2).unwrap(), ["a/1", "a/3"]);
    }

    #[test]
    fn usage_follows_puts_overwrites_and_deletes() {
        let (_dir, records, t) = open();
        let mut txn = records.begin(&t);
        txn.put(&t, "k", b"12345").unwrap();
        assert_eq!(txn.stored_bytes(&t).unwrap(), 6);
        txn.put(&t, "k", b"1").unwrap();
        assert_eq!(txn.stored_bytes(&t).unwrap(), 2);
        txn.commit(u64::MAX).unwrap();
        let mut txn = records.begin(&t);
        assert!(txn.delete(&t, "k").unwrap());
        assert_eq!(txn.stored_bytes(&t).unwrap(), 0);
        txn.commit(u64::MAX).unwrap();
        assert_eq!(records.usage(&t).unwrap(), 0);
    }

    #[test]
    fn commit_over_quota_applies_nothing() {
        let (_dir, records, t) = open();
        let mut txn = records.begin(&t);
        txn.put(&t, "k", &[0; 100]).unwrap();
        let err = txn.commit(50).unwrap_err().to_string();
        assert!(err.contains("over max_stored_bytes (50)"), "{err}");
        assert_eq!(records.usage(&t).unwrap(), 0);
        assert_eq!(records.clone().get(&t, "k").unwrap(), None);
    }

    #[test]
    fn a_transaction_refuses_another_tenant() {
        let (_dir, records, t) = open();
        let other = TenantId::new("other").unwrap();
        let mut txn = records.begin(&t);
        assert!(
            txn.get(&other, "k")
                .unwrap_err()
                .message
                .contains("warden bug")
        );
    }
}

//! API tokens: bearer secrets naming an actor, a role and maybe a tenant.
//!
//! A token reads `wdn_<id>_<secret>`: the id (8 random bytes, hex) finds
//! the row, the secret (32 random bytes, hex) proves possession. Only the
//! sha256 of the secret is stored, in `<data-dir>/control.sqlite3`, so
//! that a copy of the data directory cannot be used to call the API; the
//! secret is shown once, when the token is made.
//!
//! The same [`TokenStore`] serves `warden token create|revoke|list` and the
//! daemon's `/v1/tokens` endpoints: one implementation of each operation.
//! Callers record the change in the control-plane stream.

use std::{
    path::Path,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use thiserror::Error;
use warden_host_api::scope::{Digest, validate_actor};
use warden_runtime::TenantId;

use super::roles::{Principal, Role};
use crate::audit_cmd::now_ms;

/// The token store's file under the data directory.
pub(crate) const TOKENS_FILE: &str = "control.sqlite3";
/// The prefix every token starts with, so that a leaked one is easy to
/// recognise in a scan.
const PREFIX: &str = "wdn_";
/// Longest token accepted before any lookup, in bytes.
const MAX_TOKEN_BYTES: usize = 128;

/// The tokens of one data directory.
#[derive(Debug)]
pub(crate) struct TokenStore {
    conn: Mutex<Connection>,
}

/// A token as listed: everything but its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct TokenInfo {
    /// The token's id, the part between `wdn_` and the secret.
    pub(crate) id: String,
    /// The actor recorded for every request made with it.
    pub(crate) actor: String,
    /// Its role.
    pub(crate) role: Role,
    /// The tenant of a tenant-bound token.
    pub(crate) tenant: Option<String>,
    /// When it was made, ms since the Unix epoch.
    pub(crate) created_unix_ms: u64,
    /// When it stops working, if it expires.
    pub(crate) expires_unix_ms: Option<u64>,
    /// When it was revoked, if it was.
    pub(crate) revoked_unix_ms: Option<u64>,
}

/// What a new token is for.
#[derive(Clone, Debug)]
pub(crate) struct NewToken {
    /// The actor it names.
    pub(crate) actor: String,
    /// Its role.
    pub(crate) role: Role,
    /// The tenant of a tenant role.
    pub(crate) tenant: Option<TenantId>,
    /// How long it works; `None` means until revoked.
    pub(crate) expires: Option<Duration>,
}

/// Why a presented token was not accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token; send Authorization: Bearer <token>")]
    Missing,
    /// Not a token, or not one this daemon made.
    #[error("token is not valid; ask an administrator for a token")]
    Unknown,
    /// The token was revoked.
    #[error("token {id} was revoked; ask an administrator for a new token")]
    Revoked {
        /// The token id.
        id: String,
        /// Its actor, for the audit trail.
        actor: String,
    },
    /// The token expired.
    #[error("token {id} has expired; ask an administrator for a new token")]
    Expired {
        /// The token id.
        id: String,
        /// Its actor, for the audit trail.
        actor: String,
    },
}

impl TokenStore {
    /// Opens (creating if needed) the store under `data_dir`.
    ///
    /// # Errors
    ///
    /// Fails when the database cannot be opened or its table made.
    pub(crate) fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join(TOKENS_FILE);
        let context = || format!("cannot open the token store {}", path.display());
        let conn = Connection::open(&path).with_context(context)?;
        conn.busy_timeout(Duration::from_secs(5))
            .with_context(context)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS tokens (
                id TEXT PRIMARY KEY,
                secret_sha256 TEXT NOT NULL,
                actor TEXT NOT NULL,
                role TEXT NOT NULL,
                tenant TEXT,
                created_ms INTEGER NOT NULL,
                expires_ms INTEGER,
                revoked_ms INTEGER
            ) STRICT;",
        )
        .with_context(context)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a token; returns it and its secret text, shown only now.
    ///
    /// # Errors
    ///
    /// Fails on an invalid actor, a role without the tenant it needs, or a
    /// database error.
    pub(crate) fn create(&self, new: &NewToken) -> anyhow::Result<(TokenInfo, String)> {
        validate_actor(&new.actor).map_err(anyhow::Error::msg)?;
        new.role
            .check_tenant(new.tenant.as_ref())
            .map_err(anyhow::Error::msg)?;
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id)
            .and_then(|()| getrandom::fill(&mut secret))
            .map_err(|e| anyhow::anyhow!("cannot get random bytes for a token: {e}"))?;
        let id = hex::encode(id);
        let secret = hex::encode(secret);
        let now = now_ms();
        let expires = new
            .expires
            .map(|d| now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));
        let info = TokenInfo {
            id: id.clone(),
            actor: new.actor.clone(),
            role: new.role,
            tenant: new.tenant.as_ref().map(|t| t.as_str().to_owned()),
            created_unix_ms: now,
            expires_unix_ms: expires,
            revoked_unix_ms: None,
        };
        self.conn()
            .execute(
                "INSERT INTO tokens (id, secret_sha256, actor, role, tenant, created_ms, \
                 expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    Digest::of(secret.as_bytes()).to_hex(),
                    info.actor,
                    info.role.as_str(),
                    info.tenant,
                    to_sql(now),
                    expires.map(to_sql),
                ],
            )
            .context("cannot store the token")?;
        Ok((info, format!("{PREFIX}{id}_{secret}")))
    }

    /// Every token, oldest first.
    ///
    /// # Errors
    ///
    /// Fails on a database error.
    pub(crate) fn list(&self) -> anyhow::Result<Vec<TokenInfo>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, actor, role, tenant, created_ms, expires_ms, revoked_ms FROM tokens \
                 ORDER BY created_ms, id",
            )
            .context("cannot list tokens")?;
        let rows = stmt.query_map([], row_info).context("cannot list tokens")?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.context("cannot list tokens")??);
        }
        Ok(out)
    }

    /// Revokes the token `id`; a revoked token stays listed.
    ///
    /// # Errors
    ///
    /// Fails when no such token exists or it was revoked already.
    pub(crate) fn revoke(&self, id: &str) -> anyhow::Result<TokenInfo> {
        let info = self
            .get(id)?
            .ok_or_else(|| anyhow::anyhow!("no token {id}; see `warden token list`"))?;
        if info.revoked_unix_ms.is_some() {
            anyhow::bail!("token {id} is already revoked");
        }
        let now = now_ms();
        self.conn()
            .execute(
                "UPDATE tokens SET revoked_ms = ?2 WHERE id = ?1",
                params![id, to_sql(now)],
            )
            .context("cannot revoke the token")?;
        Ok(TokenInfo {
            revoked_unix_ms: Some(now),
            ..info
        })
    }

    /// The token `id`, if it exists.
    ///
    /// # Errors
    ///
    /// Fails on a database error.
    pub(crate) fn get(&self, id: &str) -> anyhow::Result<Option<TokenInfo>> {
        let conn = self.conn();
        let info = conn
            .query_row(
                "SELECT id, actor, role, tenant, created_ms, expires_ms, revoked_ms FROM tokens \
                 WHERE id = ?1",
                [id],
                row_info,
            )
            .optional()
            .context("cannot read the token store")?;
        info.transpose()
    }

    /// Who presents `token`, if it is valid now.
    ///
    /// # Errors
    ///
    /// Returns [`AuthError`]; a database failure counts as an unknown token
    /// (logged), so that a fault never lets a request through.
    pub(crate) fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Unknown);
        }
        let (id, secret) = token
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or(AuthError::Unknown)?;
        let row = {
            let conn = self.conn();
            conn.query_row(
                "SELECT secret_sha256, actor, role, tenant, expires_ms, revoked_ms FROM tokens \
                 WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                },
            )
            .optional()
        };
        let (hash, actor, role, tenant, expires, revoked) = match row {
            Ok(Some(row)) => row,
            Ok(None) => return Err(AuthError::Unknown),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the token store");
                return Err(AuthError::Unknown);
            }
        };
        // Compared as digests: the stored side never holds the secret, and
        // comparing digests leaks nothing useful about it through timing.
        if Digest::of(secret.as_bytes()).to_hex() != hash {
            return Err(AuthError::Unknown);
        }
        if revoked.is_some() {
            return Err(AuthError::Revoked {
                id: id.to_owned(),
                actor,
            });
        }
        if expires.is_some_and(|e| from_sql(e) <= now_ms()) {
            return Err(AuthError::Expired {
                id: id.to_owned(),
                actor,
            });
        }
        let role = Role::parse(&role).map_err(|_| AuthError::Unknown)?;
        let tenant = match tenant {
            Some(t) => Some(TenantId::new(&t).map_err(|_| AuthError::Unknown)?),
            None => None,
        };
        Ok(Principal {
            actor,
            role,
            tenant,
            token_id: id.to_owned(),
        })
    }
}

type InfoRow = anyhow::Result<TokenInfo>;

fn row_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<InfoRow> {
    let role: String = r.get(2)?;
    let info = Role::parse(&role).map(|role| -> rusqlite::Result<TokenInfo> {
        Ok(TokenInfo {
            id: r.get(0)?,
            actor: r.get(1)?,
            role,
            tenant: r.get(3)?,
            created_unix_ms: from_sql(r.get(4)?),
            expires_unix_ms: r.get::<_, Option<i64>>(5)?.map(from_sql),
            revoked_unix_ms: r.get::<_, Option<i64>>(6)?.map(from_sql),
        })
    });
    match info {
        Ok(row) => row.map(Ok),
        Err(e) => Ok(Err(anyhow::anyhow!("token store holds a bad role: {e}"))),
    }
}

fn to_sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn from_sql(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn new(role: Role, tenant: Option<&str>, expires: Option<Duration>) -> NewToken {
        NewToken {
            actor: "alice".into(),
            role,
            tenant: tenant.map(|t| TenantId::new(t).unwrap()),
            expires,
        }
    }

    #[test]
    fn a_new_token_authenticates_and_only_its_hash_is_stored() {
        let (dir, store) = store();
        let (info, secret) = store
            .create(&new(Role::Invoker, Some("acme"), None))
            .unwrap();
        let who = store.authenticate(&secret).unwrap();
        assert_eq!(who.actor, "alice");
        assert_eq!(who.role, Role::Invoker);
        assert_eq!(who.tenant, Some(TenantId::new("acme").unwrap()));
        assert_eq!(who.token_id, info.id);
        drop(store);
        let bytes = std::fs::read(dir.path().join(TOKENS_FILE)).unwrap();
        let raw = secret.rsplit('_').next().unwrap();
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
            "the secret is stored in clear"
        );
    }

    #[test]
    fn wrong_revoked_and_expired_tokens_are_refused() {
        let (_dir, store) = store();
        let (info, secret) = store.create(&new(Role::PlatformAdmin, None, None)).unwrap();
        // The last character changed to another one: a secret that already
        // ended in `0` made this test pass the secret itself, 1 run in 16.
        let last = if secret.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &secret[..secret.len() - 1]);
        assert_ne!(forged, secret);
        assert_eq!(store.authenticate(&forged), Err(AuthError::Unknown));
        assert_eq!(store.authenticate("Bearer x"), Err(AuthError::Unknown));
        assert_eq!(
            store.authenticate(&"a".repeat(10_000)),
            Err(AuthError::Unknown)
        );
        store.revoke(&info.id).unwrap();
        assert!(matches!(
            store.authenticate(&secret),
            Err(AuthError::Revoked { .. })
        ));
        assert!(
            store
                .revoke(&info.id)
                .unwrap_err()
                .to_string()
                .contains("already revoked")
        );
        assert!(
            store
                .revoke("nope")
                .unwrap_err()
                .to_string()
                .contains("no token nope")
        );

        let (_, secret) = store
            .create(&new(Role::Auditor, None, Some(Duration::ZERO)))
            .unwrap();
        assert!(matches!(
            store.authenticate(&secret),
            Err(AuthError::Expired { .. })
        ));
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn a_tenant_role_needs_its_tenant() {
        let (_dir, store) = store();
        let err = store
            .create(&new(Role::TenantAdmin, None, None))
            .unwrap_err();
        assert!(err.to_string().contains("give it one (--tenant"), "{err}");
        assert!(store.list().unwrap().is_empty(), "nothing half created");
    }
}

//! The secret store: each tenant's secrets on disk, readable by the owner
//! of the data directory only.
//!
//! # Form on disk
//!
//! ```text
//! <data-dir>/secrets/                 mode 0700
//! <data-dir>/secrets/<tenant>/        mode 0700
//! <data-dir>/secrets/<tenant>/<name>  mode 0600, the value's raw bytes
//! ```
//!
//! One file per secret, so that a change touches one file and is atomic
//! (written to a temporary file, synced, renamed over the old one). When a
//! secret was set is the file's modification time. Secret names are checked
//! by [`validate_secret_name`], which admits no `/`, `.` or other character
//! that could leave the tenant's directory. Values are not encrypted: the
//! store relies on file permissions, like the audit signing key beside it,
//! and a file that group or others could read is refused rather than used.
//!
//! # Changes are audited
//!
//! [`SecretStore::set`] and [`SecretStore::remove`] record a
//! `secret-changed` event in the control-plane audit stream, naming the
//! actor, the tenant, the secret and the action, before they change
//! anything; a change that cannot be recorded is not made. Values and
//! digests of values never go into events, logs or errors.
//!
//! # Tenants stay apart
//!
//! An invocation gets [`SecretStore::load_granted`]: the invoking tenant's
//! values of the names its agent's grant mentions, read from that tenant's
//! directory only. No other tenant's secret can be named from there.

use std::{
    fs::{self, DirBuilder, OpenOptions},
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

use thiserror::Error;
use warden_host_api::{
    audit::{self, EventBody, HostScope},
    scope::{TenantId, validate_actor},
    secrets::{
        MAX_SECRET_VALUE_BYTES, SecretValue, SecretsGrant, TenantSecrets, validate_secret_name,
    },
};
use zeroize::Zeroizing;

use crate::audit::{AuditLogError, AuditLogs, now_unix_ms};

/// The `agent` field of the control-plane events secret changes make.
pub const SECRETS_COMPONENT: &str = "warden secrets";

/// A secret's name and when it was last set; never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    /// The secret's name.
    pub name: String,
    /// When the value was last set.
    pub set_at: SystemTime,
}

/// Why a secret store operation failed. Messages name the tenant, the
/// secret and the file, never the value.
#[derive(Debug, Error)]
pub enum SecretError {
    /// The name breaks the naming rule.
    #[error("{0}")]
    Name(String),
    /// The actor is not a valid actor name.
    #[error("{0}")]
    Actor(String),
    /// An empty value.
    #[error(
        "secret {name} of tenant {tenant}: the value is empty; give a value (on stdin, or as \
         \"value\" over the API)"
    )]
    Empty {
        /// The tenant.
        tenant: TenantId,
        /// The secret.
        name: String,
    },
    /// A value over [`MAX_SECRET_VALUE_BYTES`].
    #[error(
        "secret {name} of tenant {tenant}: the value is over the maximum of \
         {MAX_SECRET_VALUE_BYTES} bytes"
    )]
    TooLarge {
        /// The tenant.
        tenant: TenantId,
        /// The secret.
        name: String,
    },
    /// `remove` of a secret the tenant does not have.
    #[error(
        "tenant {tenant} has no secret {name}; `warden secrets list --tenant {tenant}` (or GET \
         /v1/tenants/{tenant}/secrets under the daemon) shows its secrets"
    )]
    NotFound {
        /// The tenant.
        tenant: TenantId,
        /// The secret.
        name: String,
    },
    /// An agent's grant names a secret the tenant does not have.
    #[error(
        "manifest grants.secrets[{index}] names secret {name}, which tenant {tenant} does not \
         have; set it with `warden secrets set --tenant {tenant} {name}` (under the daemon, \
         PUT /v1/tenants/{tenant}/secrets/{name})"
    )]
    Missing {
        /// The entry's index in `grants.secrets`.
        index: usize,
        /// The secret.
        name: String,
        /// The tenant.
        tenant: TenantId,
    },
    /// A file or directory group or others may read or write.
    #[error(
        "{path} has mode {mode:o}, which lets other users read or change it; run chmod go= on it"
    )]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A store file is not what the store writes (a symlink, a directory,
    /// an oversized file).
    #[error("{path} is not a secret file written by warden; remove it")]
    NotASecret {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing the store failed.
    #[error("cannot use the secret store at {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The change could not be recorded in the control-plane stream, and
    /// so was not made.
    #[error("secret change not made: the control-plane audit stream cannot record it")]
    Audit(#[source] AuditLogError),
}

/// The secrets of every tenant of one data directory. See the module docs.
#[derive(Clone, Debug)]
pub struct SecretStore {
    root: PathBuf,
}

impl SecretStore {
    /// The store under `data_dir`. Nothing is created until a secret is
    /// set.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("secrets"),
        }
    }

    fn tenant_dir(&self, tenant: &TenantId) -> PathBuf {
        self.root.join(tenant.as_str())
    }

    /// Checks the store's directory and `tenant`'s before anything is read
    /// from them: each must be a real directory (not a link to another
    /// tenant's, or elsewhere) that only its owner may enter. Returns
    /// `false` when either does not exist, that is, the tenant has no
    /// secrets.
    fn check_dirs(&self, tenant: &TenantId) -> Result<bool, SecretError> {
        for dir in [self.root.clone(), self.tenant_dir(tenant)] {
            let meta = match fs::symlink_metadata(&dir) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(source) => return Err(SecretError::Io { path: dir, source }),
            };
            if !meta.is_dir() {
                return Err(SecretError::NotASecret { path: dir });
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretError::Permissions { path: dir, mode });
            }
        }
        Ok(true)
    }

    /// Sets `tenant`'s secret `name` to `value`, creating or replacing it,
    /// on behalf of `actor`.
    ///
    /// # Errors
    ///
    /// Fails on a bad name or value (before anything is recorded), when the
    /// change cannot be recorded (nothing is written), or when the file
    /// cannot be written.
    pub fn set(
        &self,
        logs: &AuditLogs,
        actor: &str,
        tenant: &TenantId,
        name: &str,
        value: &SecretValue,
    ) -> Result<(), SecretError> {
        validate_actor(actor).map_err(SecretError::Actor)?;
        validate_secret_name(name).map_err(SecretError::Name)?;
        let len = value.expose().len();
        if len == 0 {
            return Err(SecretError::Empty {
                tenant: tenant.clone(),
                name: name.to_owned(),
            });
        }
        if len > MAX_SECRET_VALUE_BYTES {
            return Err(SecretError::TooLarge {
                tenant: tenant.clone(),
                name: name.to_owned(),
            });
        }
        let dir = self.tenant_dir(tenant);
        private_dir(&self.root)?;
        private_dir(&dir)?;
        record(logs, actor, tenant, name, "set")?;

        // Written beside the target and renamed over it: a reader sees the
        // old value or the new one, never a part.
        // Unique per write, not only per process: the daemon sets secrets
        // from many requests at once.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SecretError::Io { path, source }
        };
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let written = file
            .write_all(value.expose())
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(SecretError::Io { path: tmp, source });
        }
        let target = dir.join(name);
        fs::rename(&tmp, &target).map_err(io(&target))?;
        sync_dir(&dir)
    }

    /// Removes `tenant`'s secret `name` on behalf of `actor`.
    ///
    /// # Errors
    ///
    /// Fails when the tenant has no such secret or the change cannot be
    /// recorded (in both cases nothing is changed), or when the file cannot
    /// be removed.
    pub fn remove(
        &self,
        logs: &AuditLogs,
        actor: &str,
        tenant: &TenantId,
        name: &str,
    ) -> Result<(), SecretError> {
        validate_actor(actor).map_err(SecretError::Actor)?;
        validate_secret_name(name).map_err(SecretError::Name)?;
        let path = self.tenant_dir(tenant).join(name);
        match fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SecretError::NotFound {
                    tenant: tenant.clone(),
                    name: name.to_owned(),
                });
            }
            Err(source) => return Err(SecretError::Io { path, source }),
        }
        record(logs, actor, tenant, name, "remove")?;
        fs::remove_file(&path).map_err(|source| SecretError::Io {
            path: path.clone(),
            source,
        })?;
        sync_dir(&self.tenant_dir(tenant))
    }

    /// `tenant`'s secrets by name, in name order, with when each was set.
    ///
    /// # Errors
    ///
    /// Fails when the tenant's directory cannot be read.
    pub fn list(&self, tenant: &TenantId) -> Result<Vec<SecretInfo>, SecretError> {
        let dir = self.tenant_dir(tenant);
        if !self.check_dirs(tenant)? {
            return Ok(Vec::new());
        }
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(SecretError::Io { path: dir, source }),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SecretError::Io {
                path: dir.clone(),
                source,
            })?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // Temporary files of an interrupted `set` start with a dot and
            // are not secrets.
            if validate_secret_name(&name).is_err() {
                continue;
            }
            let meta = entry.metadata().map_err(|source| SecretError::Io {
                path: entry.path(),
                source,
            })?;
            let set_at = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push(SecretInfo { name, set_at });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `tenant`'s value of `name`, or `None` when it has none.
    ///
    /// # Errors
    ///
    /// Fails on a bad name, a file others may read, a file that is not a
    /// plain file of at most [`MAX_SECRET_VALUE_BYTES`], or a read error.
    pub fn get(&self, tenant: &TenantId, name: &str) -> Result<Option<SecretValue>, SecretError> {
        validate_secret_name(name).map_err(SecretError::Name)?;
        if !self.check_dirs(tenant)? {
            return Ok(None);
        }
        let path = self.tenant_dir(tenant).join(name);
        // symlink_metadata: a link planted in the store is refused rather
        // than followed to a file elsewhere.
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SecretError::Io { path, source }),
        };
        // A second name for the file (a hard link from another tenant's
        // directory, or from anywhere else) is not something `set` writes.
        if !meta.is_file() || meta.nlink() != 1 || meta.len() > MAX_SECRET_VALUE_BYTES as u64 {
            return Err(SecretError::NotASecret { path });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Permissions { path, mode });
        }
        let file = fs::File::open(&path).map_err(|source| SecretError::Io {
            path: path.clone(),
            source,
        })?;
        // The file opened must be the one just checked: a link swapped in
        // between the check and the open would lead to another inode.
        let opened = file.metadata().map_err(|source| SecretError::Io {
            path: path.clone(),
            source,
        })?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(SecretError::NotASecret { path });
        }
        // Room for the whole value up front: a buffer that grew would leave
        // copies of the first bytes behind, outside the zeroed one.
        let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_SECRET_VALUE_BYTES + 1));
        file.take(MAX_SECRET_VALUE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| SecretError::Io {
                path: path.clone(),
                source,
            })?;
        if bytes.len() > MAX_SECRET_VALUE_BYTES {
            return Err(SecretError::NotASecret { path });
        }
        Ok(Some(SecretValue::new(bytes)))
    }

    /// The values one invocation of an agent with `grant` may use: the
    /// tenant's value of every name the grant mentions.
    ///
    /// # Errors
    ///
    /// Returns [`SecretError::Missing`] naming the first grant entry whose
    /// secret the tenant does not have, or the error of reading one.
    pub fn load_granted(
        &self,
        tenant: &TenantId,
        grant: &SecretsGrant,
    ) -> Result<TenantSecrets, SecretError> {
        let mut out = TenantSecrets::default();
        for (index, entry) in grant.secrets.iter().enumerate() {
            match self.get(tenant, &entry.name)? {
                Some(value) => out.insert(entry.name.clone(), value),
                None => {
                    return Err(SecretError::Missing {
                        index,
                        name: entry.name.clone(),
                        tenant: tenant.clone(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Records a change in the control-plane stream before it is made.
fn record(
    logs: &AuditLogs,
    actor: &str,
    tenant: &TenantId,
    name: &str,
    action: &str,
) -> Result<(), SecretError> {
    let control = logs.control().map_err(SecretError::Audit)?;
    let scope = HostScope {
        tenant: Some(tenant.clone()),
        component: SECRETS_COMPONENT.into(),
        invocation: format!("{:x}-{:x}", now_unix_ms(), std::process::id()),
        actor: actor.to_owned(),
    };
    let body = EventBody::SecretChanged {
        name: name.to_owned(),
        action: action.to_owned(),
    };
    audit::emit_host(&*control, &scope, body)
        .map_err(|e| SecretError::Audit(AuditLogError::Append(e)))
}

/// Creates `dir` owner-only, or checks that an existing one is.
fn private_dir(dir: &Path) -> Result<(), SecretError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SecretError::Io {
            path: dir.to_owned(),
            source,
        })?;
    let meta = fs::symlink_metadata(dir).map_err(|source| SecretError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_dir() {
        return Err(SecretError::NotASecret {
            path: dir.to_owned(),
        });
    }
    if mode & 0o077 != 0 {
        return Err(SecretError::Permissions {
            path: dir.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), SecretError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| SecretError::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditOptions;
    use warden_host_api::secrets::SecretGrant;

    fn value(bytes: &[u8]) -> SecretValue {
        SecretValue::new(Zeroizing::new(bytes.to_vec()))
    }

    #[test]
    fn set_list_get_remove_keep_tenants_apart_and_files_private() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let store = SecretStore::new(dir.path());
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        store
            .set(&logs, "op", &acme, "pay", &value(b"A-1"))
            .unwrap();
        store
            .set(&logs, "op", &globex, "pay", &value(b"G-1"))
            .unwrap();
        store
            .set(&logs, "op", &acme, "pay", &value(b"A-2"))
            .unwrap();

        assert_eq!(store.get(&acme, "pay").unwrap().unwrap().expose(), b"A-2");
        assert_eq!(store.get(&globex, "pay").unwrap().unwrap().expose(), b"G-1");
        let names: Vec<String> = store
            .list(&acme)
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["pay"]);
        let file = dir.path().join("secrets/acme/pay");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        for d in ["secrets", "secrets/acme"] {
            let mode = fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{d}");
        }

        store.remove(&logs, "op", &acme, "pay").unwrap();
        assert!(store.get(&acme, "pay").unwrap().is_none());
        assert_eq!(store.get(&globex, "pay").unwrap().unwrap().expose(), b"G-1");
        let err = store.remove(&logs, "op", &acme, "pay").unwrap_err();
        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    }

    #[test]
    fn bad_values_and_readable_files_are_refused_without_a_value_in_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let store = SecretStore::new(dir.path());
        let acme = TenantId::new("acme").unwrap();
        let big = vec![b'x'; MAX_SECRET_VALUE_BYTES + 1];
        let err = store
            .set(&logs, "op", &acme, "k", &value(&big))
            .unwrap_err();
        assert!(
            err.to_string().contains("over the maximum of 16384 bytes"),
            "{err}"
        );
        let err = store.set(&logs, "op", &acme, "k", &value(b"")).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = store
            .set(&logs, "op", &acme, "../k", &value(b"v"))
            .unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");

        store
            .set(&logs, "op", &acme, "k", &value(b"hunter2"))
            .unwrap();
        let file = dir.path().join("secrets/acme/k");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.get(&acme, "k").unwrap_err().to_string();
        assert!(err.contains("mode 644"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn linked_or_open_store_entries_are_refused_rather_than_read() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let store = SecretStore::new(dir.path());
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        store
            .set(&logs, "op", &globex, "pay", &value(b"globex-key"))
            .unwrap();
        let secrets = dir.path().join("secrets");

        // acme's directory is a link to globex's: nothing is read through
        // it, by name or by listing.
        std::os::unix::fs::symlink(secrets.join("globex"), secrets.join("acme")).unwrap();
        let err = store.get(&acme, "pay").unwrap_err().to_string();
        assert!(err.contains("not a secret file"), "{err}");
        assert!(store.list(&acme).is_err());
        fs::remove_file(secrets.join("acme")).unwrap();

        // A hard link to globex's file inside acme's directory.
        store
            .set(&logs, "op", &acme, "other", &value(b"acme-key"))
            .unwrap();
        fs::hard_link(secrets.join("globex/pay"), secrets.join("acme/pay")).unwrap();
        let err = store.get(&acme, "pay").unwrap_err().to_string();
        assert!(err.contains("not a secret file"), "{err}");
        assert!(!err.contains("globex-key"), "{err}");
        fs::remove_file(secrets.join("acme/pay")).unwrap();

        // A tenant directory others may enter.
        fs::set_permissions(secrets.join("acme"), fs::Permissions::from_mode(0o777)).unwrap();
        let err = store.get(&acme, "other").unwrap_err().to_string();
        assert!(err.contains("mode 777"), "{err}");
        assert!(store.list(&acme).is_err());
    }

    #[test]
    fn load_granted_names_the_first_missing_entry() {
        let dir = tempfile::tempdir().unwrap();
        let logs = AuditLogs::new(dir.path(), AuditOptions::default());
        let store = SecretStore::new(dir.path());
        let acme = TenantId::new("acme").unwrap();
        store.set(&logs, "op", &acme, "have", &value(b"v")).unwrap();
        let grant = SecretsGrant {
            secrets: vec![
                SecretGrant {
                    name: "have".into(),
                    reveal: false,
                },
                SecretGrant {
                    name: "lack".into(),
                    reveal: true,
                },
            ],
        };
        let err = store.load_granted(&acme, &grant).unwrap_err().to_string();
        assert!(
            err.starts_with("manifest grants.secrets[1] names secret lack, which tenant acme"),
            "{err}"
        );

        let mut grant = grant;
        grant.secrets.truncate(1);
        let loaded = store.load_granted(&acme, &grant).unwrap();
        assert_eq!(loaded.get("have").unwrap().expose(), b"v");
        assert!(loaded.get("lack").is_none());
    }
}

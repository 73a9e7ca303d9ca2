//! Tenants: the registry of open audit logs, the store data type and limits.
//!
//! A tenant is known by its validated [`TenantId`]. The registry opens each
//! tenant's audit log once per process and hands out the same handle to
//! every invocation of that tenant.

pub mod instance;
pub mod limits;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

pub use warden_host_api::scope::TenantId;

use crate::audit::{AuditLog, AuditLogError};

/// Open audit logs by tenant.
#[derive(Debug)]
pub(crate) struct Tenants {
    data_dir: PathBuf,
    logs: Mutex<HashMap<TenantId, Arc<AuditLog>>>,
}

impl Tenants {
    pub(crate) fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            logs: Mutex::new(HashMap::new()),
        }
    }

    /// `tenant`'s audit log, opened on first use.
    pub(crate) fn audit_log(&self, tenant: &TenantId) -> Result<Arc<AuditLog>, AuditLogError> {
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(log) = logs.get(tenant) {
            return Ok(Arc::clone(log));
        }
        let log = Arc::new(AuditLog::open(&self.data_dir, tenant)?);
        logs.insert(tenant.clone(), Arc::clone(&log));
        Ok(log)
    }
}

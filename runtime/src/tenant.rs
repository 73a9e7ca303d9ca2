//! Tenants: the registry of open audit logs, the store data type and limits.
//!
//! A tenant is known by its validated [`TenantId`]. The registry opens each
//! tenant's audit log once per process (through [`AuditLogs`]) and hands out
//! the same handle to every invocation of that tenant.

pub mod instance;
pub mod limits;

use std::{path::PathBuf, sync::Arc};

pub use warden_host_api::scope::TenantId;

use crate::audit::{AuditLog, AuditLogError, AuditLogs, AuditOptions};

/// Open audit logs by tenant.
#[derive(Debug)]
pub(crate) struct Tenants {
    audit: AuditLogs,
}

impl Tenants {
    pub(crate) fn new(data_dir: PathBuf, audit: AuditOptions) -> Self {
        Self {
            audit: AuditLogs::new(data_dir, audit),
        }
    }

    /// `tenant`'s audit log, opened on first use.
    pub(crate) fn audit_log(&self, tenant: &TenantId) -> Result<Arc<AuditLog>, AuditLogError> {
        self.audit.tenant(tenant)
    }
}

//! Tenants: their configuration, concurrency gate and audit log, files
//! directory, the store data type and the resource limiter.
//!
//! A tenant is known by its validated [`TenantId`]. The registry loads each
//! tenant's configuration and opens its audit log once per process, and keeps
//! one concurrency gate per tenant, so that a tenant's concurrency limit holds
//! across every caller in the process.

pub mod config;
pub mod files;
pub(crate) mod gate;
pub mod instance;
pub mod limiter;
pub mod limits;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

pub use warden_host_api::scope::TenantId;

use crate::audit::{AuditLog, AuditLogError, AuditLogs};
use config::{ConfigError, TenantConfig};
use gate::Gate;
use limits::{Ceilings, TenantLimits};

/// Why a tenant could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// Its configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Its audit log could not be opened.
    #[error(transparent)]
    AuditLog(#[from] AuditLogError),
    /// A configuration given through the API is out of range.
    #[error("tenant {tenant}: {source}")]
    Limits {
        /// The tenant.
        tenant: TenantId,
        /// The field out of range.
        #[source]
        source: limits::LimitError,
    },
}

/// What the process holds for one tenant while it is loaded.
#[derive(Debug)]
pub(crate) struct TenantState {
    pub(crate) config: TenantConfig,
    pub(crate) gate: Gate,
    pub(crate) log: Arc<AuditLog>,
}

/// Loaded tenants.
#[derive(Debug)]
pub(crate) struct Tenants {
    data_dir: PathBuf,
    audit: Arc<AuditLogs>,
    defaults: TenantLimits,
    ceilings: Ceilings,
    loaded: Mutex<HashMap<TenantId, Arc<TenantState>>>,
}

impl Tenants {
    pub(crate) fn new(
        data_dir: PathBuf,
        audit: Arc<AuditLogs>,
        defaults: TenantLimits,
        ceilings: Ceilings,
    ) -> Self {
        Self {
            audit,
            data_dir,
            defaults,
            ceilings,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The audit streams every tenant's log is opened from.
    pub(crate) fn audit_logs(&self) -> &AuditLogs {
        &self.audit
    }

    /// Limits of tenants without a configuration file.
    pub(crate) fn defaults(&self) -> TenantLimits {
        self.defaults
    }

    /// The ceilings every tenant's limits are checked against.
    pub(crate) fn ceilings(&self) -> Ceilings {
        self.ceilings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Arc<TenantState>>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `tenant`'s state, loading its configuration and opening its audit log
    /// on first use.
    pub(crate) fn get(&self, tenant: &TenantId) -> Result<Arc<TenantState>, TenantError> {
        if let Some(state) = self.lock().get(tenant) {
            return Ok(Arc::clone(state));
        }
        let config = TenantConfig::load(&self.data_dir, tenant, &self.defaults, &self.ceilings)?;
        self.insert(tenant, config)
    }

    /// `tenant`'s state if it is loaded.
    pub(crate) fn loaded(&self, tenant: &TenantId) -> Option<Arc<TenantState>> {
        self.lock().get(tenant).cloned()
    }

    /// Sets `tenant`'s configuration for this process, replacing any loaded
    /// one. Invocations already running keep the limits they started with.
    pub(crate) fn configure(
        &self,
        tenant: &TenantId,
        config: TenantConfig,
    ) -> Result<(), TenantError> {
        config
            .limits
            .validate(&self.ceilings)
            .map_err(|source| TenantError::Limits {
                tenant: tenant.clone(),
                source,
            })?;
        self.insert(tenant, config).map(|_| ())
    }

    fn insert(
        &self,
        tenant: &TenantId,
        config: TenantConfig,
    ) -> Result<Arc<TenantState>, TenantError> {
        // The audit registry hands out one handle per stream: a second
        // handle on the same files would be refused by their lock.
        let log = self.audit.tenant(tenant)?;
        let mut loaded = self.lock();
        let state = Arc::new(TenantState {
            gate: Gate::new(&config.limits),
            config,
            log,
        });
        loaded.insert(tenant.clone(), Arc::clone(&state));
        Ok(state)
    }
}

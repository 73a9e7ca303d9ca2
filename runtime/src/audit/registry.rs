//! [`AuditLogs`]: the audit streams of one data directory.
//!
//! One registry per process and data directory opens each stream once and
//! hands the same [`AuditLog`] to every caller, loads (or makes) the signing
//! key on first use, and runs one timer thread that signs a checkpoint of
//! every stream that grew, once per [`AuditOptions::checkpoint_interval`],
//! and applies the configured retention periods. Nothing is created on disk
//! until the first stream is opened.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{self, RecvTimeoutError},
    },
    thread::JoinHandle,
};

use warden_host_api::{
    audit::{self, EventBody, HostScope},
    scope::TenantId,
};

use super::{AuditLog, AuditLogError, AuditOptions, Signer, StreamId, now_unix_ms};

/// The `agent` field of control-plane events made by the `warden` command.
pub const CONTROL_COMPONENT: &str = "warden audit";

/// The open audit streams of one data directory. See the module docs.
pub struct AuditLogs {
    data_dir: PathBuf,
    options: AuditOptions,
    signer: Mutex<Option<Arc<Signer>>>,
    logs: Arc<Mutex<HashMap<StreamId, Arc<AuditLog>>>>,
    timer: Mutex<Option<Timer>>,
}

struct Timer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for AuditLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLogs")
            .field("data_dir", &self.data_dir)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl AuditLogs {
    /// The streams under `data_dir`, written as `options` say.
    pub fn new(data_dir: impl Into<PathBuf>, options: AuditOptions) -> Self {
        Self {
            data_dir: data_dir.into(),
            options,
            signer: Mutex::new(None),
            logs: Arc::new(Mutex::new(HashMap::new())),
            timer: Mutex::new(None),
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The signing key, loaded or made on first use.
    ///
    /// # Errors
    ///
    /// Fails when the key file cannot be read or written.
    pub fn signer(&self) -> Result<Arc<Signer>, AuditLogError> {
        let mut slot = self.signer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signer) = &*slot {
            return Ok(Arc::clone(signer));
        }
        let signer = Arc::new(Signer::load_or_create(&self.data_dir)?);
        *slot = Some(Arc::clone(&signer));
        Ok(signer)
    }

    /// `tenant`'s log, opened on first use.
    ///
    /// # Errors
    ///
    /// See [`AuditLog::open`].
    pub fn tenant(&self, tenant: &TenantId) -> Result<Arc<AuditLog>, AuditLogError> {
        self.open(&StreamId::Tenant(tenant.clone()))
    }

    /// The control-plane log, opened on first use.
    ///
    /// # Errors
    ///
    /// See [`AuditLog::open`].
    pub fn control(&self) -> Result<Arc<AuditLog>, AuditLogError> {
        self.open(&StreamId::Control)
    }

    /// Whether `stream` is open in this process. An open stream holds its
    /// lock, so no other process can append to it meanwhile.
    pub fn is_open(&self, stream: &StreamId) -> bool {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(stream)
    }

    /// `stream`'s log, opened on first use.
    ///
    /// # Errors
    ///
    /// See [`AuditLog::open`].
    pub fn open(&self, stream: &StreamId) -> Result<Arc<AuditLog>, AuditLogError> {
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(log) = logs.get(stream) {
            return Ok(Arc::clone(log));
        }
        let log = Arc::new(AuditLog::open(
            &self.data_dir,
            stream,
            &self.options,
            self.signer()?,
        )?);
        logs.insert(stream.clone(), Arc::clone(&log));
        drop(logs);
        self.start_timer();
        Ok(log)
    }

    /// Records in the control-plane stream that `actor` is about to read
    /// `stream` (`action` and `range` say how), before the read happens.
    ///
    /// # Errors
    ///
    /// Fails when the control-plane stream cannot record; the read must
    /// then not happen.
    pub fn record_read(
        &self,
        stream: &StreamId,
        actor: &str,
        action: &str,
        range: &str,
    ) -> Result<(), AuditLogError> {
        let control = self.control()?;
        let scope = HostScope {
            tenant: stream.tenant().cloned(),
            component: CONTROL_COMPONENT.into(),
            invocation: format!("{:x}-{:x}", now_unix_ms(), std::process::id()),
            actor: actor.to_owned(),
        };
        audit::emit_host(
            &*control,
            &scope,
            EventBody::AuditRead {
                stream: stream.name().to_owned(),
                action: action.to_owned(),
                range: range.to_owned(),
            },
        )
        .map_err(AuditLogError::Append)
    }

    /// Signs a checkpoint of every open stream that grew and applies the
    /// retention periods; what the timer thread does at each tick.
    pub fn tick(&self) {
        tick(&self.logs, &self.options);
    }

    fn start_timer(&self) {
        let mut timer = self.timer.lock().unwrap_or_else(PoisonError::into_inner);
        if timer.is_some() {
            return;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let logs = Arc::clone(&self.logs);
        let options = self.options.clone();
        let spawned = std::thread::Builder::new()
            .name("warden-audit-checkpoints".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(options.checkpoint_interval)
                {
                    tick(&logs, &options);
                }
            });
        match spawned {
            Ok(thread) => *timer = Some(Timer { stop, thread }),
            // Appends still checkpoint once the interval has passed, and
            // shutdown signs one; only idle streams wait longer.
            Err(e) => tracing::warn!(error = %e, "cannot start the audit checkpoint thread"),
        }
    }
}

fn tick(logs: &Mutex<HashMap<StreamId, Arc<AuditLog>>>, options: &AuditOptions) {
    let open: Vec<Arc<AuditLog>> = logs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    for log in open {
        let retention = log
            .stream()
            .tenant()
            .and_then(|t| options.retention.iter().find(|(id, _)| id == t))
            .map(|(_, period)| *period);
        if let Some(period) = retention
            && let Err(e) = log.remove_expired(period)
        {
            tracing::error!(stream = log.stream().name(), error = %e, "cannot apply audit retention");
        }
        if let Err(e) = log.checkpoint_if_grown() {
            tracing::error!(stream = log.stream().name(), error = %e, "cannot sign audit checkpoint");
        }
    }
}

impl Drop for AuditLogs {
    fn drop(&mut self) {
        let timer = self
            .timer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(timer) = timer {
            drop(timer.stop);
            if timer.thread.join().is_err() {
                tracing::error!("the audit checkpoint thread panicked");
            }
        }
        // Dropping the logs signs their shutdown checkpoints.
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use warden_host_api::audit::Decision;

    use super::*;
    use crate::audit::{VerifyOptions, verify};

    #[test]
    fn a_tick_applies_a_tenants_configured_retention_and_the_rest_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let acme = TenantId::new("acme").unwrap();
        let globex = TenantId::new("globex").unwrap();
        let options = AuditOptions {
            max_segment_bytes: 1_500,
            retention: vec![(acme.clone(), Duration::ZERO)],
            ..AuditOptions::default()
        };
        let logs = AuditLogs::new(dir.path(), options);
        for tenant in [&acme, &globex] {
            let log = logs.tenant(tenant).unwrap();
            let scope = HostScope {
                tenant: Some(tenant.clone()),
                component: "test".into(),
                invocation: "inv".into(),
                actor: "tester".into(),
            };
            for n in 0..20 {
                let body = EventBody::HostCall {
                    interface: "warden:agent/records".into(),
                    function: "get".into(),
                    resource: format!("a/{n}"),
                    decision: Decision::Allow,
                    reason: "granted".into(),
                    blame: None,
                    value_digest: None,
                    old_value_digest: None,
                };
                audit::emit_host(&*log, &scope, body).unwrap();
            }
        }
        logs.tick();
        drop(logs);

        let acme_report = verify(
            dir.path(),
            &StreamId::Tenant(acme),
            &VerifyOptions::default(),
        )
        .unwrap();
        assert_eq!(acme_report.removed, 20, "every event was past retention");
        assert_eq!(acme_report.events, 21, "the removal is an event of its own");
        let globex_report = verify(
            dir.path(),
            &StreamId::Tenant(globex),
            &VerifyOptions::default(),
        )
        .unwrap();
        assert_eq!(globex_report.removed, 0, "no retention configured");
        assert_eq!(globex_report.events, 20);
    }
}

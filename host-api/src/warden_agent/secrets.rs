//! `warden:agent/secrets`: per-instance state and the trait impl for the
//! generated bindings.
//!
//! Kept apart from `records` and `decisions` because it lives on its own
//! state, [`SecretsCtx`]: the agent's [`SecretsGrant`] and the invoking
//! tenant's [`TenantSecrets`]. The decision itself is
//! [`SecretsGrant::decide`], in the crate's `secrets` module.

use std::sync::Arc;

use tracing::debug_span;
use wasmtime::component::{HasData, Linker};

use super::bindings::warden::agent::secrets;
use crate::{
    audit::{self, AuditSink, Blame, Decision, EventBody},
    scope::InstanceScope,
    secrets::{MAX_SECRET_NAME_BYTES, SecretsGrant, TenantSecrets},
};

const SECRETS: &str = "warden:agent/secrets";

/// Default cap on `secrets.reveal` calls per invocation, refused ones
/// included.
pub const DEFAULT_MAX_SECRET_READS: u32 = 64;

/// Per-instance state of `warden:agent/secrets`.
pub struct SecretsCtx {
    scope: Arc<InstanceScope>,
    grant: Arc<SecretsGrant>,
    values: Arc<TenantSecrets>,
    audit: Arc<dyn AuditSink>,
    reads: u32,
}

impl std::fmt::Debug for SecretsCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: `TenantSecrets` prints its keys, never values.
        f.debug_struct("SecretsCtx")
            .field("grant", &self.grant)
            .field("values", &self.values)
            .field("reads", &self.reads)
            .finish_non_exhaustive()
    }
}

impl SecretsCtx {
    /// State for one instance running under `scope` with `grant`, over the
    /// invoking tenant's `values`.
    pub fn new(
        scope: Arc<InstanceScope>,
        grant: Arc<SecretsGrant>,
        values: Arc<TenantSecrets>,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        Self {
            scope,
            grant,
            values,
            audit,
            reads: 0,
        }
    }

    fn record(
        &self,
        name: &str,
        decision: Decision,
        reason: String,
        blame: Option<Blame>,
    ) -> wasmtime::Result<()> {
        // No value digest: a digest of a short token is a way to test
        // guesses of it offline.
        let body = EventBody::HostCall {
            interface: SECRETS.to_owned(),
            function: "reveal".to_owned(),
            resource: audit::bounded_resource(name),
            decision,
            reason,
            blame,
            value_digest: None,
            old_value_digest: None,
        };
        audit::emit(&*self.audit, &self.scope, body).map_err(wasmtime::Error::new)
    }
}

/// Implemented by a store's data type to lend out its [`SecretsCtx`].
pub trait SecretsView: Send {
    /// The instance's `warden:agent/secrets` state.
    fn secrets_ctx(&mut self) -> &mut SecretsCtx;
}

struct HasSecrets;

impl HasData for HasSecrets {
    type Data<'a> = &'a mut SecretsCtx;
}

/// Adds `warden:agent/secrets` to `linker`.
///
/// # Scope
///
/// `reveal` checks the [`SecretsGrant`] held in the instance's
/// [`SecretsCtx`] (an entry naming the secret with `reveal = true`) and
/// records one audit event per call naming the secret, never its value.
///
/// # Errors
///
/// Fails when the linker already defines this import.
pub fn add_secrets_to_linker<T: SecretsView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    secrets::add_to_linker::<T, HasSecrets>(linker, T::secrets_ctx)
}

impl secrets::Host for SecretsCtx {
    fn reveal(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, secrets::Error>> {
        let _span = debug_span!("secrets.reveal", tenant = %self.scope.tenant).entered();
        self.reads = self.reads.saturating_add(1);
        if self.reads > DEFAULT_MAX_SECRET_READS {
            let why = format!("secret reads exceed max_secret_reads ({DEFAULT_MAX_SECRET_READS})");
            self.record(&name, Decision::Deny, why.clone(), Some(Blame::Guest))?;
            return Ok(Err(secrets::Error::LimitReached(why)));
        }
        // Length before anything else: the name goes into the event cut,
        // and a megabyte name costs no more than a short one.
        if name.len() > MAX_SECRET_NAME_BYTES {
            let why = format!(
                "secret name is {} bytes, over the maximum of {MAX_SECRET_NAME_BYTES}",
                name.len()
            );
            self.record(&name, Decision::Deny, why.clone(), Some(Blame::Guest))?;
            return Ok(Err(secrets::Error::LimitReached(why)));
        }
        if let Err(refusal) = self.grant.decide(&name) {
            let why = refusal.to_string();
            self.record(&name, Decision::Deny, why.clone(), Some(Blame::Guest))?;
            return Ok(Err(secrets::Error::NotPermitted(why)));
        }
        // The runtime checks before the run that the tenant has every
        // granted secret, so a miss here means it was loaded without one.
        let Some(value) = self.values.get(&name) else {
            let why = format!("granted secret {name} is not loaded for this invocation");
            self.record(&name, Decision::Deny, why, Some(Blame::Host))?;
            return Ok(Err(secrets::Error::NotFound));
        };
        let reason = format!("granted by grants.secrets entry {name} with reveal");
        self.record(&name, Decision::Allow, reason, None)?;
        Ok(Ok(value.expose().to_vec()))
    }
}

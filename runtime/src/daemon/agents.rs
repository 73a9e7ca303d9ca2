//! Deployed agents: a component and its manifest, admitted by digest and
//! kept in the data directory.
//!
//! A deployed agent lives at `<data-dir>/agents/<tenant>/<name>/`, holding
//! `agent.toml` and `component.wasm`. A deployment is written to a staging
//! directory first, loaded there exactly as `warden run` loads a manifest
//! (manifest checks, WebAssembly preamble, compilation, the agent world),
//! and only then renamed into place: a rejected deployment leaves nothing
//! behind, and a crash mid-way leaves only a staging directory that the
//! next start removes.
//!
//! A deployment is the tenant admin's approval of the agent's grant: once
//! the agent is in place, deploy allows it for the tenant through the same
//! [`ControlPlane::allow_agent`] as `warden agents allow` (a
//! `control-change` event naming the caller and the grant digest), and
//! remove revokes it as `warden agents revoke` does. `Runtime::invoke`
//! refuses an agent the tenant has not allowed.
//!
//! [`ControlPlane::allow_agent`]: warden_runtime::ControlPlane::allow_agent

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use axum::http::StatusCode;
use serde::Serialize;
use warden_host_api::scope::Digest;
use warden_runtime::{Agent, Runtime, TenantId};

use super::api::ApiError;

/// The manifest's file name in a deployed agent's directory.
const MANIFEST_FILE: &str = "agent.toml";
/// The component's file name in a deployed agent's directory.
const COMPONENT_FILE: &str = "component.wasm";
/// Where deployments are assembled, under the agents directory.
const STAGING_DIR: &str = ".staging";

/// A deployed agent as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AgentInfo {
    /// The agent's name, from its manifest.
    pub(crate) name: String,
    /// The tenant it is deployed to.
    pub(crate) tenant: String,
    /// sha256 of the component, hex.
    pub(crate) component_sha256: String,
    /// sha256 of the stored manifest, hex.
    pub(crate) manifest_sha256: String,
    /// sha256 of the canonical grant, hex: what every audit event carries.
    pub(crate) grant_sha256: String,
    /// The effective grant: what the agent may touch.
    #[schema(value_type = Object)]
    pub(crate) grant: serde_json::Value,
    /// The same grant in plain words, as `warden grants show` prints it.
    pub(crate) grant_text: String,
}

/// The deployed agents of a data directory, with the loaded ones cached.
#[derive(Debug)]
pub(crate) struct AgentStore {
    root: PathBuf,
    loaded: Mutex<HashMap<(TenantId, String), Agent>>,
}

impl AgentStore {
    /// The agents under `data_dir`; removes what an interrupted deployment
    /// left in the staging directory.
    pub(crate) fn new(data_dir: &Path) -> Self {
        let root = data_dir.join("agents");
        // Staging holds only unfinished work; nothing there was ever
        // deployed, so it is safe to drop.
        let _ = std::fs::remove_dir_all(root.join(STAGING_DIR));
        Self {
            root,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    fn dir(&self, tenant: &TenantId, name: &str) -> PathBuf {
        self.root.join(tenant.as_str()).join(name)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, String), Agent>> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits `component` (whose sha256 the caller states as `sha256`) with
    /// `manifest` (the text of an `agent.toml`, whose `component` field is
    /// replaced by the stored file) for `tenant`.
    ///
    /// # Errors
    ///
    /// 422 when the digest does not match, the manifest or the component is
    /// invalid; 409 when an agent of that name is deployed already; 500 on
    /// a host failure. Nothing is left behind in any case.
    pub(crate) fn deploy(
        &self,
        runtime: &Runtime,
        tenant: &TenantId,
        manifest: &str,
        component: &[u8],
        sha256: &str,
        actor: &str,
    ) -> Result<AgentInfo, ApiError> {
        let digest = Digest::of(component);
        if !sha256.eq_ignore_ascii_case(&digest.to_hex()) {
            return Err(ApiError::unprocessable(format!(
                "component sha256 {sha256:?} does not match the uploaded bytes ({} bytes, sha256 \
                 {digest}); send the digest of the component you mean to deploy",
                component.len()
            )));
        }
        let mut table: toml::Table = warden_runtime::toml_file::parse(manifest)
            .map_err(|e| ApiError::unprocessable(format!("manifest: {e}")))?;
        let names_component = table.contains_key("component");
        // The stored component is the uploaded one, whatever path the
        // manifest named on the developer's machine; a path from the
        // request is never used on the host.
        table.insert(
            "component".into(),
            toml::Value::String(COMPONENT_FILE.into()),
        );
        let text = toml::to_string(&table)
            .map_err(|e| ApiError::internal(format!("cannot write the manifest: {e}")))?;

        let staging = self.root.join(STAGING_DIR).join(random_name()?);
        let cleanup = Cleanup(staging.clone());
        // The staging path is a host detail; the caller knows the files as
        // "the manifest" and "the component".
        let uploaded = |e: &dyn std::fmt::Display| {
            let message = e
                .to_string()
                .replace(
                    &staging.join(MANIFEST_FILE).display().to_string(),
                    "uploaded",
                )
                .replace(
                    &staging.join(COMPONENT_FILE).display().to_string(),
                    "uploaded",
                );
            ApiError::unprocessable(message)
        };
        std::fs::create_dir_all(&staging)
            .and_then(|()| std::fs::write(staging.join(COMPONENT_FILE), component))
            .and_then(|()| std::fs::write(staging.join(MANIFEST_FILE), manifest))
            .map_err(|e| ApiError::internal(format!("cannot stage the deployment: {e}")))?;
        // Checked as sent first, so that an error names the caller's own
        // line numbers; the rewritten text below differs in layout.
        if names_component {
            warden_runtime::manifest::Manifest::load(&staging.join(MANIFEST_FILE))
                .map_err(|e| uploaded(&e))?;
        }
        std::fs::write(staging.join(MANIFEST_FILE), &text)
            .map_err(|e| ApiError::internal(format!("cannot stage the deployment: {e}")))?;
        let agent = runtime
            .load_agent(&staging.join(MANIFEST_FILE))
            .map_err(|e| uploaded(&e))?;
        let name = agent.name().to_owned();

        let target = self.dir(tenant, &name);
        if target.exists() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "agent {name} is already deployed to tenant {tenant}; remove it first to \
                     deploy a new version"
                ),
            ));
        }
        let parent = self.root.join(tenant.as_str());
        std::fs::create_dir_all(&parent)
            .map_err(|e| ApiError::internal(format!("cannot create the agents directory: {e}")))?;
        // rename(2) refuses to replace a non-empty directory: of two
        // deployments racing for one name, the second gets the conflict.
        std::fs::rename(&staging, &target).map_err(|_| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!("agent {name} is already deployed to tenant {tenant}; remove it first"),
            )
        })?;
        drop(cleanup);
        // The approval comes last, once the files are in place: when it
        // cannot be recorded, the deployment is taken back whole.
        if let Err(e) = runtime
            .control()
            .allow_agent(tenant, agent.manifest(), actor)
        {
            let trash = self.root.join(STAGING_DIR).join(random_name()?);
            if std::fs::rename(&target, &trash).is_ok() {
                let _ = std::fs::remove_dir_all(&trash);
            }
            return Err(super::api::agent_config::control_error(e));
        }
        self.get(runtime, tenant, &name).map(|a| info(tenant, &a))
    }

    /// The deployed agent `name` of `tenant`, loaded once per process.
    ///
    /// # Errors
    ///
    /// 404 when no such agent is deployed; 500 when the stored agent no
    /// longer loads.
    pub(crate) fn get(
        &self,
        runtime: &Runtime,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Agent, ApiError> {
        let key = (tenant.clone(), name.to_owned());
        if let Some(agent) = self.cache().get(&key) {
            return Ok(agent.clone());
        }
        let manifest = self.dir(tenant, name).join(MANIFEST_FILE);
        if !valid_name(name) || !manifest.is_file() {
            return Err(ApiError::not_found(format!(
                "no agent {name} in tenant {tenant}; deploy it with POST /v1/tenants/{tenant}/agents"
            )));
        }
        let agent = runtime.load_agent(&manifest).map_err(|e| {
            ApiError::internal(format!(
                "deployed agent {name} of tenant {tenant} no longer loads: {e}"
            ))
        })?;
        self.cache().insert(key, agent.clone());
        Ok(agent)
    }

    /// Every agent deployed to `tenant`, by name.
    ///
    /// # Errors
    ///
    /// 500 when the directory cannot be read or an agent no longer loads.
    pub(crate) fn list(
        &self,
        runtime: &Runtime,
        tenant: &TenantId,
    ) -> Result<Vec<AgentInfo>, ApiError> {
        let dir = self.root.join(tenant.as_str());
        let mut names = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if let Ok(name) = entry.file_name().into_string()
                        && valid_name(&name)
                    {
                        names.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ApiError::internal(format!("cannot list agents: {e}"))),
        }
        names.sort();
        names
            .iter()
            .map(|n| self.get(runtime, tenant, n).map(|a| info(tenant, &a)))
            .collect()
    }

    /// Removes the deployed agent `name` of `tenant`. Runs already going
    /// finish with the code they started with.
    ///
    /// # Errors
    ///
    /// 404 when no such agent is deployed; 500 on a host failure.
    pub(crate) fn remove(
        &self,
        runtime: &Runtime,
        tenant: &TenantId,
        name: &str,
        actor: &str,
    ) -> Result<AgentInfo, ApiError> {
        let agent = self.get(runtime, tenant, name)?;
        let shown = info(tenant, &agent);
        // The files are moved aside first, then the grant is revoked; when
        // the revocation cannot be recorded the files come back, so that
        // an agent is never left deployed but revoked. An agent deployed
        // before approvals existed has none to revoke.
        let trash = self.root.join(STAGING_DIR).join(random_name()?);
        let dir = self.dir(tenant, name);
        std::fs::create_dir_all(self.root.join(STAGING_DIR))
            .and_then(|()| std::fs::rename(&dir, &trash))
            .map_err(|e| ApiError::internal(format!("cannot remove agent {name}: {e}")))?;
        match runtime.control().revoke_agent(tenant, name, actor) {
            Ok(_) | Err(warden_runtime::ControlError::NotAllowed { .. }) => {}
            Err(e) => {
                if let Err(back) = std::fs::rename(&trash, &dir) {
                    tracing::error!(error = %back, agent = name, "cannot put back an agent whose revocation failed");
                }
                return Err(super::api::agent_config::control_error(e));
            }
        }
        self.cache().remove(&(tenant.clone(), name.to_owned()));
        if let Err(e) = std::fs::remove_dir_all(&trash) {
            tracing::warn!(error = %e, "cannot delete a removed agent's files; they go at the next start");
        }
        Ok(shown)
    }
}

/// How the API shows a loaded agent.
pub(crate) fn info(tenant: &TenantId, agent: &Agent) -> AgentInfo {
    let manifest = agent.manifest();
    AgentInfo {
        name: agent.name().to_owned(),
        tenant: tenant.as_str().to_owned(),
        component_sha256: agent.component_digest().to_hex(),
        manifest_sha256: manifest.manifest_digest.to_hex(),
        grant_sha256: manifest.grant_digest.to_hex(),
        grant: serde_json::to_value(&manifest.grant).unwrap_or(serde_json::Value::Null),
        grant_text: warden_runtime::grants::show(manifest),
    }
}

/// Whether `name` can be an agent's name (and so a directory name); the
/// manifest check is stricter, this only keeps paths inside the tenant's
/// directory.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= warden_runtime::manifest::MAX_AGENT_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

fn random_name() -> Result<String, ApiError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("cannot get random bytes: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Removes a staging directory unless the deployment got renamed away.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

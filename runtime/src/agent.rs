//! Agents: a manifest plus its compiled, pre-linked component.

use std::{path::PathBuf, sync::Arc};

use thiserror::Error;
use warden_host_api::{
    scope::Digest,
    secrets::SecretsGrant,
    warden_agent::{ConfigGrant, RecordsGrant, bindings::AgentPre},
    wasi_http::HttpGrant,
};

use crate::{
    manifest::{Manifest, ManifestError},
    tenant::instance::InstanceState,
};

/// An agent ready to invoke: its validated manifest and its component,
/// compiled once and linked against the host's capabilities.
///
/// Cheap to clone; clones share the compiled code.
#[derive(Clone)]
pub struct Agent {
    pub(crate) manifest: Manifest,
    pub(crate) component_digest: Digest,
    /// The manifest's grant, shared by every invocation's store.
    pub(crate) grant: Arc<RecordsGrant>,
    /// The manifest's egress grant, shared by every invocation's store.
    pub(crate) http_grant: Arc<HttpGrant>,
    /// The manifest's config keys, shared by every invocation's store.
    pub(crate) config_grant: Arc<ConfigGrant>,
    /// The manifest's secrets grant, shared by every invocation's store.
    pub(crate) secrets_grant: Arc<SecretsGrant>,
    pub(crate) pre: AgentPre<InstanceState>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("manifest", &self.manifest)
            .field("component_digest", &self.component_digest)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// sha256 of the component's bytes.
    pub fn component_digest(&self) -> Digest {
        self.component_digest
    }
}

/// Why an agent could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The manifest is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component file could not be read.
    #[error(
        "cannot read component {path} named by the manifest; build the agent or fix `component`"
    )]
    ComponentRead {
        /// The component path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("component {path} is not a WebAssembly file; build the agent for wasm32-wasip2")]
    NotWasm {
        /// The component path.
        path: PathBuf,
    },
    /// The file is a core module, not a component.
    #[error(
        "component {path} is a core WebAssembly module, not a component; build the agent for \
         wasm32-wasip2"
    )]
    CoreModule {
        /// The component path.
        path: PathBuf,
    },
    /// wasmtime could not compile the component.
    #[error("component {path} does not compile: {message}")]
    Compile {
        /// The component path.
        path: PathBuf,
        /// wasmtime's reason, on one line.
        message: String,
    },
    /// The component's imports or exports do not fit the `agent` world.
    #[error(
        "component {path} does not fit the warden:agent/agent world: {message}; build it with \
         warden-guest-sdk"
    )]
    World {
        /// The component path.
        path: PathBuf,
        /// wasmtime's reason, on one line.
        message: String,
    },
}

/// Checks the WebAssembly preamble: `\0asm`, then a version and a layer
/// field; layer 1 marks a component, layer 0 a core module.
pub(crate) fn check_preamble(path: &std::path::Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm {
            path: path.to_owned(),
        });
    }
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Flattens an error chain to one line.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

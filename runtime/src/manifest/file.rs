//! The TOML form of an agent manifest (`agent.toml`).
//!
//! Only parsing lives here; [`super::Manifest`] is what the rest of the
//! runtime uses. Unknown fields are rejected at every level, so that a typo
//! in a grant is an error rather than a silently absent permission.

use serde::Deserialize;

use warden_host_api::warden_agent::Access;

/// `agent.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ManifestFile {
    pub(super) name: String,
    pub(super) component: String,
    #[serde(default)]
    pub(super) grants: GrantsFile,
}

/// The `[grants]` table. Absent means no access at all.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantsFile {
    #[serde(default)]
    pub(super) records: Vec<RecordGrantFile>,
    #[serde(default)]
    pub(super) http: Vec<HttpGrantFile>,
    /// Names of the config values the agent may read.
    #[serde(default)]
    pub(super) config: Vec<String>,
    #[serde(default)]
    pub(super) secrets: Vec<SecretGrantFile>,
    #[serde(default)]
    pub(super) files: Vec<FileGrantFile>,
}

/// One `[[grants.records]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordGrantFile {
    pub(super) prefix: String,
    pub(super) access: Access,
    /// The only top-level fields of JSON records the agent sees; read
    /// grants only.
    pub(super) fields: Option<Vec<String>>,
}

/// One `[[grants.http]]` entry: a destination for outbound requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpGrantFile {
    /// `http` or `https`.
    pub(super) scheme: String,
    /// A host name, an IP address, or `*.` and a domain.
    pub(super) host: String,
    /// The port; the scheme's default when absent.
    pub(super) port: Option<u16>,
    /// Requests must stay under this path, on whole segments.
    pub(super) path_prefix: Option<String>,
    /// Methods allowed; any method when absent.
    pub(super) methods: Option<Vec<String>>,
    /// Headers the host adds to the requests this entry allows: name to
    /// value template, where `{{secret:NAME}}` stands for a granted secret.
    #[serde(default)]
    pub(super) headers: std::collections::BTreeMap<String, String>,
}

/// One `[[grants.secrets]]` entry: a tenant secret the agent may use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretGrantFile {
    /// The secret's name in the tenant's store.
    pub(super) name: String,
    /// Whether the guest may read the value; default `false`.
    #[serde(default)]
    pub(super) reveal: bool,
}

/// One `[[grants.files]]` entry: a directory under the tenant's files
/// directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileGrantFile {
    /// Relative to `<data-dir>/files/<tenant>/`.
    pub(super) path: String,
    /// `read` or `read-write`.
    pub(super) access: Access,
}

/// Parses `text`; the error is one line naming the offending entry.
pub(super) fn parse(text: &str) -> Result<ManifestFile, String> {
    crate::toml_file::parse(text)
}

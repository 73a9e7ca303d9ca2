//! The TOML form of the daemon's configuration file.
//!
//! Only parsing lives here; [`super::ServeConfig`] is what the daemon uses.

use serde::Deserialize;

/// The file as written; every field is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServeConfigFile {
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<String>,
    pub(super) shutdown_deadline: Option<String>,
    pub(super) max_body_bytes: Option<u64>,
    pub(super) max_runs: Option<usize>,
}

/// Parses `text`; the error is one line naming the offending entry.
pub(super) fn parse(text: &str) -> Result<ServeConfigFile, String> {
    warden_runtime::toml_file::parse(text)
}

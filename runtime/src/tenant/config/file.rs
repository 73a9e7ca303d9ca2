//! The TOML form of a tenant's configuration file.
//!
//! ```toml
//! [limits]
//! max_memory_bytes = 33554432
//! cpu_timeout = "2s"
//! wall_timeout = "5s"
//! max_concurrent = 2
//! ```
//!
//! Every field is optional and falls back to the runtime's default. Integers
//! are read as signed so that a negative value is reported with its field and
//! range rather than as a type error; durations use humantime's spelling
//! (`500ms`, `2s`, `1m`). Unknown fields are rejected.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantFile {
    #[serde(default)]
    pub(super) limits: LimitsFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    pub(super) max_memory_bytes: Option<i64>,
    pub(super) max_table_elements: Option<i64>,
    pub(super) max_instances: Option<i64>,
    pub(super) max_memories: Option<i64>,
    pub(super) max_tables: Option<i64>,
    pub(super) cpu_timeout: Option<String>,
    pub(super) wall_timeout: Option<String>,
    pub(super) max_concurrent: Option<i64>,
    pub(super) max_queued: Option<i64>,
    pub(super) max_input_bytes: Option<i64>,
    pub(super) max_output_bytes: Option<i64>,
    pub(super) max_host_calls: Option<i64>,
    pub(super) max_stored_bytes: Option<i64>,
    pub(super) max_write_bytes: Option<i64>,
    pub(super) max_fuel: Option<i64>,
    pub(super) max_http_request_body_bytes: Option<i64>,
    pub(super) max_http_response_body_bytes: Option<i64>,
    pub(super) max_http_header_count: Option<i64>,
    pub(super) max_http_header_bytes: Option<i64>,
    pub(super) http_request_timeout: Option<String>,
    pub(super) max_http_requests: Option<i64>,
    pub(super) max_file_bytes: Option<i64>,
}

pub(super) fn parse(text: &str) -> Result<TenantFile, String> {
    crate::toml_file::parse(text)
}

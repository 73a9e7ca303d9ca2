//! Tenant configuration: one TOML file per tenant.
//!
//! A tenant's file lives at `<data-dir>/tenants/<tenant>.toml` (see
//! `config/file.rs` for the format). A tenant without a file runs with the
//! runtime's default limits. Files are read when the tenant is first used in
//! a process and validated as a whole: one field out of range refuses the
//! file, and the tenant cannot run until it is fixed.

mod file;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use thiserror::Error;

use crate::toml_file::{MAX_CONFIG_FILE_BYTES, read_bounded};

use super::{
    TenantId,
    limits::{Ceilings, LimitError, TenantLimits},
};

/// A tenant's validated configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantConfig {
    /// The tenant's limits.
    pub limits: TenantLimits,
}

/// A tenant's configuration file could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read tenant configuration {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("tenant configuration {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// Path of `tenant`'s configuration file under `data_dir`.
pub fn config_path(data_dir: &Path, tenant: &TenantId) -> PathBuf {
    data_dir.join("tenants").join(format!("{tenant}.toml"))
}

impl TenantConfig {
    /// Loads `tenant`'s configuration from `data_dir`, starting from
    /// `defaults` and validating against `ceilings`.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError`] when the file cannot be read, does not parse,
    /// or sets a limit outside its range.
    pub fn load(
        data_dir: &Path,
        tenant: &TenantId,
        defaults: &TenantLimits,
        ceilings: &Ceilings,
    ) -> Result<Self, ConfigError> {
        let path = config_path(data_dir, tenant);
        let bytes = match read_bounded(&path, MAX_CONFIG_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self { limits: *defaults });
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(ConfigError::Invalid {
                path,
                message: "file is not valid UTF-8".into(),
            });
        };
        Self::parse(&text, defaults, ceilings)
            .map_err(|message| ConfigError::Invalid { path, message })
    }

    /// Parses and validates the text of a configuration file.
    ///
    /// # Errors
    ///
    /// Returns a one-line message naming the field that is wrong.
    pub fn parse(text: &str, defaults: &TenantLimits, ceilings: &Ceilings) -> Result<Self, String> {
        let parsed = file::parse(text)?;
        let l = parsed.limits;
        let mut negative = Vec::new();
        let mut int = |field: &'static str, value: Option<i64>, default: u64| match value {
            None => default,
            // A negative value is kept aside and shown as written; u64::MAX
            // is out of every range, so validation names its field and range.
            Some(v) => u64::try_from(v).unwrap_or_else(|_| {
                negative.push((field, v));
                u64::MAX
            }),
        };
        let mut limits = TenantLimits {
            max_memory_bytes: int(
                "max_memory_bytes",
                l.max_memory_bytes,
                defaults.max_memory_bytes,
            ),
            max_table_elements: int(
                "max_table_elements",
                l.max_table_elements,
                defaults.max_table_elements,
            ),
            max_instances: int("max_instances", l.max_instances, defaults.max_instances),
            max_memories: int("max_memories", l.max_memories, defaults.max_memories),
            max_tables: int("max_tables", l.max_tables, defaults.max_tables),
            cpu_timeout: defaults.cpu_timeout,
            wall_timeout: defaults.wall_timeout,
            max_concurrent: int("max_concurrent", l.max_concurrent, defaults.max_concurrent),
            max_queued: int("max_queued", l.max_queued, defaults.max_queued),
            max_input_bytes: int(
                "max_input_bytes",
                l.max_input_bytes,
                defaults.max_input_bytes,
            ),
            max_output_bytes: int(
                "max_output_bytes",
                l.max_output_bytes,
                defaults.max_output_bytes,
            ),
            max_host_calls: int("max_host_calls", l.max_host_calls, defaults.max_host_calls),
            max_stored_bytes: int(
                "max_stored_bytes",
                l.max_stored_bytes,
                defaults.max_stored_bytes,
            ),
            max_write_bytes: int(
                "max_write_bytes",
                l.max_write_bytes,
                defaults.max_write_bytes,
            ),
            max_fuel: int("max_fuel", l.max_fuel, defaults.max_fuel),
            max_http_request_body_bytes: int(
                "max_http_request_body_bytes",
                l.max_http_request_body_bytes,
                defaults.max_http_request_body_bytes,
            ),
            max_http_response_body_bytes: int(
                "max_http_response_body_bytes",
                l.max_http_response_body_bytes,
                defaults.max_http_response_body_bytes,
            ),
            max_http_header_count: int(
                "max_http_header_count",
                l.max_http_header_count,
                defaults.max_http_header_count,
            ),
            max_http_header_bytes: int(
                "max_http_header_bytes",
                l.max_http_header_bytes,
                defaults.max_http_header_bytes,
            ),
            http_request_timeout: defaults.http_request_timeout,
            max_http_requests: int(
                "max_http_requests",
                l.max_http_requests,
                defaults.max_http_requests,
            ),
            max_file_bytes: int("max_file_bytes", l.max_file_bytes, defaults.max_file_bytes),
        };
        if let Some(text) = &l.cpu_timeout {
            limits.cpu_timeout = duration("cpu_timeout", text)?;
        }
        if let Some(text) = &l.wall_timeout {
            limits.wall_timeout = duration("wall_timeout", text)?;
        }
        if let Some(text) = &l.http_request_timeout {
            limits.http_request_timeout = duration("http_request_timeout", text)?;
        }
        limits.validate(ceilings).map_err(|mut e: LimitError| {
            if let Some((_, v)) = negative.iter().find(|(f, _)| *f == e.field) {
                e.value = v.to_string();
            }
            e.to_string()
        })?;
        Ok(Self { limits })
    }
}

fn duration(field: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|_| {
        format!("limits.{field} {text:?} is not a duration; write it like 500ms or 5s")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CEILINGS: Ceilings = Ceilings {
        max_memory_bytes: 512 * 1024 * 1024,
        max_table_elements: 100_000,
        pool_instances: 64,
    };

    fn parse(text: &str) -> Result<TenantConfig, String> {
        TenantConfig::parse(text, &TenantLimits::default(), &CEILINGS)
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        assert_eq!(parse("").unwrap().limits, TenantLimits::default());
    }

    #[test]
    fn set_fields_override_the_defaults() {
        let c = parse("[limits]\nmax_concurrent = 2\ncpu_timeout = \"250ms\"\n").unwrap();
        assert_eq!(c.limits.max_concurrent, 2);
        assert_eq!(c.limits.cpu_timeout, Duration::from_millis(250));
        assert_eq!(c.limits.wall_timeout, TenantLimits::default().wall_timeout);
    }

    #[test]
    fn bad_values_name_the_field_and_the_range() {
        let cases = [
            (
                "[limits]\nmax_memory_bytes = 0\n",
                "limits.max_memory_bytes is 0; allowed range",
            ),
            (
                "[limits]\nmax_memory_bytes = -1\n",
                "limits.max_memory_bytes is -1; allowed range",
            ),
            (
                "[limits]\nmax_memory_bytes = 1099511627776\n",
                "limits.max_memory_bytes is 1099511627776; allowed range is 1048576 to 536870912",
            ),
            (
                "[limits]\nmax_queued = -5\n",
                "limits.max_queued is -5; allowed range is 0 to",
            ),
            (
                "[limits]\ncpu_timeout = \"soon\"\n",
                "limits.cpu_timeout \"soon\" is not a duration",
            ),
            (
                "[limits]\ncpu_timeout = \"0s\"\n",
                "limits.cpu_timeout is 0s; allowed range",
            ),
            (
                "[limits]\nmax_memroy_bytes = 1\n",
                "unknown field `max_memroy_bytes`",
            ),
            ("[limitz]\n", "unknown field `limitz`"),
            (
                "[limits]\nmax_http_header_count = 0\n",
                "limits.max_http_header_count is 0; allowed range is 1 to 1000",
            ),
            (
                "[limits]\nmax_http_requests = -1\n",
                "limits.max_http_requests is -1; allowed range is 0 to 100000",
            ),
            (
                "[limits]\nhttp_request_timeout = \"2h\"\n",
                "limits.http_request_timeout is 2h; allowed range is 10ms to 1h",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}

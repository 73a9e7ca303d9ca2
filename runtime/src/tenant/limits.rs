//! Per-tenant limits, their defaults and their allowed ranges.
//!
//! Every limit is finite. Each tenant may set its own in its configuration
//! file (see [`super::config`]); a value outside the allowed range is refused
//! when the configuration is loaded, naming the field and the range.

use std::time::Duration;

use thiserror::Error;
use warden_host_api::{
    warden_agent::AgentLimits,
    wasi_filesystem::FilesLimits,
    wasi_http::{
        DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_COUNT, DEFAULT_MAX_REQUEST_BODY_BYTES,
        DEFAULT_MAX_REQUESTS, DEFAULT_MAX_RESPONSE_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT, HttpLimits,
    },
};

/// Default linear memory per instance: 64 MiB.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Default table elements per table: 20,000.
pub const DEFAULT_MAX_TABLE_ELEMENTS: u64 = 20_000;
/// Default core instances per store: 32.
pub const DEFAULT_MAX_INSTANCES: u64 = 32;
/// Default linear memories per store: 4.
pub const DEFAULT_MAX_MEMORIES: u64 = 4;
/// Default tables per store: 16.
pub const DEFAULT_MAX_TABLES: u64 = 16;
/// Default time an invocation may spend running guest code: 5 s.
pub const DEFAULT_CPU_TIMEOUT: Duration = Duration::from_secs(5);
/// Default wall-clock deadline per invocation, host calls included: 10 s.
pub const DEFAULT_WALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default invocations of one tenant running at once: 4.
pub const DEFAULT_MAX_CONCURRENT: u64 = 4;
/// Default invocations of one tenant waiting for a slot: 16.
pub const DEFAULT_MAX_QUEUED: u64 = 16;
/// Default largest input: 1 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 1024 * 1024;
/// Default largest output: 1 MiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
/// Default host calls per invocation: 10,000.
pub const DEFAULT_MAX_HOST_CALLS: u64 = 10_000;
/// Default fuel per invocation when the runtime meters fuel: 10 billion
/// units, a few seconds of guest code.
pub const DEFAULT_MAX_FUEL: u64 = 10_000_000_000;
/// Default bytes of writes one invocation may hold before commit: 64 MiB.
pub const DEFAULT_MAX_WRITE_BYTES: u64 = 64 * 1024 * 1024;
/// Default bytes of records (keys plus values) one tenant may store: 256 MiB.
pub const DEFAULT_MAX_STORED_BYTES: u64 = 256 * 1024 * 1024;

/// Default largest file an agent may write in the tenant's files
/// directory: 16 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = warden_host_api::wasi_filesystem::DEFAULT_MAX_FILE_BYTES;

/// Largest `max_input_bytes` a tenant may set: 64 MiB.
pub const MAX_INPUT_BYTES_CEILING: u64 = 64 * 1024 * 1024;

/// Default capture per std stream per invocation: 64 KiB. Writes past it
/// fail in the guest.
pub const DEFAULT_MAX_STREAM_BYTES: usize = 64 * 1024;
/// Longest std stream line recorded in the audit trail, in bytes; longer
/// lines are cut and marked.
pub const MAX_STREAM_LINE_BYTES: usize = 4 * 1024;

/// Limits of one tenant. Each applies per invocation unless it says
/// otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantLimits {
    /// Largest linear memory an instance may grow to, in bytes; growth past
    /// it fails in the guest. Default [`DEFAULT_MAX_MEMORY_BYTES`].
    pub max_memory_bytes: u64,
    /// Most elements a table may grow to; growth past it fails in the guest.
    /// Default [`DEFAULT_MAX_TABLE_ELEMENTS`].
    pub max_table_elements: u64,
    /// Most core instances in one store. Default [`DEFAULT_MAX_INSTANCES`].
    pub max_instances: u64,
    /// Most linear memories in one store. Default [`DEFAULT_MAX_MEMORIES`].
    pub max_memories: u64,
    /// Most tables in one store. Default [`DEFAULT_MAX_TABLES`].
    pub max_tables: u64,
    /// CPU time the invocation may use (guest code and host work; waiting
    /// does not count), checked at every epoch tick of
    /// [`crate::engine::EPOCH_TICK`]; past it the guest traps.
    /// Default [`DEFAULT_CPU_TIMEOUT`].
    pub cpu_timeout: Duration,
    /// Wall-clock deadline from start to finish, including time spent
    /// waiting inside host calls; past it the invocation is stopped.
    /// Default [`DEFAULT_WALL_TIMEOUT`].
    pub wall_timeout: Duration,
    /// Invocations of this tenant running at once, across the process.
    /// Default [`DEFAULT_MAX_CONCURRENT`].
    pub max_concurrent: u64,
    /// Invocations of this tenant waiting for a running slot; more are
    /// refused at once as busy. Default [`DEFAULT_MAX_QUEUED`].
    pub max_queued: u64,
    /// Largest input, checked before instantiation. Default
    /// [`DEFAULT_MAX_INPUT_BYTES`].
    pub max_input_bytes: u64,
    /// Largest output. Default [`DEFAULT_MAX_OUTPUT_BYTES`].
    pub max_output_bytes: u64,
    /// Host calls per invocation. Default [`DEFAULT_MAX_HOST_CALLS`].
    pub max_host_calls: u64,
    /// Bytes of records (keys plus values) the tenant may hold in total.
    /// Default [`DEFAULT_MAX_STORED_BYTES`].
    pub max_stored_bytes: u64,
    /// Bytes (keys plus values) of writes one invocation may hold in host
    /// memory before it commits. Default [`DEFAULT_MAX_WRITE_BYTES`].
    pub max_write_bytes: u64,
    /// Fuel (roughly, WebAssembly instructions) one invocation may consume,
    /// for deterministic metering. Applies only when the runtime meters fuel
    /// (`RuntimeBuilder::fuel_metering`); the epoch-based `cpu_timeout`
    /// applies either way. Default [`DEFAULT_MAX_FUEL`].
    pub max_fuel: u64,
    /// Largest `wasi:http` request body, in bytes. Default
    /// [`DEFAULT_MAX_REQUEST_BODY_BYTES`] (1 MiB).
    pub max_http_request_body_bytes: u64,
    /// Largest `wasi:http` response body the guest may read, in bytes.
    /// Default [`DEFAULT_MAX_RESPONSE_BODY_BYTES`] (4 MiB).
    pub max_http_response_body_bytes: u64,
    /// Most headers on one request or response. Default
    /// [`DEFAULT_MAX_HEADER_COUNT`] (64).
    pub max_http_header_count: u64,
    /// Most bytes of header names and values on one request or response.
    /// Default [`DEFAULT_MAX_HEADER_BYTES`] (16 KiB).
    pub max_http_header_bytes: u64,
    /// Longest time one request may take; the invocation's `wall_timeout`
    /// cuts it shorter. Default [`DEFAULT_REQUEST_TIMEOUT`] (10 s).
    pub http_request_timeout: Duration,
    /// Most `wasi:http` requests per invocation, refused ones included.
    /// Default [`DEFAULT_MAX_REQUESTS`] (32).
    pub max_http_requests: u64,
    /// Largest size, in bytes, a write through `wasi:filesystem` may grow a
    /// file to; past it the write fails with `file-too-large`. Default
    /// [`DEFAULT_MAX_FILE_BYTES`].
    pub max_file_bytes: u64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_table_elements: DEFAULT_MAX_TABLE_ELEMENTS,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memories: DEFAULT_MAX_MEMORIES,
            max_tables: DEFAULT_MAX_TABLES,
            cpu_timeout: DEFAULT_CPU_TIMEOUT,
            wall_timeout: DEFAULT_WALL_TIMEOUT,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_queued: DEFAULT_MAX_QUEUED,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_host_calls: DEFAULT_MAX_HOST_CALLS,
            max_stored_bytes: DEFAULT_MAX_STORED_BYTES,
            max_write_bytes: DEFAULT_MAX_WRITE_BYTES,
            max_fuel: DEFAULT_MAX_FUEL,
            max_http_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            max_http_response_body_bytes: DEFAULT_MAX_RESPONSE_BODY_BYTES,
            max_http_header_count: DEFAULT_MAX_HEADER_COUNT as u64,
            max_http_header_bytes: DEFAULT_MAX_HEADER_BYTES as u64,
            http_request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_http_requests: u64::from(DEFAULT_MAX_REQUESTS),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// What the engine was sized for: the upper end of several ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceilings {
    /// Largest memory a pool slot holds.
    pub max_memory_bytes: u64,
    /// Largest table a pool slot holds.
    pub max_table_elements: u64,
    /// Pool slots for component instances.
    pub pool_instances: u64,
}

/// A limit outside its allowed range.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("limits.{field} is {value}; allowed range is {min} to {max}")]
pub struct LimitError {
    /// The field, as spelled in the configuration file.
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// Smallest allowed.
    pub min: String,
    /// Largest allowed.
    pub max: String,
}

fn check(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), LimitError> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(LimitError {
        field,
        value: value.to_string(),
        min: min.to_string(),
        max: max.to_string(),
    })
}

fn check_duration(
    field: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), LimitError> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    let show = |d: Duration| humantime::format_duration(d).to_string();
    Err(LimitError {
        field,
        value: show(value),
        min: show(min),
        max: show(max),
    })
}

impl TenantLimits {
    /// Checks every limit against its allowed range.
    ///
    /// # Errors
    ///
    /// Returns the first field out of range, with the range.
    pub fn validate(&self, ceilings: &Ceilings) -> Result<(), LimitError> {
        const MIB: u64 = 1024 * 1024;
        check(
            "max_memory_bytes",
            self.max_memory_bytes,
            MIB,
            ceilings.max_memory_bytes,
        )?;
        check(
            "max_table_elements",
            self.max_table_elements,
            1,
            ceilings.max_table_elements,
        )?;
        check("max_instances", self.max_instances, 1, 1000)?;
        check("max_memories", self.max_memories, 1, 100)?;
        check("max_tables", self.max_tables, 1, 1000)?;
        let tick = crate::engine::EPOCH_TICK;
        let hour = Duration::from_secs(3600);
        check_duration("cpu_timeout", self.cpu_timeout, tick, hour)?;
        check_duration("wall_timeout", self.wall_timeout, tick, hour)?;
        check(
            "max_concurrent",
            self.max_concurrent,
            1,
            ceilings.pool_instances,
        )?;
        check("max_queued", self.max_queued, 0, 100_000)?;
        check(
            "max_input_bytes",
            self.max_input_bytes,
            1,
            MAX_INPUT_BYTES_CEILING,
        )?;
        check("max_output_bytes", self.max_output_bytes, 1, 64 * MIB)?;
        check("max_host_calls", self.max_host_calls, 1, 10_000_000)?;
        check("max_stored_bytes", self.max_stored_bytes, 1024, 1 << 50)?;
        check("max_write_bytes", self.max_write_bytes, 1024, 1 << 30)?;
        check("max_fuel", self.max_fuel, 1000, 1 << 62)?;
        check(
            "max_http_request_body_bytes",
            self.max_http_request_body_bytes,
            0,
            1 << 30,
        )?;
        check(
            "max_http_response_body_bytes",
            self.max_http_response_body_bytes,
            0,
            1 << 30,
        )?;
        check("max_http_header_count", self.max_http_header_count, 1, 1000)?;
        check("max_http_header_bytes", self.max_http_header_bytes, 64, MIB)?;
        check_duration(
            "http_request_timeout",
            self.http_request_timeout,
            tick,
            hour,
        )?;
        check("max_http_requests", self.max_http_requests, 0, 100_000)?;
        check("max_file_bytes", self.max_file_bytes, 1, 1 << 40)?;
        Ok(())
    }

    /// The limits host-api enforces on `wasi:http` requests.
    pub fn http_limits(&self) -> HttpLimits {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        HttpLimits {
            max_request_body_bytes: self.max_http_request_body_bytes,
            max_response_body_bytes: self.max_http_response_body_bytes,
            max_header_count: size(self.max_http_header_count),
            max_header_bytes: size(self.max_http_header_bytes),
            request_timeout: self.http_request_timeout,
            max_requests: u32::try_from(self.max_http_requests).unwrap_or(u32::MAX),
        }
    }

    /// The limits host-api enforces on `warden:agent` calls.
    pub fn agent_limits(&self) -> AgentLimits {
        AgentLimits {
            max_host_calls: u32::try_from(self.max_host_calls).unwrap_or(u32::MAX),
            max_stored_bytes: self.max_stored_bytes,
            max_write_bytes: self.max_write_bytes,
            ..AgentLimits::default()
        }
    }

    /// The limits host-api enforces on `wasi:filesystem` calls.
    pub fn files_limits(&self) -> FilesLimits {
        FilesLimits {
            max_file_bytes: self.max_file_bytes,
            max_calls: u32::try_from(self.max_host_calls).unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CEILINGS: Ceilings = Ceilings {
        max_memory_bytes: 512 * 1024 * 1024,
        max_table_elements: 100_000,
        pool_instances: 64,
    };

    #[test]
    fn defaults_are_within_their_ranges() {
        TenantLimits::default().validate(&CEILINGS).unwrap();
    }

    #[test]
    fn zero_and_absurd_limits_name_the_field_and_range() {
        let cases: &[(TenantLimits, &str)] = &[
            (
                TenantLimits {
                    max_memory_bytes: 0,
                    ..Default::default()
                },
                "limits.max_memory_bytes is 0; allowed range is 1048576 to 536870912",
            ),
            (
                TenantLimits {
                    max_memory_bytes: 1 << 40,
                    ..Default::default()
                },
                "limits.max_memory_bytes is 1099511627776; allowed range is 1048576 to 536870912",
            ),
            (
                TenantLimits {
                    max_table_elements: u64::from(u32::MAX),
                    ..Default::default()
                },
                "limits.max_table_elements is 4294967295; allowed range is 1 to 100000",
            ),
            (
                TenantLimits {
                    max_concurrent: 0,
                    ..Default::default()
                },
                "limits.max_concurrent is 0; allowed range is 1 to 64",
            ),
            (
                TenantLimits {
                    wall_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "limits.wall_timeout is 0s; allowed range is 10ms to 1h",
            ),
            (
                TenantLimits {
                    max_host_calls: 0,
                    ..Default::default()
                },
                "limits.max_host_calls is 0",
            ),
        ];
        for (limits, want) in cases {
            let err = limits.validate(&CEILINGS).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }
}

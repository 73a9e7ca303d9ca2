//! Per-invocation limits and their defaults.

use std::time::Duration;

use warden_host_api::warden_agent::AgentLimits;

/// Default linear memory per instance: 64 MiB.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Default wall-clock deadline per invocation: 10 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest input: 1 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Default largest output: 1 MiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Default capture per std stream per invocation: 64 KiB. Writes past it
/// fail in the guest.
pub const DEFAULT_MAX_STREAM_BYTES: usize = 64 * 1024;
/// Longest std stream line recorded in the audit trail, in bytes; longer
/// lines are cut and marked.
pub const MAX_STREAM_LINE_BYTES: usize = 4 * 1024;

/// Limits applied to every invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvocationLimits {
    /// Largest linear memory the instance may grow to, in bytes; growth past
    /// it fails in the guest. Default [`DEFAULT_MAX_MEMORY_BYTES`] (64 MiB).
    pub max_memory_bytes: usize,
    /// Wall-clock deadline, measured in epoch ticks of
    /// [`crate::engine::EPOCH_TICK`]; the guest traps once it passes.
    /// Default [`DEFAULT_TIMEOUT`] (10 s).
    pub timeout: Duration,
    /// Largest input accepted, in bytes, checked before instantiation.
    /// Default [`DEFAULT_MAX_INPUT_BYTES`] (1 MiB).
    pub max_input_bytes: usize,
    /// Largest output accepted, in bytes. Default
    /// [`DEFAULT_MAX_OUTPUT_BYTES`] (1 MiB).
    pub max_output_bytes: usize,
    /// Bytes of stdout and of stderr captured per invocation. Default
    /// [`DEFAULT_MAX_STREAM_BYTES`] (64 KiB).
    pub max_stream_bytes: usize,
    /// Limits on `warden:agent` calls.
    pub agent: AgentLimits,
}

impl Default for InvocationLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            timeout: DEFAULT_TIMEOUT,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
            agent: AgentLimits::default(),
        }
    }
}

//! The resource limiter of one invocation's store.

use std::collections::BTreeMap;

use wasmtime::ResourceLimiter;

use super::limits::TenantLimits;

/// Applies a tenant's memory, table and instance limits to one store and
/// remembers which were hit, so that each hit becomes an audit event.
#[derive(Debug)]
pub struct TenantLimiter {
    limits: TenantLimits,
    /// Limit name to (times hit, first occurrence). Bounded by the number of
    /// limits, however often a guest retries.
    hits: BTreeMap<&'static str, (u64, String)>,
}

impl TenantLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: TenantLimits) -> Self {
        Self {
            limits,
            hits: BTreeMap::new(),
        }
    }

    fn hit(&mut self, limit: &'static str, detail: impl FnOnce() -> String) {
        self.hits
            .entry(limit)
            .and_modify(|(n, _)| *n += 1)
            .or_insert_with(|| (1, detail()));
    }

    /// The limits hit: name, count and a description of the first hit.
    pub fn hits(&self) -> impl Iterator<Item = (&'static str, u64, &str)> {
        self.hits.iter().map(|(k, (n, d))| (*k, *n, d.as_str()))
    }
}

impl ResourceLimiter for TenantLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let max = self.limits.max_memory_bytes;
        if desired as u64 > max {
            self.hit("max_memory_bytes", || {
                format!("memory growth from {current} to {desired} bytes refused; limit {max}")
            });
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let max = self.limits.max_table_elements;
        if desired as u64 > max {
            self.hit("max_table_elements", || {
                format!("table growth from {current} to {desired} elements refused; limit {max}")
            });
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        usize::try_from(self.limits.max_instances).unwrap_or(usize::MAX)
    }

    fn tables(&self) -> usize {
        usize::try_from(self.limits.max_tables).unwrap_or(usize::MAX)
    }

    fn memories(&self) -> usize {
        usize::try_from(self.limits.max_memories).unwrap_or(usize::MAX)
    }
}

//! Prometheus metrics at `/metrics`, per tenant.
//!
//! Counted as they happen: invocations by outcome, their durations, and
//! requests refused by role or tenant scope. Read from the runtime at each
//! scrape: limit hits, queue depth and audit appends, for every tenant
//! this daemon has invoked an agent of.

use std::{
    collections::BTreeSet,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use warden_runtime::{Runtime, TenantId};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    tenant: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    tenant: String,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    tenant: String,
    operation: String,
}

/// The daemon's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    invocations: Family<OutcomeLabels, Counter>,
    durations: Family<TenantLabel, Histogram>,
    denials: Family<DenialLabels, Counter>,
    limit_hits: Family<LimitLabels, Counter>,
    queue_depth: Family<TenantLabel, Gauge>,
    audit_appends: Family<TenantLabel, Counter>,
    tenants: Mutex<BTreeSet<TenantId>>,
}

impl Metrics {
    /// Registers every metric, all starting at zero.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("warden");
        let invocations = Family::<OutcomeLabels, Counter>::default();
        let durations = Family::<TenantLabel, Histogram>::new_with_constructor(|| {
            // 1 ms to about 33 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.001, 2.0, 16,
            ))
        });
        let denials = Family::<DenialLabels, Counter>::default();
        let limit_hits = Family::<LimitLabels, Counter>::default();
        let queue_depth = Family::<TenantLabel, Gauge>::default();
        let audit_appends = Family::<TenantLabel, Counter>::default();
        registry.register(
            "invocations",
            "Invocations through the daemon, by tenant and outcome",
            invocations.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Wall-clock duration of invocations, by tenant",
            durations.clone(),
        );
        registry.register(
            "denials",
            "Requests refused by role or tenant scope, by tenant and operation",
            denials.clone(),
        );
        registry.register(
            "limit_hits",
            "Tenant limits reached, by tenant and limit",
            limit_hits.clone(),
        );
        registry.register(
            "queue_depth",
            "Invocations waiting for a running slot, by tenant",
            queue_depth.clone(),
        );
        registry.register(
            "audit_appends",
            "Events appended to a tenant's audit log, counted from its size",
            audit_appends.clone(),
        );
        Self {
            registry,
            invocations,
            durations,
            denials,
            limit_hits,
            queue_depth,
            audit_appends,
            tenants: Mutex::new(BTreeSet::new()),
        }
    }

    /// Counts one invocation of `tenant` ending with `outcome`.
    pub(crate) fn invocation(&self, tenant: &TenantId, outcome: &str, took: Duration) {
        self.tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.clone());
        self.invocations
            .get_or_create(&OutcomeLabels {
                tenant: tenant.as_str().to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.durations
            .get_or_create(&TenantLabel {
                tenant: tenant.as_str().to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one refused request.
    pub(crate) fn denial(&self, tenant: Option<&TenantId>, operation: &str) {
        self.denials
            .get_or_create(&DenialLabels {
                tenant: tenant.map_or_else(String::new, |t| t.as_str().to_owned()),
                operation: operation.to_owned(),
            })
            .inc();
    }

    /// The text exposition, after reading the runtime's counters.
    pub(crate) fn render(&self, runtime: &Runtime) -> String {
        for (tenant, limit, hits) in runtime.limit_hits() {
            let counter = self.limit_hits.get_or_create(&LimitLabels {
                tenant: tenant.as_str().to_owned(),
                limit: limit.to_owned(),
            });
            counter.inc_by(hits.saturating_sub(counter.get()));
        }
        let tenants = self
            .tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for tenant in &tenants {
            let label = TenantLabel {
                tenant: tenant.as_str().to_owned(),
            };
            self.queue_depth
                .get_or_create(&label)
                .set(i64::try_from(runtime.queued(tenant)).unwrap_or(i64::MAX));
            if let Ok(log) = runtime.audit_logs().tenant(tenant) {
                let counter = self.audit_appends.get_or_create(&label);
                counter.inc_by(log.size().saturating_sub(counter.get()));
            }
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            tracing::error!("cannot encode the metrics");
        }
        text
    }
}

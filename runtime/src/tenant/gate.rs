//! Per-tenant concurrency with a bounded queue.
//!
//! At most `max_concurrent` invocations of a tenant run at once; up to
//! `max_queued` more wait for a slot, and any beyond that are refused at once
//! as busy. Each tenant has its own gate, so one tenant's queue never delays
//! another's.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limits::TenantLimits;

/// Why the gate refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full {
    pub(crate) max_concurrent: u64,
    pub(crate) max_queued: u64,
}

#[derive(Debug)]
pub(crate) struct Gate {
    slots: Arc<Semaphore>,
    queued: AtomicU64,
    max_concurrent: u64,
    max_queued: u64,
}

/// Takes a queue place back when a waiter leaves, whether it got a slot or
/// was cancelled (its caller gave up or timed out).
struct QueuePlace<'a>(&'a AtomicU64);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub(crate) fn new(limits: &TenantLimits) -> Self {
        let slots = usize::try_from(limits.max_concurrent).unwrap_or(usize::MAX);
        Self {
            slots: Arc::new(Semaphore::new(slots.min(Semaphore::MAX_PERMITS))),
            queued: AtomicU64::new(0),
            max_concurrent: limits.max_concurrent,
            max_queued: limits.max_queued,
        }
    }

    /// Waits for a running slot, or refuses at once when the queue is full.
    pub(crate) async fn enter(&self) -> Result<OwnedSemaphorePermit, Full> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        let full = Full {
            max_concurrent: self.max_concurrent,
            max_queued: self.max_queued,
        };
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(full);
        }
        let _place = QueuePlace(&self.queued);
        // The semaphore is never closed, so acquiring only fails if it were.
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| full)
    }

    /// Invocations waiting now.
    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max_concurrent: u64, max_queued: u64) -> Arc<Gate> {
        Arc::new(Gate::new(&TenantLimits {
            max_concurrent,
            max_queued,
            ..Default::default()
        }))
    }

    #[tokio::test]
    async fn refuses_at_once_beyond_the_queue() {
        let g = gate(1, 1);
        let running = g.enter().await.unwrap();
        let waiter = tokio::spawn({
            let g = Arc::clone(&g);
            async move { g.enter().await.map(drop) }
        });
        while g.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            g.enter().await.unwrap_err(),
            Full {
                max_concurrent: 1,
                max_queued: 1
            }
        );
        drop(running);
        waiter.await.unwrap().unwrap();
        assert_eq!(g.queued(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_place_back() {
        let g = gate(1, 1);
        let _running = g.enter().await.unwrap();
        let attempt = tokio::time::timeout(std::time::Duration::from_millis(20), g.enter()).await;
        assert!(attempt.is_err());
        assert_eq!(g.queued(), 0);
    }
}

//! How a guest's future is driven: in place first, on a thread of its own
//! once it proves busy, with its CPU time metered per poll.
//!
//! Handing every invocation to a blocking-pool thread and back costs two
//! thread wake-ups, a fair share of a short invocation's time. Most
//! invocations are short, so the guest's future is first polled in place,
//! on the task that called [`Runtime::invoke`]: an invocation that finishes
//! (or waits on I/O) before the next epoch tick never leaves it. A guest
//! still running at an epoch tick yields (the store's epoch callback asks
//! it to), and from then on its future runs on a blocking-pool thread of
//! its own, so that a busy guest holds an async worker for at most one
//! [`EPOCH_TICK`] and the OS scheduler, not tick boundaries, shares the
//! cores between tenants. The tenant's concurrency gate bounds how many
//! such threads a tenant can hold.
//!
//! A future may move between threads at each poll, so no one thread's CPU
//! clock is the invocation's. [`CpuMeter`] reads the polling thread's CPU
//! clock at the start and end of every poll and sums the segments: guest
//! code and host work count, time spent pending (a sleep, a response on
//! the way) does not. The epoch callback adds the running segment and
//! compares the total with the tenant's `cpu_timeout`. The poll that ends
//! the run is not added: only that callback reads the total, and only
//! while the run goes on.
//!
//! [`Runtime::invoke`]: super::Runtime::invoke
//! [`EPOCH_TICK`]: crate::engine::EPOCH_TICK

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

/// CPU time an invocation has used, summed over the polls of its future.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    /// CPU time of the finished polls, in nanoseconds.
    used_ns: AtomicU64,
    /// The polling thread's CPU clock when the running poll started, in
    /// nanoseconds.
    poll_started_ns: AtomicU64,
    /// Set when the guest yielded at an epoch tick: it is busy and should
    /// leave the caller's task.
    busy: AtomicBool,
}

impl CpuMeter {
    /// CPU time used so far, the running poll included. Meaningful only on
    /// the polling thread, inside a poll (the epoch callback runs there).
    pub(crate) fn used(&self) -> Duration {
        let running = thread_cpu_ns().saturating_sub(self.poll_started_ns.load(Ordering::Relaxed));
        Duration::from_nanos(self.used_ns.load(Ordering::Relaxed).saturating_add(running))
    }

    /// Notes that the guest yielded at an epoch tick.
    pub(crate) fn yielded(&self) {
        self.busy.store(true, Ordering::Relaxed);
    }
}

/// The host code driving a guest panicked: a warden bug.
#[derive(Debug)]
pub(crate) struct Panicked;

/// A future whose polls are metered by a [`CpuMeter`], and whose panic
/// ends it rather than the task polling it.
struct Metered<F> {
    future: Pin<Box<F>>,
    meter: Arc<CpuMeter>,
}

impl<F: Future> Future for Metered<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = thread_cpu_ns();
        self.meter.poll_started_ns.store(started, Ordering::Relaxed);
        // A panic in host code must fail this invocation alone, wherever
        // it is polled. The future is not polled again after one.
        let future = self.future.as_mut();
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
        match polled {
            // The total is read only while the run goes on (by the epoch
            // callback), so the poll that ends it need not be added: one
            // clock read less for every invocation.
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => {
                let spent = thread_cpu_ns().saturating_sub(started);
                self.meter.used_ns.fetch_add(spent, Ordering::Relaxed);
                Poll::Pending
            }
            Err(_) => Poll::Ready(Err(Panicked)),
        }
    }
}

/// Drives `future` (a guest's whole run) to its end: in place until the
/// guest yields at an epoch tick, then on a blocking-pool thread. See the
/// module docs.
///
/// # Errors
///
/// Returns [`Panicked`] when the host code polling the guest panicked.
pub(crate) async fn drive<F>(future: F, meter: Arc<CpuMeter>) -> Result<F::Output, Panicked>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut metered = Metered {
        future: Box::pin(future),
        meter: Arc::clone(&meter),
    };
    let in_place = std::future::poll_fn(|cx| match Pin::new(&mut metered).poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        // Busy: leave the caller's task. The guest's yield already woke
        // this task, so nothing is lost by returning.
        Poll::Pending if meter.busy.load(Ordering::Relaxed) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await;
    if let Some(output) = in_place {
        return output;
    }
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(metered))
        .await
        .unwrap_or(Err(Panicked))
}

/// CPU time the calling thread has used, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU until the thread's clock moved by `d`.
    fn burn(d: Duration) {
        let start = thread_cpu_ns();
        while thread_cpu_ns() - start < d.as_nanos() as u64 {
            std::hint::black_box(0);
        }
    }

    #[tokio::test]
    async fn a_short_run_stays_on_the_calling_thread() {
        let meter = Arc::new(CpuMeter::default());
        let caller = std::thread::current().id();
        let ran_on = drive(async { std::thread::current().id() }, Arc::clone(&meter))
            .await
            .unwrap();
        assert_eq!(ran_on, caller);
    }

    #[tokio::test]
    async fn a_busy_run_moves_to_its_own_thread_and_its_cpu_is_summed() {
        let meter = Arc::new(CpuMeter::default());
        let caller = std::thread::current().id();
        let busy = Arc::clone(&meter);
        let run = async move {
            burn(Duration::from_millis(20));
            // As the epoch callback does for a guest still running.
            busy.yielded();
            tokio::task::yield_now().await;
            burn(Duration::from_millis(20));
            busy.yielded();
            tokio::task::yield_now().await;
            std::thread::current().id()
        };
        let ran_on = drive(run, Arc::clone(&meter)).await.unwrap();
        assert_ne!(ran_on, caller);
        let used = Duration::from_nanos(meter.used_ns.load(Ordering::Relaxed));
        assert!(used >= Duration::from_millis(40), "{used:?}");
    }

    #[tokio::test]
    async fn time_spent_pending_is_not_counted() {
        let meter = Arc::new(CpuMeter::default());
        let run = tokio::time::sleep(Duration::from_millis(100));
        drive(run, Arc::clone(&meter)).await.unwrap();
        let used = Duration::from_nanos(meter.used_ns.load(Ordering::Relaxed));
        assert!(used < Duration::from_millis(50), "{used:?}");
    }
}

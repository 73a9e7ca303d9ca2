//! Bodies that count bytes and enforce limits on their way through the
//! host, and that record how an exchange ended.

use std::{
    future::Future as _,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error, WasiBody};

use crate::{
    audit::{self, AuditSink, EventBody},
    scope::InstanceScope,
};

/// The guest's request body, cut at `max_bytes`.
pub(super) struct RequestBody {
    pub(super) inner: WasiBody,
    /// Bytes sent so far, read by the exchange's audit event.
    pub(super) sent: Arc<AtomicU64>,
    pub(super) max_bytes: u64,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &frame
            && let Some(data) = frame.data_ref()
        {
            let total =
                self.sent.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            // Checked per frame so that an oversize body never reaches the
            // wire in full, whatever its content-length claimed.
            if total > self.max_bytes {
                return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(self.max_bytes)))));
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Everything the exchange's closing audit event needs.
pub(super) struct Closing {
    pub(super) audit: Arc<dyn AuditSink>,
    pub(super) scope: Arc<InstanceScope>,
    pub(super) url: String,
    pub(super) started: Instant,
    pub(super) sent: Arc<AtomicU64>,
}

impl Closing {
    /// Records how the exchange ended. A failing sink cannot fail anything
    /// any more here (the bytes have moved); it is logged for the operator.
    pub(super) fn record(&self, status: Option<u16>, error: Option<String>, received: u64) {
        let body = EventBody::HttpResponse {
            url: self.url.clone(),
            status,
            error,
            request_bytes: self.sent.load(Ordering::Relaxed),
            response_bytes: received,
            duration_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        };
        if let Err(e) = audit::emit(&*self.audit, &self.scope, body) {
            tracing::error!(tenant = %self.scope.tenant, error = %e, "cannot record the end of an http exchange");
        }
    }
}

/// The response body as the guest reads it: cut at `max_bytes` and at the
/// request's deadline, and recorded once when it ends or is dropped.
pub(super) struct ResponseBody {
    pub(super) inner: hyper::body::Incoming,
    pub(super) max_bytes: u64,
    pub(super) received: u64,
    pub(super) deadline: Pin<Box<tokio::time::Sleep>>,
    pub(super) status: u16,
    /// `None` once the closing event is recorded.
    pub(super) closing: Option<Closing>,
}

impl ResponseBody {
    fn close(&mut self, error: Option<String>) {
        if let Some(closing) = self.closing.take() {
            closing.record(Some(self.status), error, self.received);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.closing.is_none() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.close(Some("request timed out while reading the body".into()));
            return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.close(None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.close(Some(format!("response body failed: {e}")));
                Poll::Ready(Some(Err(Error::from(e))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    if self.received > self.max_bytes {
                        let max = self.max_bytes;
                        self.close(Some(format!(
                            "response body exceeds max_http_response_body_bytes ({max})"
                        )));
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(max)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.closing.is_none() || self.inner.is_end_stream()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if self.closing.is_some() {
            let note = (!self.inner.is_end_stream())
                .then(|| "the guest dropped the body before its end".to_owned());
            self.close(note);
        }
    }
}

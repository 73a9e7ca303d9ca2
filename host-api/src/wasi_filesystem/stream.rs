//! The write stream the guest gets for a file: wasmtime-wasi's own, wrapped
//! to hold the file within `max_file_bytes` and to sum what it wrote.
//!
//! Rust's `std::fs` (through wasi-libc) writes files through
//! `write-via-stream` and `append-via-stream`, not `descriptor.write`, so
//! this is where most file writes pass. The stream checks each write before
//! handing it on; its creation was recorded by the host, and its drop
//! records the bytes it wrote.

use std::sync::Arc;

use bytes::Bytes;
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};

use super::{INTERFACE, Shared, scope::check_file_size};
use crate::audit::{self, Blame, Decision, EventBody};

/// Where the next write lands.
#[derive(Clone, Copy, Debug)]
pub(super) enum Position {
    /// At this offset, advancing with each write.
    At(u64),
    /// At the end of the file, wherever it is then.
    Append,
}

/// A file write stream that checks and sums its writes.
pub(super) struct CheckedWrite {
    inner: DynOutputStream,
    file: Arc<std::fs::File>,
    position: Position,
    max_file_bytes: u64,
    shared: Arc<Shared>,
    resource: String,
    written: u64,
    refused: bool,
}

impl CheckedWrite {
    pub(super) fn new(
        inner: DynOutputStream,
        file: Arc<std::fs::File>,
        position: Position,
        max_file_bytes: u64,
        shared: Arc<Shared>,
        resource: String,
    ) -> Self {
        Self {
            inner,
            file,
            position,
            max_file_bytes,
            shared,
            resource,
            written: 0,
            refused: false,
        }
    }

    /// Checks a write of `len` bytes against `max_file_bytes`; a refusal
    /// is recorded once and closes the stream.
    fn check(&mut self, len: usize) -> StreamResult<()> {
        if self.refused {
            return Err(StreamError::Closed);
        }
        let start = match self.position {
            Position::At(offset) => offset,
            // The previous write on this stream has finished (a write is
            // only accepted after `check-write` reports room), so the size
            // read here includes it.
            Position::Append => self
                .file
                .metadata()
                .map_err(|e| StreamError::LastOperationFailed(e.into()))?
                .len(),
        };
        let end = start.saturating_add(len as u64);
        let Err(refusal) = check_file_size(end, self.max_file_bytes) else {
            return Ok(());
        };
        self.refused = true;
        self.shared.hit("max_file_bytes");
        let body = EventBody::HostCall {
            interface: INTERFACE.to_owned(),
            function: "output-stream.write".to_owned(),
            resource: audit::bounded_resource(&self.resource),
            decision: Decision::Deny,
            reason: refusal.to_string(),
            blame: Some(Blame::Guest),
            value_digest: None,
            old_value_digest: None,
        };
        audit::emit(&*self.shared.audit, &self.shared.scope, body)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))?;
        Err(StreamError::LastOperationFailed(wasmtime::Error::new(
            file_too_large(),
        )))
    }

    fn advance(&mut self, len: usize) {
        self.written = self.written.saturating_add(len as u64);
        if let Position::At(offset) = &mut self.position {
            *offset = offset.saturating_add(len as u64);
        }
    }
}

/// The I/O error the guest sees for a file grown past its limit: `EFBIG`,
/// which wasmtime-wasi reports as `file-too-large`.
pub(super) fn file_too_large() -> std::io::Error {
    std::io::Error::from_raw_os_error(rustix::io::Errno::FBIG.raw_os_error())
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CheckedWrite {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let len = bytes.len();
        self.check(len)?;
        self.inner.write(bytes)?;
        self.advance(len);
        Ok(())
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        let len = bytes.len();
        self.check(len)?;
        self.inner.blocking_write_and_flush(bytes).await?;
        self.advance(len);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.refused {
            return Err(StreamError::Closed);
        }
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CheckedWrite {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

impl Drop for CheckedWrite {
    fn drop(&mut self) {
        if self.written > 0 {
            self.shared
                .record_written("output-stream.write", &self.resource, self.written);
        }
    }
}

//! Host side of `wasi:http`: outbound requests checked against the agent's
//! egress grant.
//!
//! Guests use the standard `wasi:http/outgoing-handler`, served by
//! `wasmtime-wasi-http`. That crate hands every request to a
//! [`WasiHttpHooks::send_request`] hook, and warden's hook is the only way
//! a request leaves the host. [`HttpCtx`] is the per-instance state the hook
//! needs: the invocation's [`InstanceScope`], the agent's [`HttpGrant`], a
//! [`Resolver`], the [`AuditSink`], the [`HttpLimits`] and the invocation's
//! deadline. For each request the hook, in this order (see `host.rs`):
//!
//! 1. counts it against `max_requests` and checks its headers;
//! 2. canonicalises the target and decides it against the grant
//!    ([`scope`]), before any DNS lookup;
//! 3. resolves the name once and checks every address it got;
//! 4. adds the headers the matching rule grants, with the tenant's secrets
//!    filled in ([`inject`]), and records the decision, naming the address
//!    and the added headers by name, in the audit stream;
//! 5. connects to that checked address (no second lookup), for `https`
//!    runs TLS over it verifying the canonical host's certificate
//!    ([`tls`]), sends the
//!    request with the canonical `Host`, and does not follow redirects: the
//!    guest sees the 3xx, and a follow-up is a new request, checked anew;
//! 6. records how the exchange ended (status, bytes, duration).
//!
//! A refused request gets a `wasi:http` error code for that request alone
//! (`HTTP-request-denied` for the grant, a size or timeout code for a
//! limit) and one audit event.
//!
//! [`WasiHttpHooks::send_request`]: wasmtime_wasi_http::WasiHttpHooks::send_request
//! [`InstanceScope`]: crate::scope::InstanceScope

mod body;
mod fields;
mod host;
pub mod inject;
pub mod scope;
pub mod tls;

use std::{
    fmt,
    future::Future,
    io,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use wasmtime::component::{Linker, ResourceTable};
pub use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::{audit::AuditSink, scope::InstanceScope, secrets::TenantSecrets};
pub use inject::InjectedHeader;
pub use scope::{EgressRule, HttpGrant};
pub use tls::{TlsRootError, client_config};

/// Default cap on the request body one request may send: 1 MiB.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 1024 * 1024;
/// Default cap on the response body the guest may read: 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BODY_BYTES: u64 = 4 * 1024 * 1024;
/// Default cap on the headers of one request or response.
pub const DEFAULT_MAX_HEADER_COUNT: usize = 64;
/// Default cap on the bytes of all names and values of one request's or
/// response's headers: 16 KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Default cap on the time one request may take, from the decision to the
/// end of the response body; the invocation's deadline cuts it shorter.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on requests per invocation, refused ones included.
pub const DEFAULT_MAX_REQUESTS: u32 = 32;

/// Limits on what one invocation may do over `wasi:http`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body, in bytes. Default
    /// [`DEFAULT_MAX_REQUEST_BODY_BYTES`] (1 MiB).
    pub max_request_body_bytes: u64,
    /// Largest response body the guest may read, in bytes. Default
    /// [`DEFAULT_MAX_RESPONSE_BODY_BYTES`] (4 MiB).
    pub max_response_body_bytes: u64,
    /// Most headers on one request or response. Default
    /// [`DEFAULT_MAX_HEADER_COUNT`] (64).
    pub max_header_count: usize,
    /// Most bytes of header names and values on one request or response.
    /// Default [`DEFAULT_MAX_HEADER_BYTES`] (16 KiB).
    pub max_header_bytes: usize,
    /// Longest time one request may take. Default
    /// [`DEFAULT_REQUEST_TIMEOUT`] (10 s); the invocation's deadline and the
    /// guest's own request options may cut it shorter, never longer.
    pub request_timeout: Duration,
    /// Most requests per invocation, refused ones included. Default
    /// [`DEFAULT_MAX_REQUESTS`] (32).
    pub max_requests: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            max_response_body_bytes: DEFAULT_MAX_RESPONSE_BODY_BYTES,
            max_header_count: DEFAULT_MAX_HEADER_COUNT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_requests: DEFAULT_MAX_REQUESTS,
        }
    }
}

/// A boxed future returned by [`Resolver::lookup`].
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses, once per request.
///
/// The runtime uses [`SystemResolver`]; tests and embedders with their own
/// DNS policy pass another. Whatever it returns is checked address by
/// address before anything connects, so a resolver cannot widen a grant.
pub trait Resolver: Send + Sync + fmt::Debug {
    /// The addresses of `name`, a canonical lower-case ASCII DNS name.
    ///
    /// # Errors
    ///
    /// Returns the lookup's I/O error; the guest then sees a DNS error.
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a>;
}

/// The operating system's resolver, through tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, name: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((name, 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Per-instance state of `wasi:http`.
///
/// Holds `wasmtime-wasi-http`'s own context and warden's egress hooks; the
/// store's data type lends both out, with its resource table, through
/// [`HttpCtx::view`].
pub struct HttpCtx {
    wasi: WasiHttpCtx,
    hooks: host::EgressHooks,
}

impl fmt::Debug for HttpCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCtx")
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl HttpCtx {
    /// State for one instance running under `scope` with `grant`, whose
    /// invocation must end by `deadline`; `secrets` holds the tenant's
    /// values of the secrets the grant's headers use, and `tls` is the
    /// client configuration of https requests (see [`client_config`]).
    #[expect(
        clippy::too_many_arguments,
        reason = "each is one piece of the instance's egress state, owned elsewhere"
    )]
    pub fn new(
        scope: Arc<InstanceScope>,
        grant: Arc<HttpGrant>,
        resolver: Arc<dyn Resolver>,
        audit: Arc<dyn AuditSink>,
        limits: HttpLimits,
        deadline: Instant,
        secrets: Arc<TenantSecrets>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        let mut wasi = WasiHttpCtx::new();
        // wasmtime-wasi-http counts the in-memory size of a fields resource,
        // which is larger than the wire size our limit names; four times
        // leaves room for its bookkeeping while still bounding memory.
        wasi.set_field_size_limit(limits.max_header_bytes.saturating_mul(4));
        Self {
            wasi,
            hooks: host::EgressHooks::new(
                scope, grant, resolver, audit, limits, deadline, secrets, tls,
            ),
        }
    }

    /// The view `wasmtime-wasi-http` works on, over `table`.
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            ctx: &mut self.wasi,
            table,
            hooks: &mut self.hooks,
        }
    }

    /// Requests made so far in this invocation, refused ones included.
    pub fn requests(&self) -> u32 {
        self.hooks.requests()
    }

    fn header_guard(&self) -> host::HeaderGuard {
        self.hooks.header_guard()
    }
}

/// Implemented by a store's data type to lend out its [`HttpCtx`], besides
/// the view `wasmtime-wasi-http` works on.
pub trait HttpView: WasiHttpView {
    /// The instance's egress state.
    fn http_ctx(&mut self) -> &mut HttpCtx;
}

/// Adds `wasi:http/types` and `wasi:http/outgoing-handler` to `linker`.
///
/// # Scope
///
/// Every request sent through `outgoing-handler.handle` is checked against
/// the [`HttpGrant`] and the [`HttpLimits`] of the instance's [`HttpCtx`]
/// and recorded in the audit stream: one event for the decision, one more
/// for how an allowed exchange ended. Adding a header to `fields` is
/// checked against the header limits, and a header refused there (limits,
/// syntax, a forbidden or immutable field) is one audit event too.
///
/// # Errors
///
/// Fails when the linker already defines these imports.
pub fn add_to_linker<T: HttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    fields::add_to_linker(linker)
}

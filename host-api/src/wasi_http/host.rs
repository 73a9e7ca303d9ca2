//! The `wasmtime-wasi-http` hooks: warden's egress check and the one place
//! an outbound request is sent from.

use std::{
    fmt,
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::AtomicU64},
    time::Instant,
};

use http::{HeaderMap, HeaderName, HeaderValue, uri::Scheme as UriScheme};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tracing::debug_span;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks, io::TokioIo};

use super::{
    HttpGrant, HttpLimits, Resolver,
    body::{Closing, RequestBody, ResponseBody},
    scope::{EgressRule, Host, Refusal, Scheme, Target, canonical_ip, check_address, redact_query},
};
use crate::{
    audit::{self, AuditSink, Blame, Decision, EventBody, HeaderInjection, bounded_resource},
    scope::InstanceScope,
    secrets::TenantSecrets,
};

/// What [`WasiHttpHooks::send_request`] returns.
type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// The egress guard of one instance.
pub(super) struct EgressHooks {
    shared: Arc<Shared>,
    requests: u32,
}

/// What the asynchronous part of a request needs, shared by all of them.
struct Shared {
    scope: Arc<InstanceScope>,
    grant: Arc<HttpGrant>,
    resolver: Arc<dyn Resolver>,
    audit: Arc<dyn AuditSink>,
    limits: HttpLimits,
    deadline: Instant,
    /// The tenant's values of the secrets the grant's headers use.
    secrets: Arc<TenantSecrets>,
    /// The client configuration of https requests.
    tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for EgressHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressHooks")
            .field("grant", &self.shared.grant)
            .field("limits", &self.shared.limits)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

/// Checks and records refusals of `fields` calls that add headers; see the
/// `fields` module.
pub(super) struct HeaderGuard {
    shared: Arc<Shared>,
}

impl HeaderGuard {
    /// Why adding `adding` (headers, bytes) to fields already holding
    /// `count` headers of `bytes` would pass the limits, if it would.
    pub(super) fn over_limits(
        &self,
        count: usize,
        bytes: usize,
        adding: (usize, usize),
    ) -> Option<String> {
        let limits = &self.shared.limits;
        let count = count.saturating_add(adding.0);
        let bytes = bytes.saturating_add(adding.1);
        if count > limits.max_header_count {
            Some(format!(
                "{count} headers exceed max_http_header_count ({})",
                limits.max_header_count
            ))
        } else if bytes > limits.max_header_bytes {
            Some(format!(
                "{bytes} bytes of headers exceed max_http_header_bytes ({})",
                limits.max_header_bytes
            ))
        } else {
            None
        }
    }

    /// Records that `fields.<function>` refused header `name`; an audit
    /// failure traps (fail closed).
    pub(super) fn refuse(
        &self,
        function: &str,
        name: &str,
        reason: String,
    ) -> wasmtime::Result<()> {
        let shared = &self.shared;
        tracing::debug!(tenant = %shared.scope.tenant, reason = %reason, "http header refused");
        let body = EventBody::HostCall {
            interface: "wasi:http/types".to_owned(),
            function: format!("fields.{function}"),
            resource: bounded_resource(name),
            decision: Decision::Deny,
            reason,
            blame: Some(Blame::Guest),
            value_digest: None,
            old_value_digest: None,
        };
        audit::emit(&*shared.audit, &shared.scope, body).map_err(wasmtime::Error::new)
    }
}

/// A decision on one request, ready to be recorded.
struct Decided {
    method: String,
    url: String,
    address: Option<IpAddr>,
    injected: Vec<HeaderInjection>,
}

impl Shared {
    /// Records the decision event. An audit failure refuses the request
    /// (fail closed: it must not go out unrecorded).
    fn record(
        &self,
        d: &Decided,
        decision: Decision,
        reason: String,
        blame: Option<Blame>,
    ) -> Result<(), Error> {
        let body = EventBody::HttpRequest {
            method: bounded_resource(&d.method),
            url: d.url.clone(),
            address: d.address.map(|a| a.to_string()),
            decision,
            reason,
            blame,
            injected: d.injected.clone(),
        };
        audit::emit(&*self.audit, &self.scope, body).map_err(|e| {
            tracing::error!(tenant = %self.scope.tenant, error = %e, "cannot record an http request");
            Error::InternalError(Some("audit stream cannot record; request not sent".into()))
        })
    }

    /// Records a refusal the guest caused and returns `code` for it.
    fn refuse(&self, d: &Decided, reason: String, code: Error) -> Error {
        tracing::debug!(tenant = %self.scope.tenant, reason = %reason, "http request refused");
        match self.record(d, Decision::Deny, reason, Some(Blame::Guest)) {
            Ok(()) => code,
            Err(audit_failed) => audit_failed,
        }
    }
}

impl EgressHooks {
    #[expect(
        clippy::too_many_arguments,
        reason = "each is one piece of the instance's egress state, owned elsewhere"
    )]
    pub(super) fn new(
        scope: Arc<InstanceScope>,
        grant: Arc<HttpGrant>,
        resolver: Arc<dyn Resolver>,
        audit: Arc<dyn AuditSink>,
        limits: HttpLimits,
        deadline: Instant,
        secrets: Arc<TenantSecrets>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                scope,
                grant,
                resolver,
                audit,
                limits,
                deadline,
                secrets,
                tls,
            }),
            requests: 0,
        }
    }

    pub(super) fn requests(&self) -> u32 {
        self.requests
    }

    pub(super) fn header_guard(&self) -> HeaderGuard {
        HeaderGuard {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The checks that need no I/O: the request cap, headers, the target's
    /// spelling and the grant. Returns the rule and target that allow the
    /// request.
    fn check(
        &mut self,
        request: &http::Request<WasiBody>,
        decided: &Decided,
    ) -> Result<(EgressRule, Target), Error> {
        let shared = &self.shared;
        let limits = &shared.limits;
        self.requests = self.requests.saturating_add(1);
        if self.requests > limits.max_requests {
            let reason = format!(
                "requests per invocation exceed max_http_requests ({})",
                limits.max_requests
            );
            return Err(shared.refuse(decided, reason, Error::ConnectionLimitReached));
        }

        let headers = request.headers();
        let header_bytes: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if headers.len() > limits.max_header_count || header_bytes > limits.max_header_bytes {
            let reason = format!(
                "headers ({} of {header_bytes} bytes) exceed max_http_header_count ({}) or \
                 max_http_header_bytes ({})",
                headers.len(),
                limits.max_header_count,
                limits.max_header_bytes
            );
            let size = u32::try_from(header_bytes).ok();
            return Err(shared.refuse(decided, reason, Error::HttpRequestHeaderSectionSize(size)));
        }
        // wasi:http refuses these when the guest builds its fields; checked
        // again here so that no other path can put a CR or LF on the wire.
        if let Some((name, _)) = headers.iter().find(|(_, v)| {
            v.as_bytes()
                .iter()
                .any(|b| b.is_ascii_control() && *b != b'\t')
        }) {
            let reason = format!("header {name} contains a control character");
            let code = Error::HttpRequestHeaderSize {
                field_name: Some(name.as_str().to_owned()),
                field_size: None,
            };
            return Err(shared.refuse(decided, reason, code));
        }
        let too_long = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > limits.max_request_body_bytes);
        if too_long {
            let max = limits.max_request_body_bytes;
            let reason = format!("request body exceeds max_http_request_body_bytes ({max})");
            return Err(shared.refuse(decided, reason, Error::HttpRequestBodySize(Some(max))));
        }

        let uri = request.uri();
        let target = Target::parse(
            uri.scheme_str().unwrap_or(""),
            uri.authority().map_or("", |a| a.as_str()),
            uri.path_and_query().map_or("/", |p| p.as_str()),
        )
        .map_err(|refusal| {
            let code = match refusal {
                Refusal::Scheme(_) => Error::HttpProtocolError,
                _ => Error::HttpRequestUriInvalid,
            };
            shared.refuse(decided, refusal.to_string(), code)
        })?;
        let rule = shared
            .grant
            .decide(&target, request.method().as_str())
            .map_err(|refusal| {
                shared.refuse(decided, refusal.to_string(), Error::HttpRequestDenied)
            })?
            .clone();
        Ok((rule, target))
    }
}

/// The guest's spelling of a request target, query values redacted and the
/// whole cut to the audit bound.
fn spelled_url(uri: &http::Uri) -> String {
    let text = uri.to_string();
    let redacted = match text.split_once('?') {
        Some((before, query)) => format!("{before}?{}", redact_query(query)),
        None => text,
    };
    bounded_resource(&redacted)
}

impl WasiHttpHooks for EgressHooks {
    /// Every scheme reaches [`Self::send_request`], so that an unknown one
    /// is refused there and recorded rather than dropped unrecorded.
    fn is_supported_scheme(&mut self, _scheme: &UriScheme) -> bool {
        true
    }

    /// The host sets `Host` itself, from the canonical target.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let span =
            debug_span!("wasi:http/outgoing-handler.handle", tenant = %self.shared.scope.tenant);
        let _enter = span.enter();
        let started = Instant::now();
        let mut decided = Decided {
            method: request.method().as_str().to_owned(),
            url: spelled_url(request.uri()),
            address: None,
            injected: Vec::new(),
        };
        let (rule, target) = match self.check(&request, &decided) {
            Ok(allowed) => allowed,
            Err(code) => return Box::new(async move { Err(code) }),
        };
        let shared = Arc::clone(&self.shared);
        Box::new(async move {
            let limits = shared.limits;
            // The invocation's deadline bounds every request; the guest's
            // own options may only shorten it.
            let mut deadline = (started + limits.request_timeout).min(shared.deadline);
            if let Some(t) = options.and_then(|o| o.first_byte_timeout) {
                deadline = deadline.min(started + t);
            }
            let deadline = tokio::time::Instant::from_std(deadline);

            let addresses = match &target.host {
                Host::Ip(ip) => vec![*ip],
                Host::Name(name) => {
                    match tokio::time::timeout_at(deadline, shared.resolver.lookup(name)).await {
                        Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
                        Ok(Ok(_)) | Ok(Err(_)) => {
                            let reason = format!("{name} did not resolve");
                            let code = Error::DnsError {
                                rcode: Some("no address".into()),
                                info_code: None,
                            };
                            return Err(shared.refuse(&decided, reason, code));
                        }
                        Err(_) => {
                            let reason = format!("lookup of {name} timed out");
                            return Err(shared.refuse(&decided, reason, Error::DnsTimeout));
                        }
                    }
                }
            };
            // Every address is checked, not only the one used: a name that
            // answers with a private address beside a public one is a
            // rebinding attempt, whichever the host would pick.
            for address in &addresses {
                if let Err(refusal) = check_address(&rule, *address) {
                    decided.address = Some(canonical_ip(*address));
                    let code = Error::DestinationIpProhibited;
                    return Err(shared.refuse(&decided, refusal.to_string(), code));
                }
            }
            let address = canonical_ip(addresses[0]);
            decided.url = target.redacted_url();
            decided.address = Some(address);
            // Secrets go in only now, after every check passed, so that a
            // refused request never carried them anywhere.
            let injected = match inject_headers(&shared, &rule, request.headers(), &mut decided) {
                Ok(injected) => injected,
                Err((reason, code)) => {
                    tracing::warn!(tenant = %shared.scope.tenant, "egress header cannot be made");
                    shared.record(&decided, Decision::Deny, reason, Some(Blame::Host))?;
                    return Err(code);
                }
            };
            let reason = format!(
                "granted by {}://{}:{}",
                rule.scheme.as_str(),
                rule.host,
                rule.port
            );
            shared.record(&decided, Decision::Allow, reason, None)?;

            let sent = Arc::new(AtomicU64::new(0));
            let closing = Closing {
                audit: Arc::clone(&shared.audit),
                scope: Arc::clone(&shared.scope),
                url: decided.url.clone(),
                started,
                sent: Arc::clone(&sent),
            };
            let tls = (target.scheme == Scheme::Https).then(|| Arc::clone(&shared.tls));
            let exchange = exchange(request, &target, address, &limits, sent, injected, tls);
            let (response, conn) = match tokio::time::timeout_at(deadline, exchange).await {
                Ok(Ok(done)) => done,
                Ok(Err((code, why))) => {
                    closing.record(None, Some(why), 0);
                    return Err(code);
                }
                Err(_) => {
                    closing.record(None, Some("request timed out".into()), 0);
                    return Err(Error::ConnectionReadTimeout);
                }
            };

            let headers = response.headers();
            let header_bytes: usize = headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len())
                .sum();
            let status = response.status().as_u16();
            if headers.len() > limits.max_header_count || header_bytes > limits.max_header_bytes {
                let why = format!(
                    "response headers exceed max_http_header_count ({}) or \
                     max_http_header_bytes ({})",
                    limits.max_header_count, limits.max_header_bytes
                );
                closing.record(Some(status), Some(why), 0);
                return Err(Error::HttpResponseHeaderSectionSize(
                    u32::try_from(header_bytes).ok(),
                ));
            }
            let response = response.map(|inner| {
                ResponseBody {
                    inner,
                    max_bytes: limits.max_response_body_bytes,
                    received: 0,
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                    status,
                    closing: Some(closing),
                }
                .boxed_unsync()
            });
            Ok((response, conn))
        })
    }
}

/// The response head with the future that drives the connection, or the
/// guest's code and the reason for the audit trail.
type Exchanged = Result<
    (
        http::Response<hyper::body::Incoming>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    (Error, String),
>;

/// Connects to `address`, sends `request` rewritten for `target`, and
/// returns the response head with the future that drives the connection.
/// Errors carry the guest's code and the reason for the audit trail.
async fn exchange(
    request: http::Request<WasiBody>,
    target: &Target,
    address: IpAddr,
    limits: &HttpLimits,
    sent: Arc<AtomicU64>,
    injected: Vec<(HeaderName, HeaderValue)>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Exchanged {
    let stream = TcpStream::connect(SocketAddr::new(address, target.port))
        .await
        .map_err(|e| {
            (
                Error::ConnectionRefused,
                format!("connect failed: {}", e.kind()),
            )
        })?;
    match tls {
        None => {
            send(
                TokioIo::new(stream),
                request,
                target,
                limits,
                sent,
                injected,
            )
            .await
        }
        Some(config) => {
            let stream = super::tls::connect(config, target, stream).await?;
            send(
                TokioIo::new(stream),
                request,
                target,
                limits,
                sent,
                injected,
            )
            .await
        }
    }
}

/// Sends `request` rewritten for `target` over the connection `io`.
async fn send<I>(
    io: I,
    request: http::Request<WasiBody>,
    target: &Target,
    limits: &HttpLimits,
    sent: Arc<AtomicU64>,
    injected: Vec<(HeaderName, HeaderValue)>,
) -> Exchanged
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| (Error::HttpProtocolError, format!("handshake failed: {e}")))?;

    // The request line carries the path only, and `Host` the canonical
    // authority: the server sees exactly the spelling that was checked.
    let (mut parts, body) = request.into_parts();
    parts.uri = target.path_with_query().parse().map_err(|_| {
        (
            Error::HttpRequestUriInvalid,
            "path does not parse".to_owned(),
        )
    })?;
    let host = http::HeaderValue::from_str(&target.authority()).map_err(|_| {
        (
            Error::HttpRequestUriInvalid,
            "host does not parse".to_owned(),
        )
    })?;
    parts.headers.insert(http::header::HOST, host);
    // `insert` drops every value of the name the guest had set.
    for (name, value) in injected {
        parts.headers.insert(name, value);
    }
    let body = RequestBody {
        inner: body,
        sent: Arc::clone(&sent),
        max_bytes: limits.max_request_body_bytes,
    };
    let request = http::Request::from_parts(parts, body);

    // hyper's connection future must be polled for the request to make
    // progress; drive both until the response head arrives.
    let mut conn = Box::pin(conn);
    let send = sender.send_request(request);
    tokio::pin!(send);
    let mut conn_done = false;
    let response = loop {
        tokio::select! {
            response = &mut send => break response,
            ended = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = ended {
                    break Err(e);
                }
            }
        }
    };
    let response = response.map_err(|e| {
        let max = limits.max_request_body_bytes;
        if sent.load(std::sync::atomic::Ordering::Relaxed) > max {
            (
                Error::HttpRequestBodySize(Some(max)),
                format!("request body exceeds max_http_request_body_bytes ({max})"),
            )
        } else {
            (Error::HttpProtocolError, format!("request failed: {e}"))
        }
    })?;
    let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async move {
        if !conn_done {
            conn.await.map_err(Error::from)?;
        }
        Ok(())
    });
    Ok((response, io))
}

/// The headers `rule` adds, secrets filled in and marked sensitive (hyper
/// then keeps them out of its debug output), noted in `decided` for the
/// audit event by header and secret names. The error carries the reason to
/// record, which names secrets and headers but never a value, and the code
/// for the guest.
fn inject_headers(
    shared: &Shared,
    rule: &EgressRule,
    guest_headers: &HeaderMap,
    decided: &mut Decided,
) -> Result<Vec<(HeaderName, HeaderValue)>, (String, Error)> {
    let mut out = Vec::with_capacity(rule.headers.len());
    for header in &rule.headers {
        let secrets: Vec<String> = header.secrets().map(str::to_owned).collect();
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
            let reason = format!(
                "granted header name {} does not parse; this is a warden bug, please report it",
                header.name
            );
            (reason, Error::InternalError(None))
        })?;
        let bytes = header.render(&shared.secrets).map_err(|missing| {
            let reason = format!(
                "secret {missing} for header {} is not loaded for this invocation",
                header.name
            );
            (reason, Error::ConfigurationError)
        })?;
        let mut value = HeaderValue::from_bytes(&bytes).map_err(|_| {
            let reason = format!(
                "header {} made from secrets {} holds a character a header value cannot carry; \
                 set the secret again without control characters",
                header.name,
                secrets.join(", ")
            );
            (reason, Error::ConfigurationError)
        })?;
        value.set_sensitive(true);
        decided.injected.push(HeaderInjection {
            header: header.name.clone(),
            secrets,
            replaced: guest_headers.contains_key(&name),
        });
        out.push((name, value));
    }
    Ok(out)
}

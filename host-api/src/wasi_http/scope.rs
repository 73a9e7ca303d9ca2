//! The egress scope decision: may this agent send this request there?
//!
//! Pure functions over strings and addresses, free of wasmtime and HTTP
//! types, so that every rule can be tested on its own. A request is decided
//! in three steps, and the host runs them in this order:
//!
//! 1. [`Target::parse`] turns the guest's scheme, authority and path into
//!    one canonical spelling, or refuses a spelling that different parsers
//!    could read differently;
//! 2. [`HttpGrant::decide`] matches the canonical target and the method
//!    against the grant's [`EgressRule`]s, before any DNS lookup;
//! 3. [`check_address`] refuses each resolved address that lies in a
//!    special-purpose range (loopback, private, link-local, ...) unless the
//!    matching rule names that exact address.
//!
//! Every allow-list bypass seen in the wild comes from a gap between the
//! spelling that was checked and the one that was used. So the canonical
//! form is computed once, by the WHATWG URL parser in the `url` crate, and
//! the host resolves and connects using that form only.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::inject::{HeaderGrantError, InjectedHeader, parse_headers};

/// Longest authority (host and port) accepted from a guest, in bytes. DNS
/// names stop at 253 bytes; the rest leaves room for a port and brackets.
pub const MAX_AUTHORITY_BYTES: usize = 270;
/// Longest path with query accepted from a guest, in bytes.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// What replaces each query value in the URL an audit event records: query
/// values often carry tokens or personal data.
pub const REDACTED: &str = "[redacted]";

/// A URL scheme egress can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP, default port 80.
    Http,
    /// HTTP over TLS, default port 443.
    Https,
}

impl Scheme {
    /// Parses a scheme name; only `http` and `https` exist for egress.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "http" => Some(Self::Http),
            "https" => Some(Self::Https),
            _ => None,
        }
    }

    /// The scheme's name as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// The port used when a URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// A host in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    /// A DNS name: lower-case ASCII (IDNA applied), no trailing dot.
    Name(String),
    /// An IP address. IPv4-mapped IPv6 addresses are stored as IPv4, so that
    /// `::ffff:127.0.0.1` and `127.0.0.1` are one host.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// The host part of an [`EgressRule`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostPattern {
    /// Exactly this host.
    Exact(Host),
    /// Any name made of one more label in front of this suffix:
    /// `*.example.com` is stored as `example.com` and matches
    /// `api.example.com` only, not `example.com` nor `a.b.example.com`.
    Subdomain(String),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(host) => write!(f, "{host}"),
            Self::Subdomain(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// One granted egress destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    /// The scheme requests must use.
    pub scheme: Scheme,
    /// The hosts it covers.
    pub host: HostPattern,
    /// The port requests must use; the scheme's default when the grant
    /// names none.
    pub port: u16,
    /// When set, the request path must equal this prefix or lie under it on
    /// whole `/` segments. Canonical: starts with `/`, no trailing `/`
    /// except for the root.
    pub path_prefix: Option<String>,
    /// When set, the upper-case methods allowed; `None` allows any method.
    pub methods: Option<Vec<String>>,
    /// Headers the host adds to every request this rule allows, secrets
    /// filled in, replacing any of the same name the guest set. Left out of
    /// the serialized grant when empty, so that older grants keep their
    /// digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<InjectedHeader>,
}

/// The HTTP egress part of an agent's grant. An empty grant allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpGrant {
    /// Granted destinations, in manifest order.
    pub rules: Vec<EgressRule>,
}

/// Why a grant entry is not valid.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GrantError {
    /// The scheme is neither `http` nor `https`.
    #[error("scheme {0:?} is not supported; use \"http\" or \"https\"")]
    Scheme(String),
    /// `*` alone, or a wildcard that is not one leading `*.` label.
    #[error(
        "host {0:?} is too broad or a misplaced wildcard; name a host or use \"*.\" followed by a \
         domain of at least two labels"
    )]
    Wildcard(String),
    /// The host is not a valid host.
    #[error("host {host:?} is not valid: {reason}")]
    Host {
        /// The host as written.
        host: String,
        /// The rule it breaks.
        reason: Refusal,
    },
    /// Port 0.
    #[error("port 0 is not a port; give 1 to 65535 or leave it out")]
    Port,
    /// The path prefix is not a canonical absolute path.
    #[error(
        "path_prefix {0:?} is not valid; start with '/' and use no '.', '..', empty or \
         percent-encoded segments"
    )]
    PathPrefix(String),
    /// A method is not an HTTP token.
    #[error("method {0:?} is not an HTTP method; use names like \"GET\" or \"POST\"")]
    Method(String),
    /// An empty methods list.
    #[error("methods is empty, which would allow nothing; list methods or leave it out")]
    NoMethods,
    /// A `headers` entry is not valid.
    #[error("{0}")]
    Headers(HeaderGrantError),
}

impl GrantError {
    /// The grant entry's field the error is about, as spelled in manifests.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Scheme(_) => "scheme",
            Self::Wildcard(_) | Self::Host { .. } => "host",
            Self::Port => "port",
            Self::PathPrefix(_) => "path_prefix",
            Self::Method(_) | Self::NoMethods => "methods",
            Self::Headers(_) => "headers",
        }
    }
}

/// Why a request was refused. Each message names the rule, never the
/// host's internals.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Refusal {
    /// The scheme is not `http` or `https`.
    #[error("scheme {0:?} is not supported; use http or https")]
    Scheme(String),
    /// No authority, or one over [`MAX_AUTHORITY_BYTES`].
    #[error("authority is empty or longer than {MAX_AUTHORITY_BYTES} bytes")]
    AuthorityLength,
    /// `user@host`: credentials in a URL, and a classic allow-list bypass.
    #[error("authority contains userinfo ('@'); send credentials in a header")]
    Userinfo,
    /// A character some parsers read as a delimiter and others do not.
    #[error("authority contains {0:?}, which parsers disagree on")]
    AmbiguousCharacter(char),
    /// The URL parser rejected the authority.
    #[error("authority does not parse as a host and port")]
    Malformed,
    /// A name with an empty label, a bad character or over DNS lengths.
    #[error("host name is not a valid DNS name")]
    BadName,
    /// The path is not absolute, has dot or encoded segments, or is too
    /// long.
    #[error("path is not a canonical absolute path")]
    BadPath,
    /// No rule names this host.
    #[error("host {0} is not granted")]
    HostNotGranted(String),
    /// A rule names the host but for another scheme.
    #[error("host {host} is granted for {granted} only, not {asked}")]
    SchemeNotGranted {
        /// The canonical host.
        host: String,
        /// The granted scheme.
        granted: &'static str,
        /// The requested scheme.
        asked: &'static str,
    },
    /// A rule names the host but for another port.
    #[error("port {asked} of host {host} is not granted")]
    PortNotGranted {
        /// The canonical host.
        host: String,
        /// The requested port.
        asked: u16,
    },
    /// A rule names the host but the path is outside its prefix.
    #[error("path is outside the granted prefix {0:?}")]
    PathNotGranted(String),
    /// A rule names the host but not this method.
    #[error("method {0} is not granted for this host")]
    MethodNotGranted(String),
    /// The address is in a special-purpose range the rule does not name.
    #[error("address {address} is {class}, which is refused unless granted by exact address")]
    Address {
        /// The resolved address.
        address: IpAddr,
        /// Which range it is in.
        class: AddressClass,
    },
}

/// A request target in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The scheme.
    pub scheme: Scheme,
    /// The canonical host.
    pub host: Host,
    /// The port, the scheme's default when the guest named none.
    pub port: u16,
    /// The path, starting with `/`.
    pub path: String,
    /// The query without its `?`, when there is one.
    pub query: Option<String>,
}

impl Target {
    /// Canonicalises what a guest asked for: `scheme`, `authority` (host
    /// with optional port) and `path_with_query` (empty means `/`).
    ///
    /// # Errors
    ///
    /// Returns the [`Refusal`] naming the first rule the spelling breaks.
    pub fn parse(scheme: &str, authority: &str, path_with_query: &str) -> Result<Self, Refusal> {
        let scheme = Scheme::parse(scheme).ok_or_else(|| Refusal::Scheme(scheme.to_owned()))?;
        let (host, port) = parse_authority(scheme, authority)?;
        let (path, query) = parse_path(path_with_query)?;
        Ok(Self {
            scheme,
            host,
            port,
            path,
            query,
        })
    }

    /// The URL as recorded in audit events: canonical, with each query value
    /// replaced by [`REDACTED`] and the keys kept.
    pub fn redacted_url(&self) -> String {
        let mut url = format!("{}://{}", self.scheme.as_str(), self.authority());
        url.push_str(&self.path);
        if let Some(query) = &self.query {
            url.push('?');
            url.push_str(&redact_query(query));
        }
        url
    }

    /// `host:port`, with the port left out when it is the scheme's default;
    /// the form to send as the `Host` header.
    pub fn authority(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The path and query as they go on the request line.
    pub fn path_with_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Canonicalises a host and optional port.
fn parse_authority(scheme: Scheme, authority: &str) -> Result<(Host, u16), Refusal> {
    // Length first: a megabyte authority should cost no more than a short
    // one.
    if authority.is_empty() || authority.len() > MAX_AUTHORITY_BYTES {
        return Err(Refusal::AuthorityLength);
    }
    if authority.contains('@') {
        return Err(Refusal::Userinfo);
    }
    // The WHATWG parser treats `\` as `/` in http URLs while RFC 3986
    // parsers keep it in the host; `%` would let `%2e` become a dot after
    // the check; the rest end the authority in one parser and not in
    // another. None belong in a host, so refuse them all rather than pick a
    // reading.
    if let Some(c) = authority
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || "\\%/?#;,\"'<>^`{|}".contains(*c))
    {
        return Err(Refusal::AmbiguousCharacter(c));
    }
    let url = url::Url::parse(&format!("{}://{authority}/", scheme.as_str()))
        .map_err(|_| Refusal::Malformed)?;
    let port = url.port().unwrap_or(scheme.default_port());
    if port == 0 {
        return Err(Refusal::Malformed);
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => Host::Name(canonical_name(name)?),
        Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Host::Ip(canonical_ip(IpAddr::V6(ip))),
        None => return Err(Refusal::Malformed),
    };
    Ok((host, port))
}

/// An IP address with IPv4-mapped IPv6 folded to IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Checks a name the URL parser produced (already lower case and IDNA
/// ASCII) against DNS rules, dropping one trailing dot.
fn canonical_name(name: &str) -> Result<String, Refusal> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Refusal::BadName)
    }
}

/// Splits and checks a path with optional query.
fn parse_path(path_with_query: &str) -> Result<(String, Option<String>), Refusal> {
    if path_with_query.len() > MAX_PATH_BYTES {
        return Err(Refusal::BadPath);
    }
    let (path, query) = match path_with_query.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (path_with_query, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    if !is_canonical_path(path) {
        return Err(Refusal::BadPath);
    }
    let query_ok = query.as_deref().is_none_or(|q| {
        !q.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '#' || c == '\\')
    });
    if !query_ok {
        return Err(Refusal::BadPath);
    }
    Ok((path.to_owned(), query))
}

/// Whether `path` is absolute, printable ASCII and free of segments a
/// server could read as another path: `.`, `..`, empty ones, and any
/// percent-encoded `.`, `/` or `\` (`%2e`, `%2f`, `%5c`).
fn is_canonical_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if !path.bytes().all(|b| b.is_ascii_graphic()) || path.contains(['\\', '#']) {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return false;
    }
    rest.is_empty()
        || rest
            .strip_suffix('/')
            .unwrap_or(rest)
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Whether `path` equals `prefix` or lies under it on whole segments.
fn path_is_under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl EgressRule {
    /// Builds a rule from a grant entry's fields, canonicalising the host
    /// the same way request hosts are.
    ///
    /// # Errors
    ///
    /// Returns the [`GrantError`] naming the field that is wrong.
    pub fn new(
        scheme: &str,
        host: &str,
        port: Option<u16>,
        path_prefix: Option<&str>,
        methods: Option<&[String]>,
    ) -> Result<Self, GrantError> {
        let scheme = Scheme::parse(scheme).ok_or_else(|| GrantError::Scheme(scheme.to_owned()))?;
        if port == Some(0) {
            return Err(GrantError::Port);
        }
        let host = parse_host_pattern(scheme, host)?;
        let path_prefix = match path_prefix {
            None => None,
            Some(p) if is_canonical_path(p) && !p.contains('?') => {
                let trimmed = p.strip_suffix('/').filter(|t| !t.is_empty()).unwrap_or(p);
                Some(trimmed.to_owned())
            }
            Some(p) => return Err(GrantError::PathPrefix(p.to_owned())),
        };
        let methods = match methods {
            None => None,
            Some([]) => return Err(GrantError::NoMethods),
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for m in list {
                    let ok = !m.is_empty()
                        && m.len() <= 32
                        && m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-');
                    if !ok {
                        return Err(GrantError::Method(m.clone()));
                    }
                    let upper = m.to_ascii_uppercase();
                    if !out.contains(&upper) {
                        out.push(upper);
                    }
                }
                Some(out)
            }
        };
        Ok(Self {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
            path_prefix,
            methods,
            headers: Vec::new(),
        })
    }

    /// The rule with `headers` (name, value template) added to the
    /// requests it allows; see the `inject` module for the template form.
    ///
    /// # Errors
    ///
    /// Returns [`GrantError::Headers`] naming the header that is wrong.
    pub fn with_headers(mut self, headers: &[(String, String)]) -> Result<Self, GrantError> {
        self.headers = parse_headers(headers).map_err(GrantError::Headers)?;
        Ok(self)
    }

    /// The names of the secrets this rule's headers use.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().flat_map(InjectedHeader::secrets)
    }

    fn covers_host(&self, host: &Host) -> bool {
        match (&self.host, host) {
            (HostPattern::Exact(granted), host) => granted == host,
            (HostPattern::Subdomain(suffix), Host::Name(name)) => name
                .strip_suffix(suffix.as_str())
                .and_then(|front| front.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            (HostPattern::Subdomain(_), Host::Ip(_)) => false,
        }
    }
}

fn parse_host_pattern(scheme: Scheme, host: &str) -> Result<HostPattern, GrantError> {
    let bad = |reason| GrantError::Host {
        host: host.to_owned(),
        reason,
    };
    if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.contains('*') {
            return Err(GrantError::Wildcard(host.to_owned()));
        }
        let (parsed, _) = parse_authority(scheme, suffix).map_err(bad)?;
        return match parsed {
            // `*.com` would grant a whole top-level domain.
            Host::Name(name) if name.contains('.') => Ok(HostPattern::Subdomain(name)),
            _ => Err(GrantError::Wildcard(host.to_owned())),
        };
    }
    if host.contains('*') {
        return Err(GrantError::Wildcard(host.to_owned()));
    }
    // A grant's host carries no port: `example.com:8080` would otherwise be
    // read as a host with a port and silently drop the port field.
    if host.contains(':') && !host.starts_with('[') {
        return Err(bad(Refusal::Malformed));
    }
    let (parsed, port) = parse_authority(scheme, host).map_err(bad)?;
    if port != scheme.default_port() {
        return Err(bad(Refusal::Malformed));
    }
    Ok(HostPattern::Exact(parsed))
}

impl HttpGrant {
    /// Whether the grant has no rule, and so allows nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides whether `method` may be sent to `target`, before any DNS
    /// lookup. Returns the rule that allows it.
    ///
    /// When rules name the host but refuse the request, the refusal names
    /// the first rule's reason (scheme, port, path or method), so that an
    /// operator sees what to widen.
    ///
    /// # Errors
    ///
    /// Returns the [`Refusal`] to report to the guest and the audit trail.
    pub fn decide(&self, target: &Target, method: &str) -> Result<&EgressRule, Refusal> {
        let mut first_refusal = None;
        for rule in &self.rules {
            if !rule.covers_host(&target.host) {
                continue;
            }
            let refusal = if rule.scheme != target.scheme {
                Refusal::SchemeNotGranted {
                    host: target.host.to_string(),
                    granted: rule.scheme.as_str(),
                    asked: target.scheme.as_str(),
                }
            } else if rule.port != target.port {
                Refusal::PortNotGranted {
                    host: target.host.to_string(),
                    asked: target.port,
                }
            } else if let Some(prefix) = rule
                .path_prefix
                .as_ref()
                .filter(|p| !path_is_under(&target.path, p))
            {
                Refusal::PathNotGranted(prefix.clone())
            } else if rule
                .methods
                .as_ref()
                .is_some_and(|m| !m.iter().any(|m| m == method))
            {
                Refusal::MethodNotGranted(method.to_owned())
            } else {
                return Ok(rule);
            };
            first_refusal.get_or_insert(refusal);
        }
        Err(first_refusal.unwrap_or_else(|| Refusal::HostNotGranted(target.host.to_string())))
    }
}

/// A special-purpose address range that egress refuses by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// `127.0.0.0/8`, `::1`: this machine.
    Loopback,
    /// RFC 1918, shared (`100.64.0.0/10`), `0.0.0.0/8`, benchmarking,
    /// reserved and documentation ranges, and deprecated site-local IPv6.
    Private,
    /// `169.254.0.0/16` (cloud metadata at `169.254.169.254`),
    /// `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`, and the IPv4 broadcast address.
    Multicast,
    /// `0.0.0.0`, `::`.
    Unspecified,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
        })
    }
}

/// The special-purpose range `ip` lies in, or `None` for a public address.
///
/// IPv6 forms that embed an IPv4 address (mapped `::ffff:0:0/96`,
/// compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are classed
/// by the embedded address, because a router or the kernel may deliver them
/// there.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() {
        Some(AddressClass::Unspecified)
    } else if ip.is_loopback() {
        Some(AddressClass::Loopback)
    } else if ip.is_link_local() {
        Some(AddressClass::LinkLocal)
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some(AddressClass::Multicast)
    } else if ip.is_private()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || ip.is_documentation()
        || a >= 240
    {
        Some(AddressClass::Private)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if seg[..6] == [0; 6] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        return classify_v4(embedded(seg[1], seg[2]));
    }
    match seg[0] {
        s if s & 0xffc0 == 0xfe80 => Some(AddressClass::LinkLocal),
        s if s & 0xffc0 == 0xfec0 => Some(AddressClass::Private),
        s if s & 0xfe00 == 0xfc00 => Some(AddressClass::UniqueLocal),
        s if s & 0xff00 == 0xff00 => Some(AddressClass::Multicast),
        0x2001 if seg[1] == 0x0db8 => Some(AddressClass::Private),
        _ => None,
    }
}

/// Checks one resolved address for a request `rule` allowed: a
/// special-purpose address passes only when the rule names exactly that
/// address.
///
/// # Errors
///
/// Returns [`Refusal::Address`] naming the range.
pub fn check_address(rule: &EgressRule, address: IpAddr) -> Result<(), Refusal> {
    let address = canonical_ip(address);
    match classify(address) {
        None => Ok(()),
        Some(_) if rule.host == HostPattern::Exact(Host::Ip(address)) => Ok(()),
        Some(class) => Err(Refusal::Address { address, class }),
    }
}

/// `query` with every value replaced by the redaction mark, keys kept: query
/// values often carry tokens or personal data, and the audit trail records
/// where a request went, not what it said.
pub fn redact_query(query: &str) -> String {
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) => format!("{key}={REDACTED}"),
            None => pair.to_owned(),
        })
        .collect();
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(scheme: &str, host: &str, port: Option<u16>) -> EgressRule {
        EgressRule::new(scheme, host, port, None, None).unwrap()
    }

    fn grant() -> HttpGrant {
        HttpGrant {
            rules: vec![
                rule("https", "api.example.com", None),
                rule("https", "*.vendor.test", None),
                rule("http", "127.0.0.1", Some(8080)),
                EgressRule::new(
                    "https",
                    "pay.test",
                    None,
                    Some("/v1/charges/"),
                    Some(&["post".to_owned(), "GET".to_owned()]),
                )
                .unwrap(),
                rule("https", "bücher.example", None),
            ],
        }
    }

    /// What a spelling must come to.
    enum Want {
        /// Allowed, with this canonical URL.
        Allow(&'static str),
        /// Refused, with a reason containing this text.
        Deny(&'static str),
    }
    use Want::{Allow, Deny};

    /// Hostile and odd spellings, each checked end to end through
    /// canonicalisation and the grant.
    #[test]
    fn hostile_spellings_are_refused_or_normalised() {
        let g = grant();
        let long = format!("{}.example.com", "a".repeat(300));
        // One case a line reads as a table; rustfmt would spread each over
        // six lines.
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str, Want)] = &[
            // Exact hosts and case.
            ("https", "api.example.com", "/", Allow("https://api.example.com/")),
            ("https", "API.Example.COM", "/x", Allow("https://api.example.com/x")),
            ("https", "api.example.com.", "/", Allow("https://api.example.com/")),
            ("https", "api.example.com..", "/", Deny("not a valid DNS name")),
            ("https", "api.example.com:443", "", Allow("https://api.example.com/")),
            ("https", "api.example.com:0443", "", Allow("https://api.example.com/")),
            // Unicode dots (fullwidth, ideographic, halfwidth) are IDNA
            // mapped to '.', and fullwidth letters to ASCII.
            ("https", "api\u{ff0e}example\u{ff0e}com", "/", Allow("https://api.example.com/")),
            ("https", "api\u{3002}example.com", "/", Allow("https://api.example.com/")),
            ("https", "api\u{ff61}example.com", "/", Allow("https://api.example.com/")),
            ("https", "\u{ff41}pi.example.com", "/", Allow("https://api.example.com/")),
            // IDN to punycode, both spellings one host.
            ("https", "BÜCHER.example", "/", Allow("https://xn--bcher-kva.example/")),
            ("https", "xn--bcher-kva.example", "/", Allow("https://xn--bcher-kva.example/")),
            // Userinfo in every form.
            ("https", "user@api.example.com", "/", Deny("userinfo")),
            ("https", "api.example.com@evil.test", "/", Deny("userinfo")),
            ("https", "user:pw@api.example.com", "/", Deny("userinfo")),
            // Parser differentials.
            ("https", "evil.test\\api.example.com", "/", Deny("'\\\\'")),
            ("https", "api.example.com\\@evil.test", "/", Deny("userinfo")),
            ("https", "api%2eexample.com", "/", Deny("'%'")),
            ("https", "api.example.com%00", "/", Deny("'%'")),
            ("https", "api.example.com ", "/", Deny("' '")),
            ("https", "api.exa\tmple.com", "/", Deny("'\\t'")),
            ("https", "api.example.com\r\nx", "/", Deny("'\\r'")),
            ("https", "api.example.com/x", "/", Deny("'/'")),
            ("https", "api.example.com#", "/", Deny("'#'")),
            ("https", "api.example.com?", "/", Deny("'?'")),
            ("https", "", "/", Deny("authority is empty")),
            ("https", &long, "/", Deny("authority is empty or longer")),
            // IPv4 in decimal, octal, hex and short forms: all 127.0.0.1.
            ("http", "127.0.0.1:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "2130706433:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "0x7f.1:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "017700000001:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "0177.0.0.1:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "127.1:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "0x7f000001:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "127.0.0.1.:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "127.0.0.1", "/", Deny("port 80 of host 127.0.0.1")),
            ("http", "127.0.0.2:8080", "/", Deny("host 127.0.0.2 is not granted")),
            ("http", "256.0.0.1:8080", "/", Deny("does not parse")),
            // IPv6 loopback and IPv4-mapped forms fold to the IPv4 grant
            // or stay refused.
            ("http", "[::ffff:127.0.0.1]:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "[::ffff:7f00:1]:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "[0:0:0:0:0:ffff:127.0.0.1]:8080", "/", Allow("http://127.0.0.1:8080/")),
            ("http", "[::1]:8080", "/", Deny("host [::1] is not granted")),
            ("http", "[0000::1]:8080", "/", Deny("host [::1] is not granted")),
            ("http", "::1:8080", "/", Deny("does not parse")),
            // Cloud metadata in several forms.
            ("http", "169.254.169.254", "/", Deny("host 169.254.169.254 is not granted")),
            ("http", "2852039166", "/", Deny("host 169.254.169.254 is not granted")),
            ("http", "0xa9.0xfe.0xa9.0xfe", "/", Deny("host 169.254.169.254 is not granted")),
            ("http", "0251.0376.0251.0376", "/", Deny("host 169.254.169.254 is not granted")),
            ("http", "169.254.43518", "/", Deny("host 169.254.169.254 is not granted")),
            ("http", "[::ffff:169.254.169.254]", "/", Deny("host 169.254.169.254 is not granted")),
            // Wildcards match one whole label.
            ("https", "api.vendor.test", "/", Allow("https://api.vendor.test/")),
            ("https", "API.VENDOR.TEST.", "/", Allow("https://api.vendor.test/")),
            ("https", "vendor.test", "/", Deny("host vendor.test is not granted")),
            ("https", "a.b.vendor.test", "/", Deny("not granted")),
            ("https", "evilvendor.test", "/", Deny("not granted")),
            ("https", "api.vendor.test.evil.test", "/", Deny("not granted")),
            ("https", "api-vendor.test", "/", Deny("not granted")),
            ("https", "api.example.com.evil.test", "/", Deny("not granted")),
            ("https", "evilapi.example.com", "/", Deny("not granted")),
            // Wrong scheme, wrong port, unknown scheme.
            ("http", "api.example.com", "/", Deny("granted for https only, not http")),
            ("https", "api.example.com:8443", "/", Deny("port 8443")),
            ("https", "api.example.com:65536", "/", Deny("does not parse")),
            ("https", "api.example.com:0", "/", Deny("does not parse")),
            ("ftp", "api.example.com", "/", Deny("scheme \"ftp\"")),
            ("HTTPS", "api.example.com", "/", Deny("scheme \"HTTPS\"")),
            // Paths: prefix on whole segments, no dot or encoded segments.
            ("https", "pay.test", "/v1/charges", Allow("https://pay.test/v1/charges")),
            ("https", "pay.test", "/v1/charges/ch_1", Allow("https://pay.test/v1/charges/ch_1")),
            ("https", "pay.test", "/v1/chargesx", Deny("outside the granted prefix")),
            ("https", "pay.test", "/v1/refunds", Deny("outside the granted prefix")),
            ("https", "pay.test", "/v1/charges/../refunds", Deny("canonical absolute path")),
            ("https", "pay.test", "/v1/charges/%2e%2e/refunds", Deny("canonical absolute path")),
            ("https", "pay.test", "/v1/charges%2f..%2frefunds", Deny("canonical absolute path")),
            ("https", "pay.test", "/v1//charges", Deny("canonical absolute path")),
            ("https", "pay.test", "v1/charges", Deny("canonical absolute path")),
            ("https", "pay.test", "/v1/charges\\x", Deny("canonical absolute path")),
            ("https", "pay.test", "/v1/charges/é", Deny("canonical absolute path")),
            // Query values are redacted, keys kept.
            ("https", "api.example.com", "/q?token=abc&x=1&flag", Allow("https://api.example.com/q?token=[redacted]&x=[redacted]&flag")),
        ];
        assert!(cases.len() >= 30);
        for (scheme, authority, path, want) in cases {
            let got = Target::parse(scheme, authority, path)
                .and_then(|t| g.decide(&t, "GET").map(|_| t.redacted_url()));
            match (want, got) {
                (Allow(url), Ok(got)) => assert_eq!(&got, url, "{scheme} {authority:?} {path:?}"),
                (Deny(text), Err(e)) => assert!(
                    e.to_string().contains(text),
                    "{scheme} {authority:?} {path:?}: {e}"
                ),
                (Allow(_), Err(e)) => panic!("{scheme} {authority:?} {path:?} refused: {e}"),
                (Deny(_), Ok(url)) => panic!("{scheme} {authority:?} {path:?} allowed as {url}"),
            }
        }
    }

    #[test]
    fn methods_are_checked_when_the_rule_lists_them() {
        let g = grant();
        let t = Target::parse("https", "pay.test", "/v1/charges").unwrap();
        for (method, allowed) in [
            ("POST", true),
            ("GET", true),
            ("DELETE", false),
            ("post", false),
        ] {
            assert_eq!(g.decide(&t, method).is_ok(), allowed, "{method}");
        }
        let open = Target::parse("https", "api.example.com", "/").unwrap();
        assert!(g.decide(&open, "DELETE").is_ok());
    }

    #[test]
    fn empty_grant_allows_nothing() {
        let t = Target::parse("https", "api.example.com", "/").unwrap();
        assert_eq!(
            HttpGrant::default().decide(&t, "GET"),
            Err(Refusal::HostNotGranted("api.example.com".into()))
        );
    }

    /// scheme, host, port, path prefix, methods, expected error text.
    type EntryCase<'a> = (
        &'a str,
        &'a str,
        Option<u16>,
        Option<&'a str>,
        Option<&'a [String]>,
        &'a str,
    );

    #[test]
    fn grant_entries_are_validated() {
        #[rustfmt::skip]
        let cases: &[EntryCase<'_>] = &[
            ("https", "*", None, None, None, "too broad"),
            ("https", "*.com", None, None, None, "too broad"),
            ("https", "*.*.example.com", None, None, None, "too broad"),
            ("https", "api.*.com", None, None, None, "misplaced wildcard"),
            ("https", "*api.example.com", None, None, None, "misplaced wildcard"),
            ("https", "*.127.0.0.1", None, None, None, "too broad"),
            ("ftp", "example.com", None, None, None, "scheme \"ftp\""),
            ("https", "user@example.com", None, None, None, "userinfo"),
            ("https", "example.com:8443", None, None, None, "does not parse"),
            ("https", "example.com", Some(0), None, None, "port 0"),
            ("https", "example.com", None, Some("v1"), None, "path_prefix"),
            ("https", "example.com", None, Some("/v1/../x"), None, "path_prefix"),
            ("https", "example.com", None, None, Some(&[]), "methods is empty"),
            ("https", "example.com", None, None, Some(&["GE T".to_owned()]), "not an HTTP method"),
            ("https", "", None, None, None, "not valid"),
        ];
        for (scheme, host, port, prefix, methods, want) in cases {
            let err = EgressRule::new(scheme, host, *port, *prefix, *methods).unwrap_err();
            assert!(err.to_string().contains(want), "{host:?}: {err}");
        }
        let r = EgressRule::new("https", "EXAMPLE.com.", None, Some("/v1/"), None).unwrap();
        assert_eq!(r.host, HostPattern::Exact(Host::Name("example.com".into())));
        assert_eq!(r.port, 443);
        assert_eq!(r.path_prefix.as_deref(), Some("/v1"));
        let r = EgressRule::new("http", "[::ffff:10.0.0.1]", Some(81), None, None).unwrap();
        assert_eq!(
            r.host,
            HostPattern::Exact(Host::Ip("10.0.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn special_addresses_are_classified() {
        use AddressClass::*;
        let cases: &[(&str, Option<AddressClass>)] = &[
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("::1", Some(Loopback)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::127.0.0.1", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("100.64.0.1", Some(Private)),
            ("0.1.2.3", Some(Private)),
            ("240.0.0.1", Some(Private)),
            ("64:ff9b::10.0.0.1", Some(Private)),
            ("2002:c0a8:0101::1", Some(Private)),
            ("fec0::1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("224.0.0.1", Some(Multicast)),
            ("255.255.255.255", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("0.0.0.0", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("93.184.216.34", None),
            ("172.32.0.1", None),
            ("2606:4700::1111", None),
            ("64:ff9b::8.8.8.8", None),
        ];
        for (ip, want) in cases {
            assert_eq!(classify(ip.parse().unwrap()), *want, "{ip}");
        }
    }

    #[test]
    fn special_addresses_pass_only_when_granted_by_exact_address() {
        let by_name = rule("https", "api.example.com", None);
        let by_ip = rule("http", "127.0.0.1", Some(8080));
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let private: IpAddr = "10.0.0.5".parse().unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        assert!(check_address(&by_ip, loopback).is_ok());
        assert!(check_address(&by_ip, mapped).is_ok());
        assert!(check_address(&by_name, public).is_ok());
        let err = check_address(&by_name, private).unwrap_err().to_string();
        assert!(err.contains("10.0.0.5 is private"), "{err}");
        let err = check_address(&by_name, mapped).unwrap_err().to_string();
        assert!(err.contains("127.0.0.1 is loopback"), "{err}");
        assert!(check_address(&by_ip, private).is_err());
    }
}

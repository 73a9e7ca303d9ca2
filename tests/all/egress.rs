//! Outbound HTTP through `wasi:http`: a real server on loopback, granted by
//! exact address and port, a resolver the test controls, and a guest that
//! sends whatever the test tells it to.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use serde_json::Value;
use warden_host_api::wasi_http::{LookupFuture, Resolver};
use warden_runtime::{
    Agent, Runtime, TenantId,
    audit::{StreamId, for_each_record},
};

use crate::harness::Env;

/// A tiny HTTP/1.1 server on an ephemeral loopback port. `/redirect`
/// answers 302 to `http://evil.test/steal`; anything else 200 `hello`.
pub(crate) struct Server {
    pub(crate) port: u16,
    connections: Arc<AtomicUsize>,
    pub(crate) requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                c.fetch_add(1, Ordering::SeqCst);
                let r = Arc::clone(&r);
                std::thread::spawn(move || serve(stream, &r));
            }
        });
        Self {
            port,
            connections,
            requests,
        }
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Answers one request; the request head is kept for the test to inspect.
fn serve(stream: TcpStream, requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let lower = head.to_ascii_lowercase();
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
    } else if lower.contains("transfer-encoding: chunked") {
        let mut seen = Vec::new();
        let mut byte = [0];
        while !seen.ends_with(b"0\r\n\r\n") {
            if reader.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            seen.push(byte[0]);
        }
    }
    requests.lock().unwrap().push(head.clone());
    let response = if head.starts_with("GET /redirect ") {
        "HTTP/1.1 302 Found\r\nlocation: http://evil.test/steal\r\ncontent-length: 0\r\n\r\n"
    } else {
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    };
    let mut stream = stream;
    let _ = stream.write_all(response.as_bytes());
}

/// Answers every name with the same addresses and counts lookups.
#[derive(Debug)]
struct FixedResolver {
    addresses: Vec<IpAddr>,
    lookups: AtomicUsize,
}

impl Resolver for FixedResolver {
    fn lookup<'a>(&'a self, _name: &'a str) -> LookupFuture<'a> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let addresses = self.addresses.clone();
        Box::pin(async move { Ok(addresses) })
    }
}

struct Egress {
    env: Env,
    runtime: Runtime,
    resolver: Arc<FixedResolver>,
}

impl Egress {
    fn new(addresses: &[&str]) -> Self {
        let env = Env::new();
        let resolver = Arc::new(FixedResolver {
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            lookups: AtomicUsize::new(0),
        });
        let runtime = Runtime::builder(env.data_dir())
            .pool_instances(8)
            .resolver(Arc::clone(&resolver) as Arc<dyn Resolver>)
            .build()
            .unwrap();
        Self {
            env,
            runtime,
            resolver,
        }
    }

    /// The egress guest with `grants`, each a `[[grants.http]]` body.
    fn agent(&self, grants: &[String]) -> Agent {
        let mut text = format!(
            "name = \"egress\"\ncomponent = {:?}\n",
            warden_test_programs::EGRESS
        );
        for grant in grants {
            text += &format!("[[grants.http]]\n{grant}\n");
        }
        let path = self.env.dir.path().join("egress.toml");
        std::fs::write(&path, text).unwrap();
        self.runtime.load_agent(&path).unwrap()
    }

    async fn run(&self, tenant: &str, agent: &Agent, input: &str) -> String {
        // The operator's approval, as `warden agents allow` gives it.
        self.env.allow(tenant, agent.manifest());
        let tenant = TenantId::new(tenant).unwrap();
        let out = self
            .runtime
            .invoke(&tenant, agent, input.as_bytes(), "test")
            .await
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// `tenant`'s http events, of `kind` `http-request` or `http-response`.
    fn http_events(&self, tenant: &str, kind: &str) -> Vec<Value> {
        self.env
            .events(tenant)
            .into_iter()
            .filter(|e| e["body"]["type"] == kind)
            .map(|e| e["body"].clone())
            .collect()
    }
}

fn loopback_grant(port: u16) -> String {
    format!("scheme = \"http\"\nhost = \"127.0.0.1\"\nport = {port}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_loopback_request_succeeds_end_to_end_and_is_audited() {
    let server = Server::start();
    let t = Egress::new(&[]);
    let agent = t.agent(&[loopback_grant(server.port)]);
    let port = server.port;
    // The decimal spelling of 127.0.0.1 reaches the same granted address.
    let out = t
        .run(
            "acme",
            &agent,
            &format!("get http://2130706433:{port}/hello?token=s3cret\n"),
        )
        .await;
    assert!(out.contains("ok status 200 location  body hello"), "{out}");
    let head = server.requests.lock().unwrap()[0].clone();
    assert!(
        head.starts_with("GET /hello?token=s3cret HTTP/1.1"),
        "{head}"
    );
    assert!(head.contains(&format!("host: 127.0.0.1:{port}")), "{head}");

    let requests = t.http_events("acme", "http-request");
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r["decision"], "allow");
    assert_eq!(r["method"], "GET");
    assert_eq!(
        r["url"],
        format!("http://127.0.0.1:{port}/hello?token=[redacted]")
    );
    assert_eq!(r["address"], "127.0.0.1");
    let responses = t.http_events("acme", "http-response");
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0]["status"], 200);
    assert_eq!(responses[0]["response_bytes"], 5);
    let trail = serde_json::to_string(&t.env.events("acme")).unwrap();
    assert!(!trail.contains("s3cret"), "query value leaked: {trail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_request_without_the_grant_is_refused_and_audited() {
    let server = Server::start();
    let t = Egress::new(&[]);
    let agent = t.agent(&[]);
    let url = format!("http://127.0.0.1:{}/hello", server.port);
    let out = t.run("globex", &agent, &format!("get {url}\n")).await;
    assert!(out.contains("err ErrorCode::HttpRequestDenied"), "{out}");
    assert_eq!(server.connections(), 0);

    let requests = t.http_events("globex", "http-request");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["decision"], "deny");
    assert_eq!(requests[0]["blame"], "guest");
    assert_eq!(requests[0]["url"], url);
    assert_eq!(requests[0]["reason"], "host 127.0.0.1 is not granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_name_resolving_to_a_private_address_is_refused_without_connecting() {
    let server = Server::start();
    let port = server.port;
    for addresses in [&["127.0.0.1"][..], &["93.184.216.34", "10.0.0.7"][..]] {
        let t = Egress::new(addresses);
        let agent = t.agent(&[format!(
            "scheme = \"http\"\nhost = \"api.vendor.test\"\nport = {port}\n"
        )]);
        let out = t
            .run(
                "acme",
                &agent,
                &format!("get http://api.vendor.test:{port}/\n"),
            )
            .await;
        assert!(
            out.contains("err ErrorCode::DestinationIpProhibited"),
            "{out}"
        );
        assert_eq!(t.resolver.lookups.load(Ordering::SeqCst), 1);
        let requests = t.http_events("acme", "http-request");
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0]["decision"], "deny");
        let reason = requests[0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("loopback") || reason.contains("private"),
            "{reason}"
        );
    }
    assert_eq!(server.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_a_disallowed_host_is_not_followed_and_the_follow_up_is_refused() {
    let server = Server::start();
    let t = Egress::new(&["93.184.216.34"]);
    let agent = t.agent(&[loopback_grant(server.port)]);
    let input = format!(
        "get http://127.0.0.1:{}/redirect\nget http://evil.test/steal\n",
        server.port
    );
    let out = t.run("acme", &agent, &input).await;
    assert!(
        out.contains("ok status 302 location http://evil.test/steal"),
        "{out}"
    );
    assert!(
        out.contains("get http://evil.test/steal -> err ErrorCode::HttpRequestDenied"),
        "{out}"
    );
    assert_eq!(server.connections(), 1);
    // Refused before any lookup.
    assert_eq!(t.resolver.lookups.load(Ordering::SeqCst), 0);
    let requests = t.http_events("acme", "http-request");
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1]["decision"], "deny");
    assert_eq!(requests[1]["url"], "http://evil.test/steal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_an_error_for_that_request_alone_and_are_audited() {
    let server = Server::start();
    let t = Egress::new(&[]);
    let agent = t.agent(&[loopback_grant(server.port)]);
    let port = server.port;
    let input = format!(
        "raw ftp 127.0.0.1:{port} /\n\
         raw http 127.0.0.1:{port} /a/../b\n\
         raw http user@127.0.0.1:{port} /\n\
         post http://127.0.0.1:{port}/upload 2000000\n\
         control http://127.0.0.1:{port}/\n\
         get http://127.0.0.1:{port}/after\n"
    );
    let out = t.run("acme", &agent, &input).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(
        lines[0].ends_with("err ErrorCode::HttpProtocolError"),
        "{out}"
    );
    assert!(
        lines[1].ends_with("err ErrorCode::HttpRequestUriInvalid"),
        "{out}"
    );
    assert!(
        lines[2].ends_with("err ErrorCode::HttpRequestUriInvalid"),
        "{out}"
    );
    assert!(
        lines[3].contains("err ErrorCode::HttpRequestBodySize"),
        "{out}"
    );
    // wasi:http refuses the header while the guest builds it: nothing is
    // sent and the guest gets header-error.
    assert!(
        lines[4].contains("err header HeaderError::InvalidSyntax"),
        "{out}"
    );
    assert!(
        lines[5].ends_with("ok status 200 location  body hello"),
        "{out}"
    );

    let requests = t.http_events("acme", "http-request");
    let reasons: Vec<&str> = requests
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("scheme \"ftp\""), "{reasons:?}");
    assert!(
        reasons[1].contains("canonical absolute path"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("userinfo"), "{reasons:?}");
    let responses = t.http_events("acme", "http-response");
    assert!(
        responses.iter().any(|r| r["error"]
            .as_str()
            .unwrap_or("")
            .contains("max_http_request_body_bytes")),
        "{responses:?}"
    );
    // The header wasi:http refused while the guest built it is one event.
    let refused: Vec<Value> = t
        .env
        .events("acme")
        .into_iter()
        .filter(|e| e["body"]["interface"] == "wasi:http/types")
        .map(|e| e["body"].clone())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["function"], "fields.append");
    assert_eq!(refused[0]["resource"], "x-note");
    assert_eq!(refused[0]["decision"], "deny");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("control character"),
        "{refused:?}"
    );
    assert!(t.env.verify("acme").status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_importing_wasi_sockets_cannot_open_tcp_or_udp() {
    let server = Server::start();
    let t = Egress::new(&[]);
    // Even an http grant for the address does not open raw sockets.
    let agent = t.agent(&[loopback_grant(server.port)]);
    let port = server.port;
    let out = t
        .run("acme", &agent, &format!("tcp {port}\nudp {port}\n"))
        .await;
    assert!(out.contains(&format!("tcp {port} -> err")), "{out}");
    assert!(out.contains(&format!("udp {port} -> err")), "{out}");
    assert!(!out.contains("ok connected"), "{out}");
    assert_eq!(server.connections(), 0);
}

/// Event types in `tenant`'s log as stored on disk now, read directly from
/// the segment files.
fn event_types_on_disk(data_dir: &std::path::Path, tenant: &str) -> Vec<String> {
    let stream = StreamId::Tenant(TenantId::new(tenant).unwrap());
    let mut types = Vec::new();
    // Before the first append there is no log to read.
    let _ = for_each_record(data_dir, &stream, |record, _| {
        let event: Value = serde_json::from_slice(record.event).unwrap();
        types.push(event["body"]["type"].as_str().unwrap_or("").to_owned());
        Ok(())
    });
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_is_on_record_before_it_reaches_the_server() {
    // The server reads the tenant's log the moment a request arrives, while
    // the invocation is still waiting for the answer: the start event and
    // the allowed request must already be on disk. An invocation that held
    // its events until it returned would show the server an empty log.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = Egress::new(&[]);
    let agent = t.agent(&[loopback_grant(port)]);
    let data_dir = t.env.data_dir();
    let seen = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let seen = event_types_on_disk(&data_dir, "acme");
        serve(stream, &Mutex::new(Vec::new()));
        seen
    });
    let out = t
        .run("acme", &agent, &format!("get http://127.0.0.1:{port}/\n"))
        .await;
    assert!(out.contains("ok status 200"), "{out}");
    let seen = seen.join().unwrap();
    assert_eq!(seen, ["invocation-start", "http-request"], "{seen:?}");
    // The rest follows by the time the invocation returned.
    let after = event_types_on_disk(&t.env.data_dir(), "acme");
    assert_eq!(
        after,
        [
            "invocation-start",
            "http-request",
            "http-response",
            "invocation-finish"
        ],
        "{after:?}"
    );
}

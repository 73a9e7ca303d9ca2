//! Test guest: sends `wasi:http` requests and tries `wasi:sockets`, and
//! reports each result.
//!
//! The input is one command per line; the output has one line per command,
//! `<command> -> <result>`, and the script goes on after an error. Commands:
//!
//! - `get URL`, `post URL SIZE` (a body of SIZE bytes): a request with the
//!   standard outgoing handler; the result is `status N location L body B`
//!   or `err CODE`;
//! - `raw SCHEME AUTHORITY PATH`: a GET with those parts set as given;
//! - `control URL`: a GET with a header value holding a control character;
//! - `tcp PORT`, `udp PORT`: open a socket to 127.0.0.1:PORT.
//!
//! Grant: whatever the test gives it; it asks for nothing by itself.

use warden_guest_sdk::{Agent, Error, export_agent};
use wasi::{
    http::{
        outgoing_handler,
        types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme},
    },
    io::streams::StreamError,
    sockets::{
        instance_network::instance_network,
        network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress},
        tcp_create_socket::create_tcp_socket,
        udp_create_socket::create_udp_socket,
    },
};

struct Egress;

/// Splits `scheme://authority/path` without judging it: the host does that.
fn split(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (scheme.to_owned(), authority.to_owned(), path.to_owned())
}

fn request(
    method: &Method,
    (scheme, authority, path): (String, String, String),
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<String, String> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value)
            .map_err(|e| format!("header {e:?}"))?;
    }
    let req = OutgoingRequest::new(fields);
    req.set_method(method).map_err(|()| "method".to_owned())?;
    let scheme = match scheme.as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    req.set_scheme(Some(&scheme))
        .map_err(|()| "scheme refused".to_owned())?;
    req.set_authority(Some(&authority))
        .map_err(|()| "authority refused".to_owned())?;
    req.set_path_with_query(Some(&path))
        .map_err(|()| "path refused".to_owned())?;
    let out = req.body().map_err(|()| "body".to_owned())?;
    let pending = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    {
        let stream = out.write().map_err(|()| "write".to_owned())?;
        for chunk in body.chunks(4096) {
            if let Err(e) = stream.blocking_write_and_flush(chunk) {
                // The host cut the body; the request's own result says why.
                let _ = e;
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(out, None);
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "taken")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default();
    let incoming = response.consume().map_err(|()| "consume")?;
    let stream = incoming.stream().map_err(|()| "stream")?;
    let mut text = Vec::new();
    loop {
        match stream.blocking_read(4096) {
            Ok(bytes) => text.extend(bytes),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("body: {}", e.to_debug_string()));
            }
        }
    }
    Ok(format!(
        "status {status} location {location} body {}",
        String::from_utf8_lossy(&text)
    ))
}

fn socket(kind: &str, port: u16) -> String {
    let address = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    let network = instance_network();
    let result = if kind == "tcp" {
        create_tcp_socket(IpAddressFamily::Ipv4).and_then(|s| {
            s.start_connect(&network, address)?;
            s.subscribe().block();
            s.finish_connect().map(|_| ())
        })
    } else {
        create_udp_socket(IpAddressFamily::Ipv4).and_then(|s| {
            s.start_bind(&network, address)?;
            s.subscribe().block();
            s.finish_bind()
        })
    };
    match result {
        Ok(()) => "ok connected".to_owned(),
        Err(e) => format!("err {e:?}"),
    }
}

fn run(words: &[&str]) -> Result<String, Error> {
    let arg = |n: usize| words.get(n).copied().unwrap_or("");
    let result = match arg(0) {
        "get" => request(&Method::Get, split(arg(1)), &[], b""),
        "post" => {
            let size = arg(2).parse().unwrap_or(0);
            request(&Method::Post, split(arg(1)), &[], &vec![b'x'; size])
        }
        "raw" => {
            let parts = (arg(1).to_owned(), arg(2).to_owned(), arg(3).to_owned());
            request(&Method::Get, parts, &[], b"")
        }
        "control" => request(&Method::Get, split(arg(1)), &[("x-note", b"a\r\nb")], b""),
        "tcp" | "udp" => return Ok(socket(arg(0), arg(1).parse().unwrap_or(0))),
        _ => {
            return Err(Error::InvalidInput(format!(
                "unknown command: {}",
                words.join(" ")
            )));
        }
    };
    Ok(match result {
        Ok(text) => format!("ok {text}"),
        Err(e) => format!("err {e}"),
    })
}

impl Agent for Egress {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let input = String::from_utf8(input)
            .map_err(|_| Error::InvalidInput("input is not UTF-8".into()))?;
        let mut out = String::new();
        for line in input.lines().filter(|l| !l.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            out += &format!("{line} -> {}\n", run(&words)?);
        }
        Ok(out.into_bytes())
    }
}

export_agent!(Egress);

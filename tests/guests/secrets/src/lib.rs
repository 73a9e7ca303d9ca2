//! Test guest: reads secrets and sends requests whose headers the host
//! fills in, and reports each result.
//!
//! The input is one command per line; the output has one line per command,
//! `<command> -> <result>`, and the script goes on after an error.
//! Commands:
//!
//! - `reveal NAME`: `secrets.reveal`; the result is `ok VALUE` or
//!   `err <kind>: <message>`;
//! - `send URL`: a GET through `wasi:http` that sets its own
//!   `authorization: guest-token`, then reports the status and the
//!   request headers the guest can still read from its side;
//! - `headers N URL`: a GET with N extra headers (`x-h0` ...);
//! - `big-header SIZE URL`: a GET with one header of SIZE bytes.
//!
//! Grant: whatever the test gives it; it asks for nothing by itself.

use warden_guest_sdk::{Agent, Error, export_agent, secrets};
use wasi::{
    http::{
        outgoing_handler,
        types::{Fields, Method, OutgoingRequest, Scheme},
    },
    io::streams::StreamError,
};

struct Secrets;

fn secrets_err(e: &secrets::Error) -> String {
    match e {
        secrets::Error::NotPermitted(m) => format!("err not-permitted: {m}"),
        secrets::Error::NotFound => "err not-found".to_owned(),
        secrets::Error::LimitReached(m) => format!("err limit-reached: {m}"),
        secrets::Error::Other(m) => format!("err other: {m}"),
    }
}

/// Sends a GET to `url` with `headers`; reports the status, the body, and
/// what the guest's own header fields hold after the request went out.
fn get(url: &str, headers: &[(String, Vec<u8>)]) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value)
            .map_err(|e| format!("header {name}: {e:?}"))?;
    }
    let req = OutgoingRequest::new(fields);
    req.set_method(&Method::Get).map_err(|()| "method")?;
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    req.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
    req.set_authority(Some(authority))
        .map_err(|()| "authority")?;
    req.set_path_with_query(Some(path)).map_err(|()| "path")?;
    let seen: Vec<String> = req
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v)))
        .collect();
    let pending = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "taken")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| "consume")?;
    let stream = incoming.stream().map_err(|()| "stream")?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(4096) {
            Ok(bytes) => body.extend(bytes),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("body: {}", e.to_debug_string()));
            }
        }
    }
    Ok(format!(
        "status {status} body {} guest-headers [{}]",
        String::from_utf8_lossy(&body),
        seen.join(" ")
    ))
}

fn run(words: &[&str]) -> String {
    let arg = |n: usize| words.get(n).copied().unwrap_or("");
    let result = match arg(0) {
        "reveal" => {
            return match secrets::reveal(arg(1)) {
                Ok(v) => format!("ok {}", String::from_utf8_lossy(&v)),
                Err(e) => secrets_err(&e),
            };
        }
        "send" => get(
            arg(1),
            &[("authorization".to_owned(), b"guest-token".to_vec())],
        ),
        "headers" => {
            let n: usize = arg(1).parse().unwrap_or(0);
            let headers: Vec<_> = (0..n).map(|i| (format!("x-h{i}"), b"v".to_vec())).collect();
            get(arg(2), &headers)
        }
        "big-header" => {
            let size: usize = arg(1).parse().unwrap_or(0);
            get(arg(2), &[("x-big".to_owned(), vec![b'v'; size])])
        }
        other => Err(format!("unknown command {other}")),
    };
    match result {
        Ok(text) => format!("ok {text}"),
        Err(e) => format!("err {e}"),
    }
}

impl Agent for Secrets {
    fn handle(input: Vec<u8>) -> Result<Vec<u8>, Error> {
        let input = String::from_utf8(input)
            .map_err(|_| Error::InvalidInput("input is not UTF-8".into()))?;
        let mut out = String::new();
        for line in input.lines().filter(|l| !l.trim().is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            out += &format!("{line} -> {}\n", run(&words));
        }
        Ok(out.into_bytes())
    }
}

export_agent!(Secrets);

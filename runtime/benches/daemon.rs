//! Load on the daemon: 1,000 invocations from 50 concurrent clients across
//! 10 tenants, through the real `warden serve` over loopback HTTP.
//!
//! Each client keeps one connection and invokes the trivial agent (one put,
//! one get) of its tenant synchronously, 20 times. Every invocation must
//! succeed. Printed: p50 and p99 latency seen by the clients, throughput,
//! and the daemon's resident memory (VmRSS) after warm-up and after the
//! load. Audit events are synced as in production.
//!
//! Run with `cargo bench -p warden-runtime --bench daemon`.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    time::Instant,
};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1::SendRequest, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::Digest as _;

const TENANTS: usize = 10;
const CLIENTS: usize = 50;
const INVOCATIONS: usize = 1000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let warden = env!("CARGO_BIN_EXE_warden");
    let out = Command::new(warden)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "token",
            "create",
            "--actor",
            "bench",
            "--role",
            "platform-admin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n").unwrap();
    let mut child = Command::new(warden)
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    let pid = child.id();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let component = std::fs::read(warden_test_programs::BENCH_TRIVIAL).unwrap();
    let manifest = "name = \"trivial\"\ncomponent = \"trivial.wasm\"\n[[grants.records]]\nprefix = \
                    \"bench/\"\naccess = \"read-write\"\n";
    rt.block_on(async {
        let mut admin = connect(addr).await;
        for t in 0..TENANTS {
            let (s, b) = call(
                &mut admin,
                "POST",
                "/v1/tenants",
                &token,
                json!({ "id": format!("t{t}") }),
            )
            .await;
            assert_eq!(s, 201, "{b}");
            let body = json!({
                "manifest": manifest,
                "component_base64": base64::engine::general_purpose::STANDARD.encode(&component),
                "sha256": hex::encode(sha2::Sha256::digest(&component)),
            });
            let (s, b) = call(
                &mut admin,
                "POST",
                &format!("/v1/tenants/t{t}/agents"),
                &token,
                body,
            )
            .await;
            assert_eq!(s, 201, "{b}");
            // Warm-up: the tenant's log and state are open before measuring.
            let (s, b) = call(
                &mut admin,
                "POST",
                &format!("/v1/tenants/t{t}/agents/trivial/invoke"),
                &token,
                json!({ "input": "warm" }),
            )
            .await;
            assert_eq!(s, 200, "{b}");
        }
    });
    let rss_before = rss_kib(pid);

    let started = Instant::now();
    let latencies = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = connect(addr).await;
                let path = format!("/v1/tenants/t{}/agents/trivial/invoke", c % TENANTS);
                let mut took = Vec::new();
                for i in 0..INVOCATIONS / CLIENTS {
                    let t = Instant::now();
                    let (s, b) = call(
                        &mut conn,
                        "POST",
                        &path,
                        &token,
                        json!({ "input": format!("c{c}-{i}") }),
                    )
                    .await;
                    took.push(t.elapsed());
                    assert_eq!(s, 200, "{b}");
                    assert_eq!(b["status"], "succeeded", "{b}");
                }
                took
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    let rss_after = rss_kib(pid);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();

    let mut sorted = latencies;
    sorted.sort();
    assert_eq!(sorted.len(), INVOCATIONS, "every invocation answered");
    let p = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    println!(
        "daemon: {INVOCATIONS} invocations, {CLIENTS} clients, {TENANTS} tenants, all succeeded \
         in {:.2} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        INVOCATIONS as f64 / elapsed.as_secs_f64()
    );
    println!("daemon: latency p50 {:?}, p99 {:?}", p(0.50), p(0.99));
    println!("daemon: RSS before {rss_before} KiB, after {rss_after} KiB");
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn call(
    conn: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    conn.ready().await.unwrap();
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "bench")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = conn.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The process's resident set size, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

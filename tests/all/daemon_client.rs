//! A real `warden serve` on a loopback port and a real HTTP client (hyper)
//! talking to it, shared by the daemon tests.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, ChildStdout, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::harness::{Env, stderr, stdout};

/// A running daemon; stopped (SIGTERM, then killed) when dropped.
pub(crate) struct Daemon {
    pub(crate) env: Env,
    child: Option<Child>,
    _stdout: BufReader<ChildStdout>,
    pub(crate) addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    /// A platform-admin token made with `warden token create` before start.
    pub(crate) admin: String,
}

/// An answer: status and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl Daemon {
    /// Starts a daemon on a fresh data directory with `config` appended to
    /// a config that listens on a free loopback port.
    pub(crate) fn start(config: &str) -> Self {
        let env = Env::new();
        Self::start_in(env, config)
    }

    pub(crate) fn start_in(env: Env, config: &str) -> Self {
        let admin = token_cli(&env, &["--actor", "root", "--role", "platform-admin"]);
        let path = env.dir.path().join("serve.toml");
        std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{config}")).unwrap();
        let mut child = env
            .warden()
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start warden serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line)
            .expect("cannot read the daemon's stdout");
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from warden serve: {line:?}"))
            .parse()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let daemon = Self {
            env,
            child: Some(child),
            _stdout: out,
            addr,
            rt,
            admin,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if daemon.get("/readyz", None).status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "daemon never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// Sends a request; `body` is sent as is.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let addr = self.addr;
        let (status, bytes) = self.rt.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, addr.to_string())
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(token) = token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let resp = sender
                .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, bytes)
        });
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// GETs `path` as the platform admin and returns the body as text.
    pub(crate) fn send_text(&self, path: &str) -> String {
        let addr = self.addr;
        let path = path.to_owned();
        let token = self.admin.clone();
        self.rt.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::builder()
                .uri(path)
                .header(header::HOST, addr.to_string())
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send("GET", path, token, Vec::new())
    }

    pub(crate) fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send("POST", path, token, body.to_string().into_bytes())
    }

    pub(crate) fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send("PUT", path, token, body.to_string().into_bytes())
    }

    pub(crate) fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.send("DELETE", path, token, Vec::new())
    }

    /// Creates `tenant` as the platform admin.
    pub(crate) fn create_tenant(&self, tenant: &str) {
        let a = self.post("/v1/tenants", Some(&self.admin), &json!({ "id": tenant }));
        assert_eq!(a.status, 201, "{a:?}");
    }

    /// Makes a token over the API as the platform admin.
    pub(crate) fn token(&self, actor: &str, role: &str, tenant: Option<&str>) -> String {
        let a = self.post(
            "/v1/tokens",
            Some(&self.admin),
            &json!({ "actor": actor, "role": role, "tenant": tenant }),
        );
        assert_eq!(a.status, 201, "{a:?}");
        a.body["token"].as_str().unwrap().to_owned()
    }

    /// Deploys `component` with `manifest` text to `tenant` as `token`.
    pub(crate) fn deploy(
        &self,
        token: &str,
        tenant: &str,
        manifest: &str,
        component: &str,
    ) -> Answer {
        self.post(
            &format!("/v1/tenants/{tenant}/agents"),
            Some(token),
            &deploy_body(manifest, &std::fs::read(component).unwrap()),
        )
    }

    /// Stops the daemon with SIGTERM and waits for it to exit.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        signal(&child, "TERM");
        child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The JSON body of a deployment.
pub(crate) fn deploy_body(manifest: &str, component: &[u8]) -> Value {
    json!({
        "manifest": manifest,
        "component_base64": base64::engine::general_purpose::STANDARD.encode(component),
        "sha256": sha256_hex(component),
    })
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `warden token create ARGS` before the daemon starts; returns the secret.
pub(crate) fn token_cli(env: &Env, args: &[&str]) -> String {
    let out = env
        .warden()
        .args(["token", "create"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token create failed: {}",
        stderr(&out)
    );
    stdout(&out).trim().to_owned()
}

/// A manifest naming `name` with no grants (the daemon stores the
/// component itself, whatever `component` says).
pub(crate) fn manifest(name: &str) -> String {
    format!("name = {name:?}\ncomponent = \"ignored.wasm\"\n")
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

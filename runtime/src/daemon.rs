//! `warden serve`: the operator daemon, an authenticated HTTP API over the
//! same operations as the command line.
//!
//! The pieces:
//!
//! - [`config`]: the daemon's config file (listen address, data directory,
//!   shutdown deadline, body limit);
//! - [`roles`]: roles, operations and the one authorization decision;
//! - [`tokens`]: bearer tokens stored as hashes, shared with
//!   `warden token`;
//! - [`control`]: the control-plane event every request leaves;
//! - [`agents`]: deployed agents, admitted by digest;
//! - [`runs`]: invocations kept for polling;
//! - [`approvals`]: agents' approval requests waiting for a person;
//! - [`metrics`]: Prometheus metrics per tenant;
//! - [`api`]: routes and handlers; [`openapi`]: the generated description.
//!
//! Lifecycle: the runtime is built, the listener bound (its address printed
//! on stdout as `listening on http://ADDR`), and requests served until
//! SIGINT or SIGTERM. Then `/readyz` turns 503, no new connection is
//! accepted, running requests and runs get the shutdown deadline to finish,
//! and a final checkpoint is signed for every open audit stream.

pub(crate) mod agents;
pub(crate) mod api;
pub(crate) mod approvals;
pub(crate) mod config;
pub(crate) mod control;
pub(crate) mod metrics;
pub(crate) mod openapi;
pub(crate) mod roles;
pub(crate) mod runs;
pub(crate) mod tokens;

use std::{
    io::Write as _,
    path::Path,
    sync::{Arc, atomic::Ordering},
};

use anyhow::Context;
use warden_runtime::Runtime;

use config::ServeConfig;

/// Runs the daemon until a signal and a graceful shutdown.
///
/// # Errors
///
/// Fails when the runtime cannot be built, the token store opened or the
/// address bound.
pub(crate) fn serve(config: &ServeConfig, data_dir: &Path) -> anyhow::Result<()> {
    let approvals = Arc::new(approvals::Approvals::default());
    let runtime = Arc::new(
        Runtime::builder(data_dir)
            .approver(Arc::clone(&approvals) as _)
            .build()?,
    );
    // Held from the start: every approval, config and secret change goes
    // through this daemon from now on, which lets it keep approvals in
    // memory (see `ControlPlane::allowed_grant_digest`).
    runtime.audit_logs().control().context(
        "cannot open the control-plane audit stream; is another warden daemon or command using \
         this data directory?",
    )?;
    let tokens = tokens::TokenStore::open(data_dir)?;
    let state = Arc::new(api::AppState::new(
        Arc::clone(&runtime),
        approvals,
        tokens,
        config.max_runs,
    ));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(run(config, Arc::clone(&state)))?;
    // Runs cut off by the deadline end with the runtime; their streams get
    // the checkpoint below, and their unfinished invocations show as a
    // start without a finish.
    tokio.shutdown_timeout(std::time::Duration::from_secs(1));
    runtime.audit_logs().tick();
    tracing::info!("final audit checkpoints signed; daemon stopped");
    Ok(())
}

async fn run(config: &ServeConfig, state: api::Shared) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another daemon running?",
                config.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(%addr, "listening");
    // The one line a supervisor or a test waits for.
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    drop(out);

    let max_body = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
    let app = api::router(Arc::clone(&state), max_body);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signalled = Arc::clone(&state);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        signalled.ready.store(false, Ordering::Relaxed);
        tracing::info!("shutting down: no new connections, running requests may finish");
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(async move { server.await });

    let mut stop_rx = stop_rx;
    let _ = stop_rx.wait_for(|stop| *stop).await;
    let drained = tokio::time::timeout(config.shutdown_deadline, async {
        let _ = server.await;
        state.runs.idle().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            deadline = %humantime::format_duration(config.shutdown_deadline),
            "shutdown deadline passed with requests or runs still going; stopping them"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

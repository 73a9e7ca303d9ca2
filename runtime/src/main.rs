//! The `warden` command: run agents for tenants and inspect audit trails.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use warden_runtime::{InvocationLimits, InvokeError, Runtime, TenantId, audit::StreamId};

mod audit_cmd;
mod show;

/// Run AI agents as WebAssembly components, one tenant at a time, with every
/// capability call checked and audited.
#[derive(Debug, Parser)]
#[command(name = "warden", version)]
struct Cli {
    /// Directory holding the state database and audit logs.
    #[arg(
        long,
        global = true,
        env = "WARDEN_DATA_DIR",
        default_value = ".warden"
    )]
    data_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent once for a tenant and print its output.
    Run {
        /// The agent's manifest (agent.toml).
        manifest: PathBuf,
        /// The tenant to run for.
        #[arg(long)]
        tenant: String,
        /// File holding the input, or `-` for stdin.
        #[arg(long)]
        input: String,
        /// Who is running it, for the audit trail; defaults to the OS user.
        #[arg(long)]
        actor: Option<String>,
        /// Wall-clock deadline for the run, for example `500ms` or `30s`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        timeout: Duration,
    },
    /// Read and check audit trails.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print a stream's audit events.
    ///
    /// The read is recorded in the control-plane stream, naming --actor.
    Show {
        #[command(flatten)]
        stream: StreamArgs,
        /// Print the stored JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Check a stream against its signed checkpoints.
    ///
    /// Recomputes the Merkle tree from the stored events, checks every
    /// signature, and names the first event, file or checkpoint at fault.
    Verify {
        #[command(flatten)]
        stream: StreamArgs,
        /// A checkpoint saved earlier (from `warden audit checkpoint`): the
        /// log must extend it.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The public key to check signatures with (from `warden audit
        /// public-key`); default: the key file in the data directory, which
        /// whoever can rewrite the log can rewrite too.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Print a signed checkpoint of everything recorded so far.
    ///
    /// Signs a new one unless the latest already covers every event, and
    /// prints it as one JSON line; store it where this host cannot rewrite
    /// it.
    Checkpoint {
        #[command(flatten)]
        stream: StreamArgs,
    },
    /// Print an inclusion or consistency proof.
    ///
    /// Proves one event (--event) or an older tree size (--old-size)
    /// against the latest checkpoint.
    Prove {
        #[command(flatten)]
        stream: StreamArgs,
        /// The event to prove, by sequence number.
        #[arg(
            long,
            value_name = "SEQ",
            required_unless_present = "old_size",
            conflicts_with = "old_size"
        )]
        event: Option<u64>,
        /// Prove that the log extends the tree of its first N events.
        #[arg(long, value_name = "N")]
        old_size: Option<u64>,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Export a time range with its checkpoint and proofs.
    ///
    /// An auditor verifies the excerpt alone with `verify-export`.
    Export {
        #[command(flatten)]
        stream: StreamArgs,
        /// Start of the range: an RFC 3339 time, a date, or an age such as
        /// `24h` (meaning 24 hours ago).
        #[arg(long)]
        since: String,
        /// End of the range, in the same forms; default: now.
        #[arg(long)]
        until: Option<String>,
        /// A new directory to write events.jsonl, proofs.jsonl and
        /// checkpoint.json into.
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Check an export with nothing but it and the public key.
    VerifyExport {
        /// The export directory.
        dir: PathBuf,
        /// The operator's public key file.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
    /// Print the public key that checks this data directory's checkpoints.
    ///
    /// Makes the key pair if there is none yet.
    PublicKey,
    /// Remove sealed segments older than a retention period.
    ///
    /// Only whole segments whose every event is older go, and a signed
    /// record of the removed range stays, so the rest still verifies.
    Prune {
        #[command(flatten)]
        stream: StreamArgs,
        /// The retention period, for example `90days`.
        #[arg(long, value_parser = humantime::parse_duration)]
        retention: Duration,
    },
}

/// Which stream a command acts on.
#[derive(Debug, clap::Args)]
struct StreamArgs {
    /// The tenant whose stream to use.
    #[arg(long, required_unless_present = "control", conflicts_with = "control")]
    tenant: Option<String>,
    /// Use the control-plane stream (who read or exported which log).
    #[arg(long)]
    control: bool,
}

impl StreamArgs {
    fn stream(&self) -> anyhow::Result<StreamId> {
        match &self.tenant {
            Some(t) => Ok(StreamId::Tenant(TenantId::new(t)?)),
            None => Ok(StreamId::Control),
        }
    }
}

/// Who is acting, for the control-plane stream.
#[derive(Debug, clap::Args)]
struct ActorArg {
    /// Who is reading, for the control-plane audit stream; defaults to the
    /// OS user.
    #[arg(long)]
    actor: Option<String>,
}

impl ActorArg {
    fn name(&self) -> String {
        self.actor.clone().unwrap_or_else(os_user)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain joined with ": ".
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            manifest,
            tenant,
            input,
            actor,
            timeout,
        } => {
            let limits = InvocationLimits {
                timeout,
                ..InvocationLimits::default()
            };
            run(&cli.data_dir, &manifest, &tenant, &input, actor, limits)
        }
        Command::Audit { command } => {
            audit_cmd::dispatch(&cli.data_dir, command)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(
    data_dir: &Path,
    manifest: &Path,
    tenant: &str,
    input: &str,
    actor: Option<String>,
    limits: InvocationLimits,
) -> anyhow::Result<ExitCode> {
    // Everything the operator supplied is checked before anything is
    // written: a bad tenant, input or manifest leaves the data directory as
    // it was.
    let tenant = TenantId::new(tenant)?;
    if limits.timeout.is_zero() {
        bail!("--timeout is zero; give a positive duration such as 10s");
    }
    let input = read_input(input, limits.max_input_bytes)?;
    let runtime = Runtime::builder(data_dir).limits(limits).build()?;
    let agent = runtime.load_agent(manifest)?;
    let actor = actor.unwrap_or_else(os_user);

    match runtime.invoke(&tenant, &agent, &input, &actor) {
        Ok(output) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&output)
                .context("cannot write the output to stdout")?;
            if !output.ends_with(b"\n") {
                out.write_all(b"\n")
                    .context("cannot write the output to stdout")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (InvokeError::InvalidInput { .. } | InvokeError::Failed { .. })) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the input, refusing more than `max` bytes without reading them all.
fn read_input(input: &str, max: usize) -> anyhow::Result<Vec<u8>> {
    let too_big = |size: u64| {
        anyhow::anyhow!("input is {size} bytes, over the maximum of {max}; send a smaller input")
    };
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut buf = Vec::new();
    if input == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
    } else {
        let file = std::fs::File::open(input)
            .with_context(|| format!("cannot read input file {input}; check the path"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > max as u64 {
            return Err(too_big(size));
        }
        file.take(limit)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read input file {input}"))?;
    }
    if buf.len() > max {
        bail!(too_big(buf.len() as u64));
    }
    Ok(buf)
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

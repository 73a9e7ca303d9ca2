//! The `warden` command: run agents for tenants and inspect audit trails.

use std::{
    io::{IsTerminal, Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use warden_host_api::scope::{printable, validate_actor};
use warden_runtime::{
    InvokeError, Runtime, TenantId, audit::StreamId, tenant::limits,
    toml_file::MAX_CONFIG_FILE_BYTES,
};

mod audit_cmd;
mod control_cmd;
mod daemon;
mod prompt;
mod secrets_cmd;
mod show;
mod token_cmd;

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
        /// Meter guest code with fuel, so that the tenant's `max_fuel` ends
        /// the run after a deterministic amount of work.
        #[arg(long)]
        fuel: bool,
        /// PEM file of root certificates https egress trusts besides the
        /// Mozilla roots (a private certificate authority). Certificates
        /// are always verified.
        #[arg(long, value_name = "FILE", env = "WARDEN_TLS_ROOTS")]
        tls_roots: Option<PathBuf>,
    },
    /// Read and check audit trails.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Allow, revoke and list the agents a tenant may run.
    ///
    /// Each change is recorded in the control-plane audit stream with
    /// --actor and the grant digests before and after.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Review grants before deploying an agent.
    Grants {
        #[command(subcommand)]
        command: GrantsCommand,
    },
    /// Set, unset and list the config values an agent of a tenant reads.
    ///
    /// Values are not secrets. Each change is recorded in the control-plane
    /// audit stream with --actor and the digests of the old and new value.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the operator daemon: the authenticated HTTP API.
    ///
    /// Stops on SIGINT or SIGTERM: running requests get the shutdown
    /// deadline to finish, then every audit stream gets a final signed
    /// checkpoint.
    Serve {
        /// The daemon's config file (TOML: listen, data_dir,
        /// shutdown_deadline, max_body_bytes, max_runs); defaults for all
        /// when absent.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Create, list and revoke the daemon's API tokens.
    ///
    /// Works while the daemon is stopped (it holds the control-plane
    /// audit log while it runs); use /v1/tokens then.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print the daemon API's OpenAPI description.
    Openapi,
    /// Manage a tenant's secrets; values are read from stdin only.
    Secrets {
        #[command(subcommand)]
        command: secrets_cmd::SecretsCommand,
    },
}

/// Which tenant's agent a config command acts on.
#[derive(Debug, clap::Args)]
struct ConfigTarget {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// The agent's name, as in its manifest.
    #[arg(long)]
    agent: String,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Set a value; the agent reads it if its grant names the key.
    Set {
        #[command(flatten)]
        target: ConfigTarget,
        /// The key: 1 to 64 of a-z, 0-9, '_', '-' and '.', starting with a letter.
        key: String,
        /// The value: at most 4 KiB of text.
        value: String,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Remove a value.
    Unset {
        #[command(flatten)]
        target: ConfigTarget,
        /// The key.
        key: String,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Print the values set, one `key = value` per line; without
    /// `--agent`, every agent's, one `agent: key = value` per line.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The agent's name, as in its manifest; all agents when left out.
        #[arg(long)]
        agent: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    /// Allow a tenant to run an agent with exactly its manifest's grant.
    ///
    /// A later change of the manifest's grant makes `warden run` refuse the
    /// agent until it is allowed again.
    Allow {
        /// The agent's manifest (agent.toml).
        manifest: PathBuf,
        /// The tenant that may run it.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Stop a tenant from running an agent.
    Revoke {
        /// The agent's name, as in its manifest.
        agent: String,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// List the agents a tenant may run, with their allowed grant digests.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
enum GrantsCommand {
    /// Print a manifest's effective grant in plain words.
    ///
    /// Lists what the agent may read, write and call, and what it may not
    /// do at all, from the validated grant rather than the file's text.
    Show {
        /// The agent's manifest (agent.toml).
        manifest: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token and print its secret, which is shown only this once.
    Create {
        /// The actor the token names in every audit event. The change
        /// itself is recorded as made by the OS user.
        #[arg(long)]
        actor: String,
        /// platform-admin, tenant-admin, auditor or invoker.
        #[arg(long)]
        role: String,
        /// The tenant of a tenant-admin, invoker or one-tenant auditor.
        #[arg(long)]
        tenant: Option<String>,
        /// How long it works, for example `30days`; until revoked when
        /// absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// Revoke a token by id; it stays listed.
    Revoke {
        /// The token id (from `warden token list`).
        id: String,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// List tokens, without their secrets.
    List,
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
    /// Who is acting, for the control-plane audit stream; defaults to the
    /// OS user.
    #[arg(long)]
    actor: Option<String>,
}

impl ActorArg {
    fn name(&self) -> String {
        self.actor.clone().unwrap_or_else(os_user)
    }

    /// The actor, refusing an --actor that is not a valid actor name.
    fn checked(&self) -> anyhow::Result<String> {
        if let Some(actor) = &self.actor {
            validate_actor(actor).map_err(|e| anyhow::anyhow!("--actor: {e}"))?;
        }
        Ok(self.name())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A one-shot command reports its outcome in one line of its own; logs
    // below error level are for RUST_LOG to ask for. The daemon logs its
    // lifecycle at info.
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "error"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain joined with ": ", with any control or
            // invisible characters (from a guest or a file) escaped.
            eprintln!("error: {}", printable(&format!("{e:#}")));
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
            fuel,
            tls_roots,
        } => run(
            &cli.data_dir,
            &manifest,
            &tenant,
            &input,
            actor,
            fuel,
            tls_roots.as_deref(),
        ),
        Command::Audit { command } => {
            audit_cmd::dispatch(&cli.data_dir, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Agents { command } => {
            control_cmd::agents(&cli.data_dir, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Grants { command } => {
            control_cmd::grants(command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command } => {
            control_cmd::config(&cli.data_dir, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { config } => {
            let config = match config {
                Some(path) => daemon::config::ServeConfig::load(&path)?,
                None => daemon::config::ServeConfig::default(),
            };
            let data_dir = config.data_dir.clone().unwrap_or(cli.data_dir);
            daemon::serve(&config, &data_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => {
            token_cmd::dispatch(&cli.data_dir, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            std::io::stdout()
                .write_all(daemon::openapi::json().as_bytes())
                .context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Secrets { command } => {
            secrets_cmd::dispatch(&cli.data_dir, command)?;
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
    fuel: bool,
    tls_roots: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    // Everything the operator supplied is checked before anything is
    // written: a bad tenant, input or manifest leaves the data directory as
    // it was.
    let tenant = TenantId::new(tenant)?;
    let actor = match actor {
        Some(actor) => {
            validate_actor(&actor).map_err(|e| anyhow::anyhow!("--actor: {e}"))?;
            actor
        }
        None => os_user(),
    };
    // The tenant's own max_input_bytes is checked again by the runtime; this
    // bound only keeps a huge file from being read into memory at all.
    let input = read_input(input, limits::MAX_INPUT_BYTES_CEILING)?;
    let mut builder = Runtime::builder(data_dir);
    builder
        .fuel_metering(fuel)
        .approver(std::sync::Arc::new(prompt::TerminalApprover {
            operator: actor.clone(),
        }));
    if let Some(path) = tls_roots {
        let pem = warden_runtime::toml_file::read_bounded(path, MAX_CONFIG_FILE_BYTES)
            .with_context(|| format!("cannot read --tls-roots {}", path.display()))?;
        builder.tls_root_certificates(&pem);
    }
    let runtime = builder.build()?;
    let agent = runtime.load_agent(manifest)?;

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match tokio.block_on(runtime.invoke(&tenant, &agent, &input, &actor)) {
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
            eprintln!("error: {}", printable(&e.to_string()));
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the input, refusing more than `max` bytes without reading them all.
fn read_input(input: &str, max: u64) -> anyhow::Result<Vec<u8>> {
    let too_big = |size: u64| {
        anyhow::anyhow!("input is {size} bytes, over the maximum of {max}; send a smaller input")
    };
    let limit = max.saturating_add(1);
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
        if size > max {
            return Err(too_big(size));
        }
        file.take(limit)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read input file {input}"))?;
    }
    if buf.len() as u64 > max {
        bail!(too_big(buf.len() as u64));
    }
    Ok(buf)
}

/// The OS user, or `unknown` when the environment names none that is a
/// valid actor.
fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| validate_actor(u).is_ok())
        .unwrap_or_else(|| "unknown".into())
}

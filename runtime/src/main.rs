//! The `warden` command: run agents for tenants and inspect audit trails.

use std::{
    io::{IsTerminal, Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use warden_host_api::scope::{printable, validate_actor};
use warden_runtime::{InvokeError, Runtime, TenantId, audit, tenant::limits};

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
        /// Meter guest code with fuel, so that the tenant's `max_fuel` ends
        /// the run after a deterministic amount of work.
        #[arg(long)]
        fuel: bool,
    },
    /// Read and check audit trails.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print a tenant's audit events.
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Print the stored JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Recompute a tenant's hash chain and report the first broken event.
    Verify {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A one-shot command reports its outcome in one line of its own; logs
    // below error level are for RUST_LOG to ask for.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
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
        } => run(&cli.data_dir, &manifest, &tenant, &input, actor, fuel),
        Command::Audit {
            command: AuditCommand::Show { tenant, json },
        } => {
            let tenant = TenantId::new(&tenant)?;
            show::show(&audit::log_path(&cli.data_dir, &tenant), json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify { tenant },
        } => {
            let tenant = TenantId::new(&tenant)?;
            let report = audit::verify(&audit::log_path(&cli.data_dir, &tenant), &tenant)?;
            println!(
                "audit log of tenant {tenant} verified: {} events, head {}",
                report.events,
                hex::encode(report.head)
            );
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
    let runtime = Runtime::builder(data_dir).fuel_metering(fuel).build()?;
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

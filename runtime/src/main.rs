//! The `warden` command: run agents for tenants and inspect audit trails.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use warden_runtime::{InvocationLimits, InvokeError, Runtime, TenantId, audit};

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

//! The daemon's configuration: `warden serve --config <FILE>`.
//!
//! `config/file.rs` parses the TOML form; [`ServeConfig`] is what the daemon
//! uses. Every field is optional and unknown fields are refused.

mod file;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use warden_runtime::toml_file::{MAX_CONFIG_FILE_BYTES, read_bounded};

/// Default listen address: loopback only, so that a daemon started without
/// thought is not reachable from the network.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// Default time running requests and runs get to finish at shutdown: 30 s.
pub(crate) const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
/// Default largest request body: 64 MiB, room for a component in base64.
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Largest `max_body_bytes` accepted: 512 MiB.
pub(crate) const MAX_BODY_BYTES_CEILING: u64 = 512 * 1024 * 1024;
/// Default most runs kept for polling: 10,000. Beyond it the oldest
/// finished run is forgotten (its events stay in the audit log).
pub(crate) const DEFAULT_MAX_RUNS: usize = 10_000;

/// How the daemon listens and where it keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServeConfig {
    /// The address to listen on. Default [`DEFAULT_LISTEN`]; port 0 picks a
    /// free port, printed on stdout once bound.
    pub(crate) listen: SocketAddr,
    /// The data directory; `None` means the one given by `--data-dir` (or
    /// `WARDEN_DATA_DIR`). A relative path is taken from the config file's
    /// directory.
    pub(crate) data_dir: Option<PathBuf>,
    /// How long, after SIGINT or SIGTERM, running requests and runs get to
    /// finish before the final checkpoints are signed and the process exits.
    /// Default [`DEFAULT_SHUTDOWN_DEADLINE`].
    pub(crate) shutdown_deadline: Duration,
    /// Largest request body in bytes; a larger one gets 413. Default
    /// [`DEFAULT_MAX_BODY_BYTES`], at most [`MAX_BODY_BYTES_CEILING`].
    pub(crate) max_body_bytes: u64,
    /// Most runs kept for polling. Default [`DEFAULT_MAX_RUNS`].
    pub(crate) max_runs: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7878))),
            data_dir: None,
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_runs: DEFAULT_MAX_RUNS,
        }
    }
}

impl ServeConfig {
    /// Reads and validates the file at `path`.
    ///
    /// # Errors
    ///
    /// Fails with one line naming the file and the field at fault.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = read_bounded(path, MAX_CONFIG_FILE_BYTES).with_context(|| {
            format!(
                "cannot read daemon config {}; check the path",
                path.display()
            )
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            anyhow::anyhow!("daemon config {}: file is not valid UTF-8", path.display())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(text, base)
            .map_err(|e| anyhow::anyhow!("daemon config {}: {e}", path.display()))
    }

    /// Parses the text of a config file whose directory is `base`.
    pub(crate) fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let parsed = file::parse(text)?;
        let mut config = Self::default();
        if let Some(listen) = parsed.listen {
            config.listen = listen.parse().map_err(|_| {
                format!(
                    "listen {listen:?} is not an address; use IP:PORT, for example {DEFAULT_LISTEN}"
                )
            })?;
        }
        config.data_dir = parsed.data_dir.map(|d| base.join(d));
        if let Some(deadline) = parsed.shutdown_deadline {
            config.shutdown_deadline = humantime::parse_duration(&deadline).map_err(|_| {
                format!("shutdown_deadline {deadline:?} is not a duration; use for example \"30s\"")
            })?;
        }
        if let Some(max) = parsed.max_body_bytes {
            if !(1024..=MAX_BODY_BYTES_CEILING).contains(&max) {
                return Err(format!(
                    "max_body_bytes {max} is outside 1024..={MAX_BODY_BYTES_CEILING}; choose a \
                     value in range"
                ));
            }
            config.max_body_bytes = max;
        }
        if let Some(max) = parsed.max_runs {
            if !(1..=1_000_000).contains(&max) {
                return Err(format!(
                    "max_runs {max} is outside 1..=1000000; choose a value in range"
                ));
            }
            config.max_runs = max;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gets_every_default() {
        let config = ServeConfig::parse("", Path::new("/etc")).unwrap();
        assert_eq!(config, ServeConfig::default());
        assert!(config.listen.ip().is_loopback());
    }

    #[test]
    fn fields_are_read_and_paths_taken_from_the_file() {
        let config = ServeConfig::parse(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\nshutdown_deadline = \"2s\"\n",
            Path::new("/etc/warden"),
        )
        .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(
            config.data_dir.as_deref(),
            Some(Path::new("/etc/warden/data"))
        );
        assert_eq!(config.shutdown_deadline, Duration::from_secs(2));
    }

    #[test]
    fn bad_fields_are_named_on_one_line() {
        let cases = [
            (
                "listen = \"localhost\"\n",
                "listen \"localhost\" is not an address",
            ),
            (
                "shutdown_deadline = \"soon\"\n",
                "shutdown_deadline \"soon\"",
            ),
            ("max_body_bytes = 1\n", "max_body_bytes 1 is outside"),
            ("port = 1\n", "unknown field `port`"),
        ];
        for (text, want) in cases {
            let err = ServeConfig::parse(text, Path::new(".")).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}

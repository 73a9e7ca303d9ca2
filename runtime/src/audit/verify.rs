//! Recomputes a tenant's hash chain and names the first line that breaks it.
//!
//! The verifier trusts nothing in the file: every line is parsed on its own,
//! its sequence number must be the next one, its `prev` must equal the hash
//! of the line before, its `hash` must equal the recomputed chain hash of its
//! event bytes, and its event must belong to the tenant whose log this is.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
};

use thiserror::Error;
use warden_host_api::scope::TenantId;

use super::{StoredLine, chain_hash};

/// A log that verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many events were checked.
    pub events: u64,
    /// Hash of the last event, all zeros for an empty log.
    pub head: [u8; 32],
}

/// Why a log did not verify.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The log file does not exist.
    #[error("no audit log for tenant {tenant} at {path}; has the tenant run anything?")]
    Missing {
        /// The tenant.
        tenant: String,
        /// Where the log was expected.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read audit log {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line breaks the chain.
    #[error("event {seq} (line {line}) {problem}")]
    Broken {
        /// The sequence number that was expected at this line.
        seq: u64,
        /// The 1-based line number in the file.
        line: u64,
        /// What is wrong with it.
        problem: String,
    },
}

/// Verifies `tenant`'s log at `path`.
///
/// # Errors
///
/// Returns [`VerifyError::Broken`] for the first line that is not a valid
/// continuation of the chain, naming its expected sequence number and line.
pub fn verify(path: &Path, tenant: &TenantId) -> Result<VerifyReport, VerifyError> {
    let file = File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            VerifyError::Missing {
                tenant: tenant.to_string(),
                path: path.to_owned(),
            }
        } else {
            VerifyError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let mut reader = BufReader::new(file);
    let mut prev = [0u8; 32];
    let mut buf = Vec::new();
    let mut count = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| VerifyError::Io {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        let expected = count + 1;
        let broken = |problem: String| VerifyError::Broken {
            seq: expected,
            line: expected,
            problem,
        };
        let Some(text) = buf.strip_suffix(b"\n") else {
            return Err(broken("is cut off: the log ends inside this record".into()));
        };
        let line: StoredLine<'_> = serde_json::from_slice(text)
            .map_err(|e| broken(format!("is not a valid audit record: {e}")))?;
        if line.seq != expected {
            return Err(broken(format!(
                "has sequence number {}: an event was removed, duplicated or reordered here",
                line.seq
            )));
        }
        if line.prev != hex::encode(prev) {
            return Err(broken(
                "does not link to the previous event: an event was removed or reordered here"
                    .into(),
            ));
        }
        let hash = chain_hash(&prev, line.seq, line.event.get().as_bytes());
        if line.hash != hex::encode(hash) {
            return Err(broken(
                "does not match its hash: the event was edited".into(),
            ));
        }
        let owner: EventTenant<'_> = serde_json::from_str(line.event.get())
            .map_err(|e| broken(format!("has no tenant field: {e}")))?;
        if owner.tenant != tenant.as_str() {
            return Err(broken(format!(
                "belongs to tenant {:?}, not {tenant}: it was copied from another log",
                owner.tenant
            )));
        }
        prev = hash;
        count = expected;
    }
    Ok(VerifyReport {
        events: count,
        head: prev,
    })
}

#[derive(serde::Deserialize)]
struct EventTenant<'a> {
    #[serde(borrow)]
    tenant: &'a str,
}

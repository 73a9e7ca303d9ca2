//! The tenant scope: who an invocation runs for, bound by the host.
//!
//! A guest never names its tenant. The runtime builds an [`InstanceScope`]
//! when it creates the store for one invocation, and every capability reads
//! the tenant from there. Storage backends take a [`TenantId`] on every call,
//! so that no query can be formed without one.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::{
    secrets::SecretsGrant,
    warden_agent::{ConfigGrant, RecordsGrant},
    wasi_filesystem::FilesGrant,
    wasi_http::HttpGrant,
};

/// Longest tenant id accepted, in bytes.
pub const MAX_TENANT_ID_BYTES: usize = 64;

/// A validated tenant id.
///
/// Tenant ids are 1 to 64 characters of lower-case ASCII letters, digits, `-`
/// and `_`, starting with a letter or digit. The rule keeps ids safe to use
/// as file names and in audit records without escaping: no path separators,
/// no dots, no upper case that could alias another tenant on a
/// case-insensitive file system.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// Why a string is not a valid tenant id.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TenantIdError {
    /// The id was empty.
    #[error("tenant id is empty; use 1 to 64 of a-z, 0-9, '-' and '_'")]
    Empty,
    /// The id was longer than [`MAX_TENANT_ID_BYTES`].
    #[error("tenant id is {0} bytes, over the maximum of {MAX_TENANT_ID_BYTES}; use a shorter id")]
    TooLong(usize),
    /// The id held a character outside the allowed set.
    #[error("tenant id {id:?} contains {ch:?}; use only a-z, 0-9, '-' and '_'")]
    BadCharacter {
        /// The rejected id, shown with escapes.
        id: String,
        /// The first character that is not allowed.
        ch: char,
    },
    /// The id started with `-` or `_`.
    #[error("tenant id {0:?} must start with a letter or digit")]
    BadStart(String),
}

impl TenantId {
    /// Validates `id` as a tenant id.
    ///
    /// # Errors
    ///
    /// Returns [`TenantIdError`] naming the rule `id` breaks.
    pub fn new(id: &str) -> Result<Self, TenantIdError> {
        if id.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if id.len() > MAX_TENANT_ID_BYTES {
            return Err(TenantIdError::TooLong(id.len()));
        }
        if let Some(ch) = id
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(TenantIdError::BadCharacter {
                id: id.to_owned(),
                ch,
            });
        }
        if id.starts_with(['-', '_']) {
            return Err(TenantIdError::BadStart(id.to_owned()));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// Longest actor name accepted, in bytes.
pub const MAX_ACTOR_BYTES: usize = 128;

/// Checks an actor name: who caused an invocation or an operator change.
///
/// Actors are recorded in every event, so they must be short and printable:
/// 1 to [`MAX_ACTOR_BYTES`] bytes, no control, invisible or bidirectional
/// characters (which could make one actor read as another in a report).
///
/// # Errors
///
/// Returns a one-line message naming the rule broken.
pub fn validate_actor(actor: &str) -> Result<(), String> {
    if actor.is_empty() {
        return Err("actor is empty; name who is acting".into());
    }
    if actor.len() > MAX_ACTOR_BYTES {
        return Err(format!(
            "actor is {} bytes, over the maximum of {MAX_ACTOR_BYTES}; use a shorter name",
            actor.len()
        ));
    }
    if actor.chars().any(|c| c.is_control() || is_hidden(c)) {
        return Err(format!(
            "actor {actor:?} contains a control or invisible character; use printable text"
        ));
    }
    Ok(())
}

/// Whether `c` is invisible or reorders text: Unicode format characters
/// (zero-width, bidirectional controls, soft hyphen, byte order mark) and
/// the line and paragraph separators. Two strings differing only in such
/// characters look the same to a person reading a report.
pub fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// `text` with control and hidden characters escaped (`\n`, `\u{202e}`), for
/// printing guest- or operator-supplied text to a terminal or a report where
/// it must not be able to forge a line or hide itself.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A sha256 digest, shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lower-case hex form, 64 characters.
    pub fn to_hex(&self) -> String {
        // Through a stack buffer: `hex::encode` builds the string a char at
        // a time, and every invocation encodes several digests.
        let mut buf = [0u8; 64];
        // 32 bytes always fit 64 hex digits, all ASCII.
        let _ = hex::encode_to_slice(self.0, &mut buf);
        std::str::from_utf8(&buf).unwrap_or_default().to_owned()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

/// Everything that attributes one invocation's events: which tenant, which
/// agent, which exact component and grant, which invocation, and who caused
/// it.
///
/// Built by the runtime when it creates the store; capabilities only read it.
#[derive(Clone, Debug)]
pub struct InstanceScope {
    /// The tenant the invocation runs for.
    pub tenant: TenantId,
    /// The agent's name from its manifest.
    pub agent: String,
    /// sha256 of the component's bytes.
    pub component_digest: Digest,
    /// sha256 of the canonical form of the agent's grant.
    pub grant_digest: Digest,
    /// Unique id of this invocation.
    pub invocation: String,
    /// Who caused the invocation (an operator, a token's actor).
    pub actor: String,
}

/// Everything an agent's manifest grants, one part per capability.
///
/// The serialized form is what the grant digest in every audit event is
/// computed over. The records part is flattened and empty HTTP, config,
/// secrets and files parts are left out, so that a grant written before they
/// existed keeps its digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentGrant {
    /// Key prefixes of `warden:agent/records`.
    #[serde(flatten)]
    pub records: RecordsGrant,
    /// Destinations of `wasi:http` requests.
    #[serde(default, skip_serializing_if = "HttpGrant::is_empty")]
    pub http: HttpGrant,
    /// Keys of `warden:agent/config` the agent may read.
    #[serde(default, skip_serializing_if = "ConfigGrant::is_empty")]
    pub config: ConfigGrant,
    /// Secrets the agent may use; left out when empty, for the same reason.
    #[serde(default, skip_serializing_if = "SecretsGrant::is_empty")]
    pub secrets: SecretsGrant,
    /// Directories reachable through `wasi:filesystem`; left out of the
    /// serialized form when empty, like `http`.
    #[serde(default, skip_serializing_if = "FilesGrant::is_empty")]
    pub files: FilesGrant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_tenant_ids() {
        for id in ["acme", "globex", "a", "t-1", "t_2", "0abc"] {
            assert_eq!(TenantId::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_tenant_ids_that_could_escape_or_alias() {
        let long = "a".repeat(MAX_TENANT_ID_BYTES + 1);
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("../etc", "contains '.'"),
            ("a/b", "contains '/'"),
            ("Acme", "contains 'A'"),
            ("a b", "contains ' '"),
            ("a\0", "contains '\\0'"),
            ("-a", "must start"),
            ("_a", "must start"),
            (&long, "over the maximum"),
            ("acmé", "contains 'é'"),
        ];
        for (id, want) in cases {
            let err = TenantId::new(id).unwrap_err().to_string();
            assert!(err.contains(want), "{id:?}: {err}");
        }
    }

    #[test]
    fn actors_must_be_short_and_printable() {
        assert!(validate_actor("alice@example.com").is_ok());
        for bad in ["", "bob\nroot", "a\u{202e}b", "\u{1}"] {
            assert!(validate_actor(bad).is_err(), "{bad:?}");
        }
        assert!(
            validate_actor(&"a".repeat(MAX_ACTOR_BYTES + 1))
                .unwrap_err()
                .contains("over")
        );
    }

    #[test]
    fn printable_escapes_what_could_forge_a_line() {
        assert_eq!(
            printable("ok\nerror: fake\r\u{1b}[2K"),
            "ok\\nerror: fake\\r\\u{1b}[2K"
        );
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(printable("café"), "café");
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            Digest::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

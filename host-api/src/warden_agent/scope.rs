//! The records scope decision: may this agent touch this key?
//!
//! Pure functions over strings, free of wasmtime types, so that every rule can
//! be tested on its own. A call is decided in two steps: [`validate_key`]
//! rejects keys that could alias or escape (empty or dot segments, control
//! characters, non-NFC text, oversize), then [`RecordsGrant::decide`] matches
//! the key against the granted prefixes on whole `/` segments.

pub mod config;
pub mod fields;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_normalization::is_nfc;

/// Longest key accepted, in bytes.
pub const DEFAULT_MAX_KEY_BYTES: usize = 512;

/// What a grant entry allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// `get` and `list`.
    Read,
    /// `get`, `list`, `put` and `delete`.
    ReadWrite,
}

/// What a records call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Reading: `get`, `list`.
    Read,
    /// Writing: `put`, `delete`.
    Write,
}

/// One granted key prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixGrant {
    /// The prefix in canonical form: a valid key without a trailing `/`.
    pub prefix: String,
    /// What it allows.
    pub access: Access,
    /// When set, the only top-level fields of the JSON objects under the
    /// prefix the agent may see, sorted; only read grants carry it (see
    /// [`fields`]). Absent: the agent sees whole values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// The records part of an agent's grant: a set of key prefixes.
///
/// An empty grant allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsGrant {
    /// Granted prefixes, in manifest order.
    pub prefixes: Vec<PrefixGrant>,
}

/// Why a key or prefix is not valid.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// Empty key.
    #[error("key is empty")]
    Empty,
    /// Longer than the maximum.
    #[error("key is {len} bytes, over the maximum of {max}")]
    TooLong {
        /// The key's length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Holds a control character (including NUL) or an invisible or
    /// bidirectional one.
    #[error("key contains a control or invisible character")]
    ControlCharacter,
    /// Has an empty, `.` or `..` segment.
    #[error("key has an empty, '.' or '..' segment")]
    BadSegment,
    /// Is not in Unicode normalisation form C.
    #[error("key is not in Unicode NFC form")]
    NotNfc,
}

/// Why a records call was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Refusal {
    /// No granted prefix covers the key.
    #[error("no granted prefix covers this key")]
    NoPrefix,
    /// A prefix covers the key but grants read only.
    #[error("prefix {0:?} is granted read-only")]
    ReadOnly(String),
}

/// Checks `key` against the key rules.
///
/// A trailing `/` is allowed when `allow_trailing_slash` is set (list
/// prefixes and grant prefixes) and is not part of the checked segments.
///
/// # Errors
///
/// Returns the first rule `key` breaks.
pub fn validate_key(
    key: &str,
    max_bytes: usize,
    allow_trailing_slash: bool,
) -> Result<(), KeyError> {
    // Length first: every later check walks the string, and a 10 MB key
    // should cost no more than a 1 KB one.
    if key.len() > max_bytes {
        return Err(KeyError::TooLong {
            len: key.len(),
            max: max_bytes,
        });
    }
    let body = match key.strip_suffix('/') {
        Some(stripped) if allow_trailing_slash => stripped,
        _ => key,
    };
    if body.is_empty() {
        return Err(KeyError::Empty);
    }
    // Invisible and bidirectional characters would let two keys that read
    // the same in a report name different records.
    if key
        .chars()
        .any(|c| c.is_control() || crate::scope::is_hidden(c))
    {
        return Err(KeyError::ControlCharacter);
    }
    if body
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(KeyError::BadSegment);
    }
    // Two spellings of one visible key would let an agent write beside a
    // record it may not see; one normal form keeps keys one-to-one.
    if !key.is_ascii() && !is_nfc(key) {
        return Err(KeyError::NotNfc);
    }
    Ok(())
}

/// Canonical form of a valid prefix: without its trailing `/`.
pub fn canonical_prefix(prefix: &str) -> &str {
    prefix.strip_suffix('/').unwrap_or(prefix)
}

/// Whether `key` lies under `prefix` on whole segments: equal to it, or
/// starting with it followed by `/`.
pub fn is_under(key: &str, prefix: &str) -> bool {
    match key.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

impl RecordsGrant {
    /// Decides whether a call needing `need` may touch `key`, which must
    /// already be valid and, for prefixes, canonical.
    ///
    /// Returns the grant prefix that allowed it.
    ///
    /// # Errors
    ///
    /// Returns the [`Refusal`] to report to the guest and the audit trail.
    pub fn decide(&self, key: &str, need: Need) -> Result<&str, Refusal> {
        self.decide_entry(key, need).map(|g| g.prefix.as_str())
    }

    /// Like [`RecordsGrant::decide`], returning the whole grant entry that
    /// allowed the call, so that its field list can be applied.
    ///
    /// # Errors
    ///
    /// Returns the [`Refusal`] to report to the guest and the audit trail.
    pub fn decide_entry(&self, key: &str, need: Need) -> Result<&PrefixGrant, Refusal> {
        let mut read_only = None;
        for grant in &self.prefixes {
            if !is_under(key, &grant.prefix) {
                continue;
            }
            match (grant.access, need) {
                (Access::ReadWrite, _) | (Access::Read, Need::Read) => return Ok(grant),
                (Access::Read, Need::Write) => read_only = Some(grant.prefix.clone()),
            }
        }
        Err(read_only.map_or(Refusal::NoPrefix, Refusal::ReadOnly))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> RecordsGrant {
        RecordsGrant {
            prefixes: vec![
                PrefixGrant {
                    prefix: "a/b".into(),
                    access: Access::Read,
                    fields: None,
                },
                PrefixGrant {
                    prefix: "out".into(),
                    access: Access::ReadWrite,
                    fields: None,
                },
            ],
        }
    }

    #[test]
    fn key_rules_table() {
        let long = "k".repeat(10 * 1024);
        let nfd = "caf\u{0065}\u{0301}";
        let nfc = "caf\u{00e9}";
        let cases: &[(&str, bool, Result<(), KeyError>)] = &[
            ("a/b", false, Ok(())),
            ("a/b/", false, Err(KeyError::BadSegment)),
            ("a/b/", true, Ok(())),
            ("", false, Err(KeyError::Empty)),
            ("/", true, Err(KeyError::Empty)),
            ("a\0b", false, Err(KeyError::ControlCharacter)),
            ("a\nb", false, Err(KeyError::ControlCharacter)),
            ("a/\u{202e}b", false, Err(KeyError::ControlCharacter)),
            ("a/\u{200b}", false, Err(KeyError::ControlCharacter)),
            ("a/\u{2028}", false, Err(KeyError::ControlCharacter)),
            ("a/../b", false, Err(KeyError::BadSegment)),
            ("./a", false, Err(KeyError::BadSegment)),
            ("a//b", false, Err(KeyError::BadSegment)),
            ("/a", false, Err(KeyError::BadSegment)),
            ("..", false, Err(KeyError::BadSegment)),
            (nfc, false, Ok(())),
            (nfd, false, Err(KeyError::NotNfc)),
            (
                &long,
                false,
                Err(KeyError::TooLong {
                    len: 10 * 1024,
                    max: DEFAULT_MAX_KEY_BYTES,
                }),
            ),
        ];
        for (key, slash, want) in cases {
            assert_eq!(
                &validate_key(key, DEFAULT_MAX_KEY_BYTES, *slash),
                want,
                "key {key:?}"
            );
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let g = grant();
        let cases: &[(&str, Need, Result<&str, Refusal>)] = &[
            ("a/b", Need::Read, Ok("a/b")),
            ("a/b/c", Need::Read, Ok("a/b")),
            ("a/bc", Need::Read, Err(Refusal::NoPrefix)),
            ("a", Need::Read, Err(Refusal::NoPrefix)),
            ("a/b/c", Need::Write, Err(Refusal::ReadOnly("a/b".into()))),
            ("out/x", Need::Write, Ok("out")),
            ("outside", Need::Write, Err(Refusal::NoPrefix)),
            ("other", Need::Read, Err(Refusal::NoPrefix)),
        ];
        for (key, need, want) in cases {
            assert_eq!(&g.decide(key, *need), want, "key {key:?} {need:?}");
        }
    }

    #[test]
    fn empty_grant_allows_nothing() {
        let g = RecordsGrant::default();
        assert_eq!(g.decide("a", Need::Read), Err(Refusal::NoPrefix));
    }

    #[test]
    fn canonical_prefix_drops_one_trailing_slash() {
        assert_eq!(canonical_prefix("a/b/"), "a/b");
        assert_eq!(canonical_prefix("a/b"), "a/b");
    }
}

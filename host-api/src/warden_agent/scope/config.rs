//! The config scope decision: may this agent read this config key?
//!
//! Pure functions over strings. [`validate_config_key`] is the one key rule,
//! used for the manifest's grant, for the operator's `warden config set` and
//! for every guest call; [`ConfigGrant::decide`] matches a valid key against
//! the granted names, exactly.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest config key, in bytes.
pub const MAX_CONFIG_KEY_BYTES: usize = 64;
/// Largest config value, in bytes of UTF-8.
pub const MAX_CONFIG_VALUE_BYTES: usize = 4 * 1024;
/// Most config keys one agent may be granted, and most values an operator
/// may set for one agent of one tenant.
pub const MAX_CONFIG_KEYS: usize = 64;
/// Most agents of one tenant that may hold config values at once, so that
/// values set for agents that were never deployed cannot grow without
/// bound.
pub const MAX_CONFIG_AGENTS: usize = 256;

/// Why a config key is not valid.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigKeyError {
    /// Empty key.
    #[error("config key is empty")]
    Empty,
    /// Longer than [`MAX_CONFIG_KEY_BYTES`].
    #[error("config key is {0} bytes, over the maximum of {MAX_CONFIG_KEY_BYTES}")]
    TooLong(usize),
    /// A character outside the allowed set, or a bad first character.
    #[error("config key may hold only a-z, 0-9, '_', '-' and '.', and must start with a letter")]
    BadCharacter,
}

/// Checks `key` against the config key rule: 1 to [`MAX_CONFIG_KEY_BYTES`]
/// bytes of `a-z`, `0-9`, `_`, `-`, `.`, starting with a letter. The set is
/// small on purpose: no case, spaces or Unicode that could make two keys
/// look alike in a report.
///
/// # Errors
///
/// Returns the rule `key` breaks; length is checked first so that a huge
/// key costs no more than a short one.
pub fn validate_config_key(key: &str) -> Result<(), ConfigKeyError> {
    if key.len() > MAX_CONFIG_KEY_BYTES {
        return Err(ConfigKeyError::TooLong(key.len()));
    }
    let Some(first) = key.bytes().next() else {
        return Err(ConfigKeyError::Empty);
    };
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b);
    if !first.is_ascii_lowercase() || !key.bytes().all(allowed) {
        return Err(ConfigKeyError::BadCharacter);
    }
    Ok(())
}

/// The config part of an agent's grant: the keys it may read.
///
/// An empty grant allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigGrant {
    /// Granted keys, valid and sorted, without duplicates.
    pub keys: Vec<String>,
}

impl ConfigGrant {
    /// A grant of `keys`, sorted so that the grant digest does not depend on
    /// the manifest's order.
    pub fn new(mut keys: Vec<String>) -> Self {
        keys.sort();
        keys.dedup();
        Self { keys }
    }

    /// Whether the grant names no key, and so allows nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `key`, already valid, may be read.
    pub fn decide(&self, key: &str) -> bool {
        self.keys.binary_search_by(|k| k.as_str().cmp(key)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_key_rules_table() {
        let long = "k".repeat(MAX_CONFIG_KEY_BYTES + 1);
        let cases: &[(&str, Result<(), ConfigKeyError>)] = &[
            ("currency", Ok(())),
            ("approval.limit_eur-2", Ok(())),
            ("", Err(ConfigKeyError::Empty)),
            ("Currency", Err(ConfigKeyError::BadCharacter)),
            ("1st", Err(ConfigKeyError::BadCharacter)),
            ("a b", Err(ConfigKeyError::BadCharacter)),
            ("a\0", Err(ConfigKeyError::BadCharacter)),
            ("caf\u{e9}", Err(ConfigKeyError::BadCharacter)),
            ("a/b", Err(ConfigKeyError::BadCharacter)),
            (
                &long,
                Err(ConfigKeyError::TooLong(MAX_CONFIG_KEY_BYTES + 1)),
            ),
        ];
        for (key, want) in cases {
            assert_eq!(&validate_config_key(key), want, "key {key:?}");
        }
    }

    #[test]
    fn only_granted_keys_match_exactly() {
        let g = ConfigGrant::new(vec!["currency".into(), "approval_limit".into()]);
        assert!(g.decide("currency"));
        assert!(g.decide("approval_limit"));
        assert!(!g.decide("currenc"));
        assert!(!g.decide("currency.x"));
        assert!(!ConfigGrant::default().decide("currency"));
    }
}

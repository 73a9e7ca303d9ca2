//! Secrets: values the host holds for a tenant and agents refer to by name.
//!
//! An operator stores a tenant's secrets (API keys, tokens) with `warden
//! secrets set`; an agent's manifest grants some of them by name. By
//! default a granted secret never reaches the guest: the host uses it where
//! the grant says, for example in a header it adds to an outbound request
//! (see [`crate::wasi_http`]). Only a grant entry with `reveal = true` lets
//! the guest read the value through `warden:agent/secrets`.
//!
//! This module holds the pure parts, free of wasmtime types:
//!
//! - [`SecretValue`]: a value in host memory, redacted in `Debug` and
//!   zeroed when dropped;
//! - [`TenantSecrets`]: the values one invocation may use, loaded by the
//!   runtime from the invoking tenant's store and nothing else;
//! - [`SecretsGrant`] and [`SecretsGrant::decide`]: may this agent read
//!   this secret?
//!
//! Values never go into audit events, logs or error messages; only names do.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

/// Longest secret name, in bytes.
pub const MAX_SECRET_NAME_BYTES: usize = 64;
/// Largest secret value, in bytes: 16 KiB, room for a certificate or a
/// long token.
pub const MAX_SECRET_VALUE_BYTES: usize = 16 * 1024;

/// Checks a secret name: 1 to [`MAX_SECRET_NAME_BYTES`] of a-z, 0-9, `-`
/// and `_`, starting with a letter or digit. Names are file names in the
/// secret store and appear in audit events, so they carry no path
/// separators, dots or characters that need escaping.
///
/// # Errors
///
/// Returns a one-line message naming the rule broken.
pub fn validate_secret_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_SECRET_NAME_BYTES {
        return Err(format!(
            "secret name is {} bytes, over the maximum of {MAX_SECRET_NAME_BYTES}; use a shorter \
             name",
            name.len()
        ));
    }
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !name.starts_with(['-', '_']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "secret name {:?} is not valid; use 1 to {MAX_SECRET_NAME_BYTES} of a-z, 0-9, '-' \
             and '_', starting with a letter or digit",
            crate::scope::printable(name)
        ))
    }
}

/// A secret's value in host memory.
///
/// `Debug` prints `[redacted]`, never the bytes or their length, and the
/// bytes are overwritten with zeros when the value is dropped, so that a
/// log line, a panic message or a later heap reuse does not carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Wraps `bytes`; the caller should not keep another copy.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The value's bytes. Every caller is a place the value leaves the
    /// secret store: a header the host sends, or a guest granted `reveal`.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

/// The secrets one invocation may use: the invoking tenant's values of the
/// names its agent's grant mentions, and nothing else.
///
/// The runtime builds it from the tenant's own store when the invocation
/// starts, so that another tenant's secret cannot be named: it is not in
/// the map.
#[derive(Clone, Default)]
pub struct TenantSecrets {
    values: BTreeMap<String, SecretValue>,
}

impl fmt::Debug for TenantSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl TenantSecrets {
    /// Adds `name` with `value`, replacing an earlier value of that name.
    pub fn insert(&mut self, name: String, value: SecretValue) {
        self.values.insert(name, value);
    }

    /// The value of `name`, when loaded.
    pub fn get(&self, name: &str) -> Option<&SecretValue> {
        self.values.get(name)
    }
}

/// One `[[grants.secrets]]` entry: a secret the agent may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretGrant {
    /// The secret's name in the tenant's store.
    pub name: String,
    /// Whether the guest may read the value itself. When `false` the host
    /// only uses it where the grant says (an egress header).
    pub reveal: bool,
}

/// The secrets part of an agent's grant. An empty grant allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretsGrant {
    /// Granted secrets, in manifest order, each name once.
    pub secrets: Vec<SecretGrant>,
}

/// Why a guest may not read a secret. The messages name the secret, never
/// its value, and say nothing about whether the tenant has it.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SecretRefusal {
    /// No grant entry names the secret.
    #[error("secret {0} is not granted")]
    NotGranted(String),
    /// The entry names it without `reveal = true`.
    #[error("secret {0} is granted for host use only, not reveal; the grant needs reveal = true")]
    NotRevealed(String),
}

impl SecretsGrant {
    /// Whether the grant has no entry.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The entry naming `name`, if any.
    pub fn entry(&self, name: &str) -> Option<&SecretGrant> {
        self.secrets.iter().find(|s| s.name == name)
    }

    /// Decides whether the guest may read the value of `name`.
    ///
    /// # Errors
    ///
    /// Returns the [`SecretRefusal`] to record and report as "not
    /// permitted".
    pub fn decide(&self, name: &str) -> Result<(), SecretRefusal> {
        match self.entry(name) {
            Some(entry) if entry.reveal => Ok(()),
            Some(_) => Err(SecretRefusal::NotRevealed(name.to_owned())),
            None => Err(SecretRefusal::NotGranted(name.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> SecretsGrant {
        SecretsGrant {
            secrets: vec![
                SecretGrant {
                    name: "shown".into(),
                    reveal: true,
                },
                SecretGrant {
                    name: "hidden".into(),
                    reveal: false,
                },
            ],
        }
    }

    #[test]
    fn reveal_needs_an_entry_with_reveal() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("shown", Ok(())),
            ("hidden", Err("granted for host use only")),
            ("other", Err("secret other is not granted")),
            ("", Err("is not granted")),
            ("SHOWN", Err("is not granted")),
        ];
        for (name, want) in cases {
            let got = grant().decide(name).map_err(|e| e.to_string());
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{name}: {got}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn names_are_short_plain_and_safe_as_file_names() {
        for ok in ["payments-key", "a", "k_1", "0x"] {
            assert!(validate_secret_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(MAX_SECRET_NAME_BYTES + 1);
        for (bad, want) in [
            ("", "not valid"),
            ("../x", "not valid"),
            ("a.b", "not valid"),
            ("A", "not valid"),
            ("-a", "not valid"),
            ("a\n", "not valid"),
            (long.as_str(), "over the maximum of 64"),
        ] {
            let err = validate_secret_name(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn debug_output_never_shows_a_value() {
        let value = SecretValue::new(Zeroizing::new(b"s3cret-value".to_vec()));
        assert_eq!(format!("{value:?}"), "SecretValue([redacted])");
        let mut all = TenantSecrets::default();
        all.insert("k".into(), value);
        let shown = format!("{all:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("\"k\""), "{shown}");
    }
}

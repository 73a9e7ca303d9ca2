//! Agent manifests: which component an agent runs and what it is granted.
//!
//! A manifest is a TOML file beside the component (see `manifest/file.rs` for
//! the format). Loading validates every grant entry and computes the digests
//! that audit events carry: of the manifest file and of the canonical grant.

mod file;

use crate::toml_file::{MAX_CONFIG_FILE_BYTES, read_bounded};

use std::path::{Path, PathBuf};

use thiserror::Error;
use warden_host_api::{
    scope::{AgentGrant, Digest},
    secrets::{SecretGrant, SecretsGrant, validate_secret_name},
    warden_agent::{
        Access, ConfigGrant, PrefixGrant, RecordsGrant,
        scope::{
            DEFAULT_MAX_KEY_BYTES, canonical_prefix,
            config::{MAX_CONFIG_KEYS, validate_config_key},
            fields::{MAX_FIELDS, validate_field_name},
            is_under, validate_key,
        },
    },
    wasi_filesystem::{
        DirGrant, FilesGrant,
        scope::{canonical_grant_path, nested},
    },
    wasi_http::{EgressRule, HttpGrant},
};

/// Longest agent name accepted, in bytes.
pub const MAX_AGENT_NAME_BYTES: usize = 64;

/// A validated agent manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The agent's name.
    pub name: String,
    /// The component file, resolved against the manifest's directory.
    pub component_path: PathBuf,
    /// What the agent may touch.
    pub grant: AgentGrant,
    /// sha256 of the manifest file's bytes.
    pub manifest_digest: Digest,
    /// sha256 of the canonical JSON form of `grant`.
    pub grant_digest: Digest,
}

/// Why a manifest could not be loaded.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {path}; check the path")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid manifest.
    #[error("manifest {path}: {message}")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// What is wrong, naming the field or entry.
        message: String,
    },
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    ///
    /// # Errors
    ///
    /// Returns [`ManifestError`] naming the file and the offending entry.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let bytes =
            read_bounded(path, MAX_CONFIG_FILE_BYTES).map_err(|source| ManifestError::Read {
                path: path.to_owned(),
                source,
            })?;
        let invalid = |message: String| ManifestError::Invalid {
            path: path.to_owned(),
            message,
        };
        let text =
            std::str::from_utf8(&bytes).map_err(|_| invalid("file is not valid UTF-8".into()))?;
        let parsed = file::parse(text).map_err(invalid)?;

        validate_name(&parsed.name).map_err(invalid)?;
        if parsed.component.trim().is_empty() {
            return Err(invalid(
                "component is empty; give the path of the .wasm file".into(),
            ));
        }
        let mut prefixes = Vec::with_capacity(parsed.grants.records.len());
        for (i, entry) in parsed.grants.records.iter().enumerate() {
            validate_key(&entry.prefix, DEFAULT_MAX_KEY_BYTES, true).map_err(|e| {
                invalid(format!(
                    "grants.records[{i}].prefix {:?}: {e}",
                    entry.prefix
                ))
            })?;
            let prefix = canonical_prefix(&entry.prefix).to_owned();
            if prefixes.iter().any(|p: &PrefixGrant| p.prefix == prefix) {
                return Err(invalid(format!(
                    "grants.records[{i}].prefix {:?} is granted twice; keep one entry",
                    entry.prefix
                )));
            }
            let fields = entry
                .fields
                .as_ref()
                .map(|f| record_fields(entry.access, f))
                .transpose()
                .map_err(|e| invalid(format!("grants.records[{i}].fields: {e}")))?;
            // Nested prefixes with different access or field lists would
            // make the effective grant depend on which entry matches first.
            if let Some((j, other)) = prefixes.iter().enumerate().find(|(_, p)| {
                (is_under(&prefix, &p.prefix) || is_under(&p.prefix, &prefix))
                    && (p.access != entry.access || p.fields.is_some() || fields.is_some())
            }) {
                let other = format!("{}/", other.prefix);
                return Err(invalid(format!(
                    "grants.records[{i}].prefix {:?} overlaps grants.records[{j}].prefix \
                     {other:?} with different access or fields; grant disjoint prefixes",
                    entry.prefix,
                )));
            }
            prefixes.push(PrefixGrant {
                prefix,
                access: entry.access,
                fields,
            });
        }
        let mut rules = Vec::with_capacity(parsed.grants.http.len());
        for (i, entry) in parsed.grants.http.iter().enumerate() {
            let rule = EgressRule::new(
                &entry.scheme,
                &entry.host,
                entry.port,
                entry.path_prefix.as_deref(),
                entry.methods.as_deref(),
            )
            .and_then(|rule| {
                let headers: Vec<(String, String)> = entry
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                rule.with_headers(&headers)
            })
            .map_err(|e| invalid(format!("grants.http[{i}].{}: {e}", e.field())))?;
            if rules.contains(&rule) {
                return Err(invalid(format!(
                    "grants.http[{i}] repeats an earlier entry; keep one"
                )));
            }
            rules.push(rule);
        }
        if parsed.grants.config.len() > MAX_CONFIG_KEYS {
            return Err(invalid(format!(
                "grants.config names {} keys, over the maximum of {MAX_CONFIG_KEYS}; grant \
                 only the keys the agent reads",
                parsed.grants.config.len()
            )));
        }
        for (i, key) in parsed.grants.config.iter().enumerate() {
            validate_config_key(key)
                .map_err(|e| invalid(format!("grants.config[{i}] {key:?}: {e}")))?;
            if parsed.grants.config[..i].contains(key) {
                return Err(invalid(format!(
                    "grants.config[{i}] {key:?} is granted twice; keep one entry"
                )));
            }
        }
        let secrets = secrets_grant(&parsed.grants.secrets, &rules).map_err(invalid)?;
        let dirs = files_grant(&parsed.grants.files).map_err(invalid)?;
        let grant = AgentGrant {
            records: RecordsGrant { prefixes },
            http: HttpGrant { rules },
            config: ConfigGrant::new(parsed.grants.config.clone()),
            secrets,
            files: FilesGrant { dirs },
        };

        let base = path.parent().unwrap_or(Path::new("."));
        let grant_json = serde_json::to_vec(&grant)
            .map_err(|e| invalid(format!("grant cannot be encoded: {e}")))?;
        Ok(Self {
            name: parsed.name,
            component_path: base.join(&parsed.component),
            grant,
            manifest_digest: Digest::of(&bytes),
            grant_digest: Digest::of(&grant_json),
        })
    }
}

/// Checks the field list of a records grant entry; returns it sorted.
fn record_fields(access: Access, fields: &[String]) -> Result<Vec<String>, String> {
    if access != Access::Read {
        return Err(
            "only a read grant may name fields: a put under a read-write grant would replace \
             the fields the agent cannot see; use access = \"read\""
                .into(),
        );
    }
    if fields.is_empty() {
        return Err("names no field; name the fields the agent may see".into());
    }
    if fields.len() > MAX_FIELDS {
        return Err(format!(
            "names {} fields, over the maximum of {MAX_FIELDS}",
            fields.len()
        ));
    }
    let mut sorted = Vec::with_capacity(fields.len());
    for name in fields {
        validate_field_name(name).map_err(|e| format!("{name:?}: {e}"))?;
        if sorted.contains(name) {
            return Err(format!("{name:?} is named twice; keep one"));
        }
        sorted.push(name.clone());
    }
    sorted.sort();
    Ok(sorted)
}

/// Validates the `[[grants.secrets]]` entries, and that every secret an
/// egress header uses is one of them: a secret reaches a request only when
/// the grant names it in both places, so that one look at `grants.secrets`
/// shows every secret an agent can cause to leave the host.
fn secrets_grant(
    entries: &[file::SecretGrantFile],
    rules: &[EgressRule],
) -> Result<SecretsGrant, String> {
    let mut secrets: Vec<SecretGrant> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        validate_secret_name(&entry.name).map_err(|e| format!("grants.secrets[{i}].name: {e}"))?;
        if secrets.iter().any(|s| s.name == entry.name) {
            return Err(format!(
                "grants.secrets[{i}].name {:?} is granted twice; keep one entry",
                entry.name
            ));
        }
        secrets.push(SecretGrant {
            name: entry.name.clone(),
            reveal: entry.reveal,
        });
    }
    for (i, rule) in rules.iter().enumerate() {
        for header in &rule.headers {
            if let Some(name) = header
                .secrets()
                .find(|n| !secrets.iter().any(|s| s.name == *n))
            {
                return Err(format!(
                    "grants.http[{i}].headers.{} uses secret {name:?}, which grants.secrets does \
                     not name; add [[grants.secrets]] name = {name:?}",
                    header.name
                ));
            }
        }
    }
    Ok(SecretsGrant { secrets })
}

/// Checks the `[[grants.files]]` entries: each a directory strictly inside
/// the tenant's files directory, none inside another (which would let a
/// read-write grant replace what a read grant protects, or grant one
/// directory twice).
fn files_grant(entries: &[file::FileGrantFile]) -> Result<Vec<DirGrant>, String> {
    let mut dirs: Vec<DirGrant> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let path = canonical_grant_path(&entry.path)
            .map_err(|e| format!("grants.files[{i}].path {:?}: {e}", entry.path))?;
        if let Some((j, other)) = dirs.iter().enumerate().find(|(_, d)| nested(&d.path, path)) {
            return Err(format!(
                "grants.files[{i}].path {:?} overlaps grants.files[{j}].path {:?}; grant each \
                 directory once, none inside another",
                entry.path, other.path
            ));
        }
        dirs.push(DirGrant {
            path: path.to_owned(),
            access: entry.access,
        });
    }
    Ok(dirs)
}

/// Checks an agent name: 1 to [`MAX_AGENT_NAME_BYTES`] of a-z, 0-9 and `-`,
/// not starting with `-`.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_AGENT_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} is not a valid agent name; use 1 to {MAX_AGENT_NAME_BYTES} of a-z, 0-9 \
             and '-', starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Manifest, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        Manifest::load(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn loads_a_minimal_manifest_with_no_grants() {
        let m = load("name = \"a\"\ncomponent = \"a.wasm\"\n").unwrap();
        assert!(m.grant.records.prefixes.is_empty());
        assert!(m.grant.http.is_empty());
        assert!(m.component_path.ends_with("a.wasm"));
    }

    #[test]
    fn canonicalises_prefixes_and_digests_the_grant() {
        let a = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"x/\"\naccess = \"read\"\n",
        )
        .unwrap();
        let b = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"x\"\naccess = \"read\"\n",
        )
        .unwrap();
        assert_eq!(a.grant.records.prefixes[0].prefix, "x");
        assert_eq!(a.grant_digest, b.grant_digest);
        assert_ne!(a.manifest_digest, b.manifest_digest);
    }

    #[test]
    fn records_only_grants_keep_their_digest() {
        // The digest audit trails carried before egress existed: sha256 of
        // the records grant alone.
        let m = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"x\"\naccess = \"read\"\n",
        )
        .unwrap();
        let old = serde_json::to_vec(&m.grant.records).unwrap();
        assert_eq!(m.grant_digest, Digest::of(&old));
    }

    #[test]
    fn nested_prefixes_with_the_same_access_and_no_fields_are_fine() {
        let m = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"read\"\n[[grants.records]]\nprefix = \"a/b\"\naccess = \"read\"\n[[grants.records]]\nprefix = \"ab\"\naccess = \"read-write\"\n",
        )
        .unwrap();
        assert_eq!(m.grant.records.prefixes.len(), 3);
    }

    #[test]
    fn field_lists_are_sorted_and_part_of_the_digest() {
        let a = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"v\"\naccess = \"read\"\nfields = [\"name\", \"id\"]\n",
        )
        .unwrap();
        let b = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"v\"\naccess = \"read\"\n",
        )
        .unwrap();
        assert_eq!(
            a.grant.records.prefixes[0].fields.as_deref(),
            Some(&["id".to_owned(), "name".to_owned()][..])
        );
        assert_ne!(a.grant_digest, b.grant_digest);
    }

    #[test]
    fn config_keys_are_sorted_into_the_grant_and_digested() {
        let a = load("name = \"a\"\ncomponent = \"a.wasm\"\n[grants]\nconfig = [\"b\", \"a\"]\n")
            .unwrap();
        let b = load("name = \"a\"\ncomponent = \"a.wasm\"\n[grants]\nconfig = [\"a\", \"b\"]\n")
            .unwrap();
        let none = load("name = \"a\"\ncomponent = \"a.wasm\"\n").unwrap();
        assert_eq!(a.grant.config.keys, ["a", "b"]);
        assert_eq!(a.grant_digest, b.grant_digest);
        assert_ne!(a.grant_digest, none.grant_digest);
        let many: Vec<String> = (0..=MAX_CONFIG_KEYS).map(|i| format!("\"k{i}\"")).collect();
        let err = load(&format!(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[grants]\nconfig = [{}]\n",
            many.join(",")
        ))
        .unwrap_err();
        assert!(err.contains("over the maximum of 64"), "{err}");
    }

    #[test]
    fn http_grants_are_canonicalised_and_digested() {
        let a = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"API.Example.com.\"\n",
        )
        .unwrap();
        let b = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"api.example.com\"\nport = 443\n",
        )
        .unwrap();
        let c = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"api.example.com\"\nport = 8443\n",
        )
        .unwrap();
        assert_eq!(a.grant.http.rules.len(), 1);
        assert_eq!(a.grant.http, b.grant.http);
        assert_eq!(a.grant_digest, b.grant_digest);
        assert_ne!(a.grant_digest, c.grant_digest);
    }

    #[test]
    fn secret_grants_and_egress_headers_load_and_change_the_digest() {
        let plain = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"a.test\"\n",
        )
        .unwrap();
        let with = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"a.test\"\nheaders = { Authorization = \"Bearer {{secret:pay}}\" }\n[[grants.secrets]]\nname = \"pay\"\n",
        )
        .unwrap();
        let rule = &with.grant.http.rules[0];
        assert_eq!(rule.headers[0].name, "authorization");
        assert_eq!(rule.secrets().collect::<Vec<_>>(), ["pay"]);
        assert!(!with.grant.secrets.secrets[0].reveal);
        assert_ne!(plain.grant_digest, with.grant_digest);
        // A grant without secrets keeps the digest it had before they
        // existed.
        let json = serde_json::to_string(&plain.grant).unwrap();
        assert!(
            !json.contains("secrets") && !json.contains("headers"),
            "{json}"
        );
    }

    #[test]
    fn files_grants_are_canonical_and_digested_only_when_present() {
        let a = load(
            "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.files]]\npath = \"inbox/\"\naccess = \"read\"\n",
        )
        .unwrap();
        assert_eq!(a.grant.files.dirs[0].path, "inbox");
        assert_eq!(a.grant.files.dirs[0].guest_path(), "/inbox");
        let none = load("name = \"a\"\ncomponent = \"a.wasm\"\n").unwrap();
        assert_ne!(a.grant_digest, none.grant_digest);
        // A grant without files keeps the digest it had before files existed.
        let old = serde_json::to_vec(&none.grant.records).unwrap();
        assert_eq!(none.grant_digest, Digest::of(&old));
    }

    #[test]
    fn bad_files_grants_name_the_entry() {
        let entry = |path: &str, access: &str| {
            format!("\n[[grants.files]]\npath = {path:?}\naccess = {access:?}\n")
        };
        let cases = [
            (
                entry("../other", "read"),
                "grants.files[0].path \"../other\": path has",
            ),
            (
                entry("/etc", "read"),
                "grants.files[0].path \"/etc\": path is absolute",
            ),
            (
                entry("", "read"),
                "grants.files[0].path \"\": path is empty",
            ),
            (entry("a/./b", "read"), "'.' or '..' segment"),
            (entry("in", "write"), "unknown variant `write`"),
            (
                entry("in", "read") + &entry("in/", "read-write"),
                "grants.files[1].path \"in/\" overlaps grants.files[0].path \"in\"",
            ),
            (
                entry("data", "read-write") + &entry("data/ro", "read"),
                "grants.files[1].path \"data/ro\" overlaps",
            ),
            (
                "\n[[grants.files]]\npath = \"in\"\naccess = \"read\"\nmode = 1\n".to_owned(),
                "unknown field `mode`",
            ),
        ];
        for (grants, want) in cases {
            let err = load(&format!("name = \"a\"\ncomponent = \"a.wasm\"\n{grants}")).unwrap_err();
            assert!(err.contains(want), "{grants:?}: {err}");
            assert!(!err.contains('\n'), "error spans lines: {err}");
        }
        // Siblings whose names share a prefix do not overlap.
        load(&format!(
            "name = \"a\"\ncomponent = \"a.wasm\"\n{}{}",
            entry("in", "read"),
            entry("inbox", "read-write")
        ))
        .unwrap();
    }

    #[test]
    fn rejects_bad_manifests_with_one_line_naming_the_entry() {
        let cases = [
            ("component = \"a.wasm\"\n", "missing field `name`"),
            ("name = \"a\"\n", "missing field `component`"),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\ncolour = 1\n",
                "unknown field `colour`",
            ),
            (
                "name = \"A b\"\ncomponent = \"a.wasm\"\n",
                "not a valid agent name",
            ),
            ("name = \"a\"\ncomponent = \"\"\n", "component is empty"),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[grants]\ncolours = []\n",
                "unknown field `colours`",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"read\"\n[[grants.records]]\nprefix = \"a/b/\"\naccess = \"read-write\"\n",
                "grants.records[1].prefix \"a/b/\" overlaps grants.records[0].prefix \"a/\"",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a/b\"\naccess = \"read-write\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"read\"\n",
                "grants.records[1].prefix \"a\" overlaps grants.records[0].prefix \"a/b/\"",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"read\"\nfields = [\"x\"]\n[[grants.records]]\nprefix = \"a/b\"\naccess = \"read\"\n",
                "overlaps grants.records[0].prefix",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"read-write\"\nfields = [\"x\"]\n",
                "grants.records[0].fields: only a read grant may name fields",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"read\"\nfields = []\n",
                "grants.records[0].fields: names no field",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"read\"\nfields = [\"x\", \"x\"]\n",
                "grants.records[0].fields: \"x\" is named twice",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[grants]\nconfig = [\"Currency\"]\n",
                "grants.config[0] \"Currency\": config key may hold only",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[grants]\nconfig = [\"a\", \"a\"]\n",
                "grants.config[1] \"a\" is granted twice",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[grants]\nfolders = []\n",
                "unknown field `folders`",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a/../b\"\naccess = \"read\"\n",
                "grants.records[0].prefix",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"write\"\n",
                "unknown variant `write`",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.records]]\nprefix = \"a\"\naccess = \"read\"\n[[grants.records]]\nprefix = \"a/\"\naccess = \"read-write\"\n",
                "granted twice",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"a.test\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"*\"\n",
                "grants.http[1].host: host \"*\" is too broad",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"ftp\"\nhost = \"a.test\"\n",
                "grants.http[0].scheme: scheme \"ftp\" is not supported",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"a.test\"\nverbs = [\"GET\"]\n",
                "unknown field `verbs`",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"u@a.test\"\n",
                "grants.http[0].host: host \"u@a.test\" is not valid",
            ),
            (
                "name = \"a\"\ncomponent = \"a.wasm\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"a.test\"\n[[grants.http]]\nscheme = \"https\"\nhost = \"A.test\"\n",
                "grants.http[1] repeats an earlier entry",
            ),
        ];
        let secret_cases = [
            (
                "[[grants.secrets]]\nname = \"Bad Name\"\n",
                "grants.secrets[0].name: secret name \"Bad Name\" is not valid",
            ),
            (
                "[[grants.secrets]]\nname = \"k\"\n[[grants.secrets]]\nname = \"k\"\nreveal = true\n",
                "grants.secrets[1].name \"k\" is granted twice",
            ),
            (
                "[[grants.secrets]]\nname = \"k\"\nshow = true\n",
                "unknown field `show`",
            ),
            (
                "[[grants.http]]\nscheme = \"https\"\nhost = \"a.test\"\nheaders = { authorization = \"Bearer {{secret:k}}\" }\n",
                "grants.http[0].headers.authorization uses secret \"k\", which grants.secrets does not name",
            ),
            (
                "[[grants.http]]\nscheme = \"https\"\nhost = \"a.test\"\nheaders = { host = \"x\" }\n",
                "grants.http[0].headers: host is set by the host",
            ),
        ];
        let secret_cases = secret_cases.map(|(grants, want)| {
            (
                format!("name = \"a\"\ncomponent = \"a.wasm\"\n{grants}"),
                want,
            )
        });
        let cases = cases
            .map(|(text, want)| (text.to_owned(), want))
            .into_iter()
            .chain(secret_cases);
        for (text, want) in cases {
            let err = load(&text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains('\n'), "error spans lines: {err}");
        }
    }
}

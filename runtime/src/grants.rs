//! Grants in plain words: what `warden grants show` prints and what a
//! control-plane event says changed.
//!
//! Each capability's part of an [`AgentGrant`] is turned into short entries
//! (`read vendors/`, `GET https://api.example.com:443/v1`); a change between
//! two grants is the entries added and removed, per capability. The words
//! come from the compiled grant, not from the manifest's text, so that two
//! spellings of one grant read the same.

use std::fmt::Write as _;

use warden_host_api::{
    scope::AgentGrant,
    warden_agent::{Access, PrefixGrant},
    wasi_http::EgressRule,
};

use crate::manifest::Manifest;

/// One capability's entries in a grant, in manifest order (config keys
/// sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The capability, as in the manifest: `records`, `http`, `config`,
    /// `files`, `secrets`.
    pub capability: &'static str,
    /// Each granted entry in plain words.
    pub entries: Vec<String>,
}

/// `grant` as one [`Part`] per capability, including empty ones.
pub fn parts(grant: &AgentGrant) -> Vec<Part> {
    vec![
        Part {
            capability: "records",
            entries: grant.records.prefixes.iter().map(record_entry).collect(),
        },
        Part {
            capability: "http",
            entries: grant.http.rules.iter().map(http_entry).collect(),
        },
        Part {
            capability: "config",
            entries: grant.config.keys.clone(),
        },
        Part {
            capability: "files",
            entries: grant
                .files
                .dirs
                .iter()
                .map(|d| format!("{} /{}", access_word(d.access), d.path))
                .collect(),
        },
        Part {
            capability: "secrets",
            entries: grant
                .secrets
                .secrets
                .iter()
                .map(|s| {
                    if s.reveal {
                        format!("{} (revealed to the agent)", s.name)
                    } else {
                        s.name.clone()
                    }
                })
                .collect(),
        },
    ]
}

fn access_word(access: Access) -> &'static str {
    match access {
        Access::Read => "read",
        Access::ReadWrite => "read-write",
    }
}

/// A records entry: its access and its prefix, with the `/` that shows it
/// covers whole segments.
fn record_entry(p: &PrefixGrant) -> String {
    let access = access_word(p.access);
    match &p.fields {
        Some(fields) => format!("{access} {}/ (fields {})", p.prefix, fields.join(", ")),
        None => format!("{access} {}/", p.prefix),
    }
}

/// An egress entry: its methods and its destination.
fn http_entry(rule: &EgressRule) -> String {
    let methods = rule
        .methods
        .as_ref()
        .map_or_else(|| "any method".to_owned(), |m| m.join(","));
    let mut entry = format!(
        "{methods} {}://{}:{}{}",
        rule.scheme.as_str(),
        rule.host,
        rule.port,
        rule.path_prefix.as_deref().unwrap_or("")
    );
    for header in &rule.headers {
        let secrets: Vec<&str> = header.secrets().collect();
        let _ = write!(entry, " +header {}", header.name);
        if !secrets.is_empty() {
            let _ = write!(entry, " (secret {})", secrets.join(", "));
        }
    }
    entry
}

/// What changed from `before` to `after`, in plain words: per capability,
/// the entries added (`+`) and removed (`-`), for example
/// `records: + read-write invoices/; http: - GET https://api.example.com:443`.
/// `None` stands for "not allowed at all".
pub fn describe_change(before: Option<&AgentGrant>, after: Option<&AgentGrant>) -> String {
    let empty = AgentGrant::default();
    let old = parts(before.unwrap_or(&empty));
    let new = parts(after.unwrap_or(&empty));
    let mut sections = Vec::new();
    for (o, n) in old.iter().zip(&new) {
        let mut items = Vec::new();
        items.extend(
            n.entries
                .iter()
                .filter(|e| !o.entries.contains(e))
                .map(|e| format!("+ {e}")),
        );
        items.extend(
            o.entries
                .iter()
                .filter(|e| !n.entries.contains(e))
                .map(|e| format!("- {e}")),
        );
        if !items.is_empty() {
            sections.push(format!("{}: {}", n.capability, items.join(", ")));
        }
    }
    let what = match (before, after) {
        (None, Some(_)) => "allowed",
        (Some(_), None) => "revoked",
        _ => "grant changed",
    };
    if sections.is_empty() {
        let same = match (before, after) {
            (None, Some(_)) => "with an empty grant",
            (Some(_), None) => "it had an empty grant",
            _ => "same entries in another order",
        };
        return format!("{what}; {same}");
    }
    format!("{what}; {}", sections.join("; "))
}

/// The effective grant of `manifest` in plain words, one line per entry,
/// ending with what the agent may not do at all.
pub fn show(manifest: &Manifest) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "agent {}", manifest.name);
    let _ = writeln!(out, "grant sha256:{}", manifest.grant_digest);
    let _ = writeln!(out, "manifest sha256:{}", manifest.manifest_digest);
    let mut absent = Vec::new();
    for part in parts(&manifest.grant) {
        if part.entries.is_empty() {
            absent.push(match part.capability {
                "records" => "no records",
                "http" => "no network",
                "config" => "no config values",
                "files" => "no files",
                "secrets" => "no secrets",
                other => other,
            });
            continue;
        }
        let _ = writeln!(out, "{}:", part.capability);
        for (entry, raw) in part
            .entries
            .iter()
            .zip(explain(&manifest.grant, part.capability))
        {
            let _ = writeln!(out, "  {entry:<40} {raw}");
        }
    }
    let _ = writeln!(out, "may not: {}", absent.join(", "));
    let _ = writeln!(
        out,
        "anything else is refused and recorded in the tenant's audit trail"
    );
    out
}

/// One explanation per entry of `capability`, in the same order as
/// [`parts`] lists them.
fn explain(grant: &AgentGrant, capability: &str) -> Vec<String> {
    match capability {
        "records" => grant
            .records
            .prefixes
            .iter()
            .map(|p| {
                let what = match p.access {
                    Access::Read => "get and list",
                    Access::ReadWrite => "get, list, put and delete",
                };
                let shown = match &p.fields {
                    Some(_) => "; of JSON objects it sees only the fields named, never the others",
                    None => "",
                };
                let prefix = format!("{}/", p.prefix);
                format!("{what} keys equal to or under {prefix:?}{shown}")
            })
            .collect(),
        "config" => grant
            .config
            .keys
            .iter()
            .map(|_| "read the value the operator set for this key".to_owned())
            .collect(),
        "http" => grant
            .http
            .rules
            .iter()
            .map(|r| {
                let added = if r.headers.is_empty() {
                    ""
                } else {
                    "; the host adds the headers named, the guest never sees a secret in them"
                };
                match &r.path_prefix {
                    Some(p) => format!("requests to that host and port, path under {p:?}{added}"),
                    None => format!("requests to that host and port, any path{added}"),
                }
            })
            .collect(),
        "files" => grant
            .files
            .dirs
            .iter()
            .map(|d| match d.access {
                Access::Read => "open, read and list under this directory of the tenant's files",
                Access::ReadWrite => {
                    "open, read, list, write, create, rename and delete under this directory of \
                     the tenant's files"
                }
            })
            .map(str::to_owned)
            .collect(),
        "secrets" => grant
            .secrets
            .secrets
            .iter()
            .map(|s| {
                if s.reveal {
                    "the agent may read the value".to_owned()
                } else {
                    "used by the host where the grant says; the agent never reads it".to_owned()
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use warden_host_api::{
        warden_agent::{ConfigGrant, RecordsGrant},
        wasi_http::{EgressRule, HttpGrant},
    };

    use super::*;

    fn grant(records: &[(&str, Access)], hosts: &[&str]) -> AgentGrant {
        AgentGrant {
            records: RecordsGrant {
                prefixes: records
                    .iter()
                    .map(|(p, a)| PrefixGrant {
                        prefix: (*p).into(),
                        access: *a,
                        fields: None,
                    })
                    .collect(),
            },
            http: HttpGrant {
                rules: hosts
                    .iter()
                    .map(|h| EgressRule::new("https", h, None, None, None).unwrap())
                    .collect(),
            },
            config: ConfigGrant::default(),
            ..AgentGrant::default()
        }
    }

    #[test]
    fn a_change_names_what_was_added_and_removed() {
        let before = grant(&[("vendors", Access::Read)], &["api.example.com"]);
        let after = grant(
            &[("vendors", Access::Read), ("invoices", Access::ReadWrite)],
            &[],
        );
        assert_eq!(
            describe_change(Some(&before), Some(&after)),
            "grant changed; records: + read-write invoices/; \
             http: - any method https://api.example.com:443"
        );
        assert_eq!(
            describe_change(None, Some(&before)),
            "allowed; records: + read vendors/; http: + any method https://api.example.com:443"
        );
        assert_eq!(
            describe_change(Some(&before), None),
            "revoked; records: - read vendors/; http: - any method https://api.example.com:443"
        );
        assert_eq!(
            describe_change(None, Some(&AgentGrant::default())),
            "allowed; with an empty grant"
        );
    }
}

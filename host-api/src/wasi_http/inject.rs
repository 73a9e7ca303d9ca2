//! Headers an egress rule adds to the requests it allows, with secrets
//! filled in by the host.
//!
//! A grant entry may say
//!
//! ```toml
//! headers = { authorization = "Bearer {{secret:payments-key}}" }
//! ```
//!
//! and the host then sets `authorization` on every request that entry
//! allows, after the egress check, replacing any `authorization` the guest
//! set. The guest never sees the value. Pure code over strings, free of
//! wasmtime and HTTP types, like the rest of the egress decision.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::secrets::{TenantSecrets, validate_secret_name};

/// Most headers one grant entry may add.
pub const MAX_INJECTED_HEADERS: usize = 16;
/// Longest header template as written in a manifest, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 1024;

/// Where a template names a secret: `{{secret:NAME}}`.
const OPEN: &str = "{{secret:";
const CLOSE: &str = "}}";

/// Headers a grant may not set: they frame the message or name its
/// destination, which the host alone decides after the egress check.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// One piece of a header value template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Piece {
    /// Text sent as written.
    Text(String),
    /// The value of the tenant's secret of this name.
    Secret(String),
}

/// A header the host adds to requests a rule allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedHeader {
    /// The header name, lower case.
    pub name: String,
    /// The value, as text and secret pieces in order.
    pub value: Vec<Piece>,
}

/// Why a `headers` entry of a grant is not valid.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum HeaderGrantError {
    /// Not an HTTP header name.
    #[error("{0:?} is not an HTTP header name; use letters, digits and '-'")]
    Name(String),
    /// A header the host sets itself.
    #[error("{0} is set by the host and cannot be granted")]
    Reserved(String),
    /// More than [`MAX_INJECTED_HEADERS`].
    #[error("more than {MAX_INJECTED_HEADERS} headers; keep the ones the destination needs")]
    TooMany,
    /// The template is malformed.
    #[error("{name}: {reason}")]
    Template {
        /// The header.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

impl InjectedHeader {
    /// Parses a header `name` and its value `template`.
    ///
    /// # Errors
    ///
    /// Returns [`HeaderGrantError`] naming the header and the rule broken.
    pub fn parse(name: &str, template: &str) -> Result<Self, HeaderGrantError> {
        let lower = name.to_ascii_lowercase();
        let token = !lower.is_empty()
            && lower.len() <= 64
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !token {
            return Err(HeaderGrantError::Name(name.to_owned()));
        }
        if RESERVED.contains(&lower.as_str()) {
            return Err(HeaderGrantError::Reserved(lower));
        }
        let bad = |reason: String| HeaderGrantError::Template {
            name: lower.clone(),
            reason,
        };
        if template.len() > MAX_TEMPLATE_BYTES {
            return Err(bad(format!(
                "value is over the maximum of {MAX_TEMPLATE_BYTES} bytes"
            )));
        }
        if template.chars().any(|c| c.is_control() && c != '\t') {
            return Err(bad("value holds a control character".into()));
        }
        let mut value = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            if !rest[start..].starts_with(OPEN) {
                return Err(bad(format!(
                    "'{{{{' starts something other than {OPEN}NAME{CLOSE}"
                )));
            }
            if start > 0 {
                value.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find(CLOSE) else {
                return Err(bad(format!("{OPEN} is not closed with {CLOSE}")));
            };
            let secret = &after[..end];
            validate_secret_name(secret).map_err(bad)?;
            value.push(Piece::Secret(secret.to_owned()));
            rest = &after[end + CLOSE.len()..];
        }
        if rest.contains(CLOSE) {
            return Err(bad(format!("{CLOSE} without {OPEN}")));
        }
        if !rest.is_empty() {
            value.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self { name: lower, value })
    }

    /// The names of the secrets the value uses, in order.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.value.iter().filter_map(|p| match p {
            Piece::Secret(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The value with each secret filled in from `secrets`. The result is
    /// zeroed when dropped.
    ///
    /// # Errors
    ///
    /// Returns the name of a secret `secrets` does not hold.
    pub fn render(&self, secrets: &TenantSecrets) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut out = Zeroizing::new(Vec::new());
        for piece in &self.value {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Secret(name) => match secrets.get(name) {
                    Some(value) => out.extend_from_slice(value.expose()),
                    None => return Err(name.clone()),
                },
            }
        }
        Ok(out)
    }
}

/// Parses the `headers` table of one grant entry.
///
/// # Errors
///
/// Returns the first [`HeaderGrantError`].
pub fn parse_headers(
    headers: &[(String, String)],
) -> Result<Vec<InjectedHeader>, HeaderGrantError> {
    if headers.len() > MAX_INJECTED_HEADERS {
        return Err(HeaderGrantError::TooMany);
    }
    let mut out: Vec<InjectedHeader> = Vec::with_capacity(headers.len());
    for (name, template) in headers {
        let header = InjectedHeader::parse(name, template)?;
        // TOML keys differing only in case would both land here.
        if out.iter().any(|h| h.name == header.name) {
            return Err(HeaderGrantError::Template {
                name: header.name,
                reason: "given twice".into(),
            });
        }
        out.push(header);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;

    #[test]
    fn templates_split_into_text_and_secrets() {
        let h = InjectedHeader::parse("Authorization", "Bearer {{secret:payments-key}}").unwrap();
        assert_eq!(h.name, "authorization");
        assert_eq!(
            h.value,
            vec![
                Piece::Text("Bearer ".into()),
                Piece::Secret("payments-key".into())
            ]
        );
        let two = InjectedHeader::parse("x-pair", "{{secret:a}}:{{secret:b}}").unwrap();
        assert_eq!(two.secrets().collect::<Vec<_>>(), ["a", "b"]);
        let plain = InjectedHeader::parse("x-api-version", "2").unwrap();
        assert_eq!(plain.secrets().count(), 0);
    }

    #[test]
    fn bad_templates_name_the_header_and_the_rule() {
        let cases = [
            ("host", "x", "set by the host"),
            ("Content-Length", "1", "set by the host"),
            ("bad name", "x", "not an HTTP header name"),
            ("", "x", "not an HTTP header name"),
            ("x-a", "{{secret:k", "is not closed"),
            ("x-a", "{{other}}", "starts something other"),
            ("x-a", "a }} b", "without"),
            ("x-a", "{{secret:../k}}", "not valid"),
            ("x-a", "{{secret:}}", "not valid"),
            ("x-a", "a\r\nx-b: c", "control character"),
        ];
        for (name, template, want) in cases {
            let err = InjectedHeader::parse(name, template)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{name:?} {template:?}: {err}");
        }
        let many: Vec<(String, String)> = (0..=MAX_INJECTED_HEADERS)
            .map(|i| (format!("x-{i}"), "v".to_owned()))
            .collect();
        assert_eq!(parse_headers(&many), Err(HeaderGrantError::TooMany));
        let twice = [
            ("X-A".to_owned(), "1".to_owned()),
            ("x-a".to_owned(), "2".to_owned()),
        ];
        assert!(
            parse_headers(&twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn render_fills_in_secrets_and_names_a_missing_one() {
        let h = InjectedHeader::parse("authorization", "Bearer {{secret:k}}").unwrap();
        let mut secrets = TenantSecrets::default();
        assert_eq!(h.render(&secrets).unwrap_err(), "k");
        secrets.insert(
            "k".into(),
            SecretValue::new(Zeroizing::new(b"tok".to_vec())),
        );
        assert_eq!(&h.render(&secrets).unwrap()[..], b"Bearer tok");
    }
}

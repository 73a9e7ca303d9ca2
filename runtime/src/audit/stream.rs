//! Where a stream lives on disk and how its records are encoded.
//!
//! A stream is one Merkle log: a tenant's events, or the control-plane
//! events of the whole data directory. Each has a directory:
//!
//! ```text
//! <data-dir>/audit/<stream>/
//!   WARDEN-AUDIT-LOG                  marker: format and stream name
//!   seg-00000000000000000001.jsonl    sealed segment, events 1..
//!   seg-00000000000000004097.jsonl    active segment, events 4097..
//!   checkpoints.jsonl                 signed checkpoints, oldest first
//!   retention.jsonl                   signed records of removed segments
//! ```
//!
//! A segment file is named after the sequence number of its first event
//! and holds one record per line. A record is the canonical JSON
//!
//! ```text
//! {"seq":7,"prev":"<hex leaf hash of event 6>","event":{…}}
//! ```
//!
//! with exactly these fields in this order, no spaces, and the event
//! encoded by serde_json from [`AuditEvent`]'s declared field order. The
//! Merkle leaf of the record is `SHA-256(0x00 || the line's bytes without
//! its newline)`, so that a verifier in any language hashes the bytes as
//! stored and never re-encodes JSON. `prev` is redundant with the tree; it
//! lets the verifier name the edited event instead of only the range
//! between two checkpoints.
//!
//! The control-plane stream is named `_control`: tenant ids start with a
//! letter or digit, so it can never collide with a tenant's directory.
//!
//! [`AuditEvent`]: warden_host_api::audit::AuditEvent

use std::{
    fmt,
    path::{Path, PathBuf},
};

use warden_host_api::scope::TenantId;

use super::merkle::Hash;

/// Name of the marker file that makes a directory a warden audit log.
pub const MARKER_FILE: &str = "WARDEN-AUDIT-LOG";
/// Name of the signed checkpoints file.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
/// Name of the signed retention records file.
pub const RETENTION_FILE: &str = "retention.jsonl";
/// Name of the control-plane stream's directory.
pub const CONTROL_STREAM: &str = "_control";
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".jsonl";

/// Which audit stream: one tenant's, or the control plane's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StreamId {
    /// The events of one tenant's invocations.
    Tenant(TenantId),
    /// Events of operators acting on the data directory: who read or
    /// exported which tenant's log.
    Control,
}

impl StreamId {
    /// The stream's name: the tenant id, or `_control`.
    pub fn name(&self) -> &str {
        match self {
            Self::Tenant(t) => t.as_str(),
            Self::Control => CONTROL_STREAM,
        }
    }

    /// The tenant whose events every record must carry, if any; the
    /// control stream records events about any tenant.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Tenant(t) => Some(t),
            Self::Control => None,
        }
    }

    /// The stream's directory under `data_dir`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join("audit").join(self.name())
    }

    /// What a stream's marker file holds.
    pub(crate) fn marker_text(&self) -> String {
        format!("warden audit log v2\nstream {}\n", self.name())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant(t) => write!(f, "tenant {t}"),
            Self::Control => f.write_str("the control plane"),
        }
    }
}

/// File name of the segment whose first event is `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The segments in `dir`, ordered by first sequence number.
///
/// # Errors
///
/// Fails when the directory cannot be listed.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
        else {
            continue;
        };
        if let Ok(first) = number.parse::<u64>() {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Appends one record line (without its newline) to `out`.
pub(crate) fn encode_line_into(out: &mut Vec<u8>, seq: u64, prev: &Hash, event_json: &[u8]) {
    let mut hex = [0u8; 64];
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(prev, &mut hex);
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(itoa(seq, &mut [0u8; 20]));
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(&hex);
    out.extend_from_slice(b"\",\"event\":");
    out.extend_from_slice(event_json);
    out.push(b'}');
}

/// `n` in decimal, written into `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// One record line, split into its fields without copying.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The sequence number, from 1.
    pub seq: u64,
    /// The hex leaf hash of the previous event, as stored.
    pub prev: &'a [u8],
    /// The event's JSON bytes.
    pub event: &'a [u8],
}

impl<'a> Record<'a> {
    /// Splits a line (without its newline) into its fields.
    ///
    /// This reads the fixed canonical layout rather than parsing arbitrary
    /// JSON: a record in any other form is not one warden wrote.
    ///
    /// # Errors
    ///
    /// Returns what is wrong with the line.
    pub fn parse(line: &'a [u8]) -> Result<Self, &'static str> {
        let rest = line
            .strip_prefix(b"{\"seq\":")
            .ok_or("it does not start with {\"seq\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 19 || (digits > 1 && rest[0] == b'0') {
            return Err("its seq is not a number");
        }
        // At most 19 digits: always fits a u64.
        let seq = rest[..digits]
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        let rest = rest[digits..]
            .strip_prefix(b",\"prev\":\"")
            .ok_or("it has no prev field after seq")?;
        // The digits themselves are checked where it matters: the verifier
        // compares them with the hash it computed.
        if rest.len() < 64 {
            return Err("its prev is not 64 hex digits");
        }
        let (prev, rest) = rest.split_at(64);
        let event = rest
            .strip_prefix(b"\",\"event\":")
            .and_then(|r| r.strip_suffix(b"}"))
            .ok_or("it has no event field after prev")?;
        if event.first() != Some(&b'{') || event.last() != Some(&b'}') {
            return Err("its event is not a JSON object");
        }
        Ok(Self { seq, prev, event })
    }

    /// The `tenant` field of the event, read from its canonical position
    /// (the second field, after `time_unix_ms`).
    pub fn tenant(&self) -> Option<&'a str> {
        let rest = self.event.strip_prefix(b"{\"time_unix_ms\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let rest = rest[digits..].strip_prefix(b",\"tenant\":\"")?;
        let end = rest.iter().position(|&b| b == b'"')?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// The event's time, read from its canonical position.
    pub fn time_unix_ms(&self) -> Option<u64> {
        let rest = self.event.strip_prefix(b"{\"time_unix_ms\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
    }
}

/// Splits a segment's bytes into complete lines (without newlines) and the
/// bytes after the last newline, which are a torn record when not empty.
pub fn split_lines(bytes: &[u8]) -> (impl Iterator<Item = &[u8]>, &[u8]) {
    let end = memchr::memrchr(b'\n', bytes).map_or(0, |i| i + 1);
    let (whole, torn) = bytes.split_at(end);
    // memchr finds newlines many bytes at a time; line splitting is
    // otherwise a fair share of the verifier's time.
    let mut start = 0;
    let lines = memchr::memchr_iter(b'\n', whole).map(move |i| {
        let line = &whole[start..i];
        start = i + 1;
        line
    });
    (lines, torn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_line(seq: u64, prev: &Hash, event_json: &[u8]) -> Vec<u8> {
        let mut line = Vec::new();
        encode_line_into(&mut line, seq, prev, event_json);
        line
    }

    #[test]
    fn records_round_trip_through_their_canonical_form() {
        let event = br#"{"time_unix_ms":17,"tenant":"acme","agent":"a"}"#;
        let line = encode_line(42, &[0xab; 32], event);
        let record = Record::parse(&line).unwrap();
        assert_eq!(record.seq, 42);
        assert_eq!(record.prev, "ab".repeat(32).as_bytes());
        assert_eq!(record.event, event);
        assert_eq!(record.tenant(), Some("acme"));
        assert_eq!(record.time_unix_ms(), Some(17));
    }

    #[test]
    fn lines_not_in_canonical_form_are_refused() {
        let ok = String::from_utf8(encode_line(1, &[0; 32], b"{}")).unwrap();
        for bad in [
            "",
            "{\"seq\": 1}",
            "{\"seq\":01,\"prev\":\"\"}",
            &ok.replace("\"prev\"", "\"prev \""),
            &ok[..ok.len() - 1],
        ] {
            assert!(Record::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn split_lines_separates_a_torn_tail() {
        let (lines, torn) = split_lines(b"a\nbb\ncc");
        assert_eq!(lines.collect::<Vec<_>>(), [&b"a"[..], b"bb"]);
        assert_eq!(torn, b"cc");
        let (lines, torn) = split_lines(b"");
        assert_eq!(lines.count(), 0);
        assert!(torn.is_empty());
    }

    #[test]
    fn the_control_stream_cannot_be_named_by_a_tenant() {
        assert!(TenantId::new(CONTROL_STREAM).is_err());
        assert_eq!(segment_name(1), "seg-00000000000000000001.jsonl");
    }
}

//! Reading operator files: bounded reads and one-line TOML errors.
//!
//! Manifests, tenant configurations and components are named by operators,
//! but a typo can point at `/dev/zero`, a FIFO or a huge file. Every such
//! file is required to be a regular file and read with a size cap, so that a
//! wrong path gets an error instead of exhausting memory or hanging.

use std::{io::Read, path::Path};

use serde::de::DeserializeOwned;

/// Largest manifest or tenant configuration file: 1 MiB.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// Largest component file: 256 MiB.
pub const MAX_COMPONENT_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads `path` if it is a regular file of at most `max` bytes.
///
/// # Errors
///
/// Returns the I/O error, or an `InvalidData` error saying what is wrong with
/// the file (not a regular file, too large).
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes, over the maximum of {max}", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow between the size check and the read.
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("over the maximum of {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// Parses `text` as TOML into `T`; the error is one line naming the line
/// number and the problem.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        // toml's Display spans several lines with a source excerpt; keep the
        // message and the line number on one line for the operator.
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().replace('\n', " ");
        match line {
            Some(line) => format!("line {line}: {msg}"),
            None => msg,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed, to provoke errors")]
    struct Sample {
        a: u32,
    }

    #[test]
    fn errors_name_the_line_of_the_offending_key() {
        let err = parse::<Sample>("a = 1\n\ncolour = 2\n").unwrap_err();
        assert!(err.starts_with("line 3: unknown field `colour`"), "{err}");
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let err = read_bounded(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let err = read_bounded(dir.path(), 10).unwrap_err().to_string();
        assert_eq!(err, "not a regular file");
        let big = dir.path().join("big");
        std::fs::write(&big, [0u8; 11]).unwrap();
        let err = read_bounded(&big, 10).unwrap_err().to_string();
        assert_eq!(err, "11 bytes, over the maximum of 10");
    }
}

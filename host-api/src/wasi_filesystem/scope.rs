//! The files scope decision: may this agent reach this path, this way?
//!
//! Pure functions over strings, free of wasmtime types. A grant names
//! sub-directories of the tenant's files directory ([`FilesGrant`]); the
//! manifest loader checks each with [`canonical_grant_path`] and refuses
//! nested grants with [`nested`]. On every call the host checks the guest's
//! path with [`check_path`] (relative, never above the directory it is
//! resolved from), the access with [`check_access`], and a new symbolic
//! link's target with [`check_symlink_target`], before anything touches the
//! file system.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_normalization::is_nfc;

use crate::{scope::is_hidden, warden_agent::Access};

/// Longest grant path accepted, in bytes.
pub const MAX_GRANT_PATH_BYTES: usize = 255;

/// Longest path a guest may pass in one call, in bytes: Linux's `PATH_MAX`.
pub const MAX_PATH_BYTES: usize = 4096;

/// One granted directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirGrant {
    /// The directory, relative to the tenant's files directory, in canonical
    /// form: `/`-separated names, no trailing `/`.
    pub path: String,
    /// What it allows.
    pub access: Access,
}

impl DirGrant {
    /// Where the guest finds the directory: `/` followed by the grant's
    /// path, for example `/inbox` for `inbox`.
    pub fn guest_path(&self) -> String {
        format!("/{}", self.path)
    }
}

/// The files part of an agent's grant: directories, none nested in
/// another. An empty grant preopens nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesGrant {
    /// Granted directories, in manifest order.
    pub dirs: Vec<DirGrant>,
}

impl FilesGrant {
    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }
}

/// Why a grant path is not valid.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum GrantPathError {
    /// Empty, or only `/`.
    #[error("path is empty; name a directory inside the tenant's files directory")]
    Empty,
    /// Starts with `/`.
    #[error("path is absolute; give it relative to the tenant's files directory")]
    Absolute,
    /// Has an empty, `.` or `..` segment.
    #[error("path has an empty, '.' or '..' segment; a grant cannot leave or re-enter a directory")]
    BadSegment,
    /// Holds a control, invisible or `\` character.
    #[error("path contains a control, invisible or '\\' character")]
    BadCharacter,
    /// Not in Unicode normalisation form C.
    #[error("path is not in Unicode NFC form")]
    NotNfc,
    /// Longer than [`MAX_GRANT_PATH_BYTES`].
    #[error("path is {0} bytes, over the maximum of {MAX_GRANT_PATH_BYTES}")]
    TooLong(usize),
}

/// `path` in canonical form (a trailing `/` removed), after checking that it
/// names a directory strictly inside the tenant's files directory.
///
/// # Errors
///
/// Returns the first rule `path` breaks.
pub fn canonical_grant_path(path: &str) -> Result<&str, GrantPathError> {
    if path.len() > MAX_GRANT_PATH_BYTES {
        return Err(GrantPathError::TooLong(path.len()));
    }
    if path.starts_with('/') {
        return Err(GrantPathError::Absolute);
    }
    let body = path.strip_suffix('/').unwrap_or(path);
    if body.is_empty() {
        return Err(GrantPathError::Empty);
    }
    // A backslash is an ordinary name character on Linux but a separator
    // elsewhere; refusing it keeps a manifest meaning the same everywhere.
    if body
        .chars()
        .any(|c| c.is_control() || is_hidden(c) || c == '\\')
    {
        return Err(GrantPathError::BadCharacter);
    }
    if body
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(GrantPathError::BadSegment);
    }
    if !is_nfc(body) {
        return Err(GrantPathError::NotNfc);
    }
    Ok(body)
}

/// Whether one canonical grant path is the other or lies inside it, on
/// whole segments (`a` holds `a/b` but not `ab`).
pub fn nested(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

/// What a call needs from the grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Opening for reading, listing, reading metadata.
    Read,
    /// Creating, writing, truncating, renaming, linking, deleting.
    Write,
}

/// Why a files call was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Refusal {
    /// The path starts with `/`.
    #[error("absolute paths are not accepted; use a path relative to the directory")]
    Absolute,
    /// A `..` leads above the directory the path is resolved from.
    #[error("path leads above the directory it is resolved from")]
    LeavesDirectory,
    /// The path holds NUL, which no file name can contain.
    #[error("path contains a NUL character")]
    Nul,
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("path is {0} bytes, over the maximum of {MAX_PATH_BYTES}")]
    TooLong(usize),
    /// Resolving a symbolic link on the path leads outside the directory.
    #[error("a symbolic link on the path leads outside the directory")]
    SymlinkEscapes,
    /// A new symbolic link's target is absolute or leads above the directory.
    #[error("symbolic link target {0:?} is absolute or leads outside the directory")]
    SymlinkTarget(String),
    /// The grant covering the path is read-only.
    #[error("files grant {0:?} is read-only")]
    ReadOnly(String),
    /// A write would grow a file past the tenant's `max_file_bytes`.
    #[error("file would grow to {size} bytes, over max_file_bytes ({max})")]
    FileTooLarge {
        /// The size the file would reach.
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// Checks `path`, as the guest sent it, for a call on a directory
/// descriptor: relative, at most [`MAX_PATH_BYTES`], no NUL, and no `..`
/// that leads above the directory.
///
/// The rule is the one the sandbox below applies (each directory descriptor
/// is its own root), checked here on the text first, so that the refusal is
/// recorded with its reason before the file system is touched.
///
/// # Errors
///
/// Returns the [`Refusal`] for the first rule broken.
pub fn check_path(path: &str) -> Result<(), Refusal> {
    if path.len() > MAX_PATH_BYTES {
        return Err(Refusal::TooLong(path.len()));
    }
    if path.contains('\0') {
        return Err(Refusal::Nul);
    }
    if path.starts_with('/') {
        return Err(Refusal::Absolute);
    }
    depth_after(0, path).map(|_| ())
}

/// The depth below the starting directory after walking `path` from
/// `depth`, or [`Refusal::LeavesDirectory`] when a `..` climbs above it.
fn depth_after(mut depth: usize, path: &str) -> Result<usize, Refusal> {
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => depth = depth.checked_sub(1).ok_or(Refusal::LeavesDirectory)?,
            _ => depth += 1,
        }
    }
    Ok(depth)
}

/// Checks the target of a symbolic link the guest creates at `link` (a
/// path already accepted by [`check_path`]): it must be relative and,
/// read from the link's own directory, stay inside the directory the call
/// is made on.
///
/// # Errors
///
/// Returns [`Refusal::SymlinkTarget`] otherwise.
pub fn check_symlink_target(link: &str, target: &str) -> Result<(), Refusal> {
    let refused = || Refusal::SymlinkTarget(target.to_owned());
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return Err(refused());
    }
    let parent = link
        .trim_end_matches('/')
        .rsplit_once('/')
        .map_or("", |p| p.0);
    let depth = depth_after(0, parent).map_err(|_| refused())?;
    depth_after(depth, target)
        .map(|_| ())
        .map_err(|_| refused())
}

/// Checks that `access`, granted by the grant at `grant_path`, covers
/// `need`.
///
/// # Errors
///
/// Returns [`Refusal::ReadOnly`] for a write under a read-only grant.
pub fn check_access(access: Access, grant_path: &str, need: Need) -> Result<(), Refusal> {
    match (access, need) {
        (Access::Read, Need::Write) => Err(Refusal::ReadOnly(grant_path.to_owned())),
        _ => Ok(()),
    }
}

/// Checks that a write ending at byte `end` keeps the file within `max`
/// bytes.
///
/// # Errors
///
/// Returns [`Refusal::FileTooLarge`] when it does not.
pub fn check_file_size(end: u64, max: u64) -> Result<(), Refusal> {
    if end > max {
        return Err(Refusal::FileTooLarge { size: end, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_paths_are_canonical_and_stay_inside() {
        let ok: &[(&str, &str)] = &[
            ("inbox", "inbox"),
            ("inbox/", "inbox"),
            ("data/in", "data/in"),
            ("café", "café"),
        ];
        for (path, want) in ok {
            assert_eq!(canonical_grant_path(path).unwrap(), *want, "{path:?}");
        }
        let long = "a".repeat(MAX_GRANT_PATH_BYTES + 1);
        let bad: &[(&str, GrantPathError)] = &[
            ("", GrantPathError::Empty),
            ("/", GrantPathError::Absolute),
            ("/etc", GrantPathError::Absolute),
            ("..", GrantPathError::BadSegment),
            ("../other", GrantPathError::BadSegment),
            ("a/../b", GrantPathError::BadSegment),
            ("./a", GrantPathError::BadSegment),
            ("a//b", GrantPathError::BadSegment),
            ("a\\b", GrantPathError::BadCharacter),
            ("a\0b", GrantPathError::BadCharacter),
            ("a\u{202e}b", GrantPathError::BadCharacter),
            ("cafe\u{301}", GrantPathError::NotNfc),
            (&long, GrantPathError::TooLong(long.len())),
        ];
        for (path, want) in bad {
            assert_eq!(canonical_grant_path(path).unwrap_err(), *want, "{path:?}");
        }
    }

    #[test]
    fn nesting_is_on_whole_segments() {
        assert!(nested("a", "a"));
        assert!(nested("a", "a/b"));
        assert!(nested("a/b", "a"));
        assert!(!nested("a", "ab"));
        assert!(!nested("a/b", "a/c"));
    }

    #[test]
    fn paths_may_not_climb_above_their_directory() {
        for ok in [
            "a", "a/b", "a/../b", "./a", "a/./b/..", "", ".", "a//b", "a/",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok:?}");
        }
        let long = "a/".repeat(MAX_PATH_BYTES);
        let bad: &[(&str, Refusal)] = &[
            ("..", Refusal::LeavesDirectory),
            ("../x", Refusal::LeavesDirectory),
            ("a/../../x", Refusal::LeavesDirectory),
            ("a/b/../../..", Refusal::LeavesDirectory),
            ("/etc/passwd", Refusal::Absolute),
            ("/", Refusal::Absolute),
            ("a\0b", Refusal::Nul),
            (&long, Refusal::TooLong(long.len())),
        ];
        for (path, want) in bad {
            assert_eq!(check_path(path).as_ref(), Err(want), "{path:?}");
        }
    }

    #[test]
    fn symlink_targets_stay_inside_from_the_links_directory() {
        assert_eq!(check_symlink_target("link", "a.txt"), Ok(()));
        assert_eq!(check_symlink_target("sub/link", "../a.txt"), Ok(()));
        assert_eq!(check_symlink_target("sub/deeper/link", "../../a"), Ok(()));
        for (link, target) in [
            ("link", "../a.txt"),
            ("link", "/etc/passwd"),
            ("sub/link", "../../a"),
            ("link", ""),
            ("link", "a\0"),
        ] {
            assert!(
                matches!(
                    check_symlink_target(link, target),
                    Err(Refusal::SymlinkTarget(_))
                ),
                "{link:?} -> {target:?}"
            );
        }
    }

    #[test]
    fn read_grants_refuse_writes_only() {
        assert_eq!(check_access(Access::Read, "in", Need::Read), Ok(()));
        assert_eq!(check_access(Access::ReadWrite, "out", Need::Write), Ok(()));
        assert_eq!(
            check_access(Access::Read, "in", Need::Write),
            Err(Refusal::ReadOnly("in".into()))
        );
    }

    #[test]
    fn file_size_is_checked_at_the_end_of_the_write() {
        assert_eq!(check_file_size(10, 10), Ok(()));
        assert_eq!(
            check_file_size(11, 10),
            Err(Refusal::FileTooLarge { size: 11, max: 10 })
        );
    }
}

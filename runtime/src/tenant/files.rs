//! A tenant's files directory and the granted directories inside it.
//!
//! Each tenant has one directory, `<data-dir>/files/<tenant>/`, and an
//! agent's `[[grants.files]]` entries name sub-directories of it. A granted
//! directory that does not exist yet is created (mode 0700) when the agent
//! first runs, so that an operator grants a directory by writing the
//! manifest, and an agent with a read grant of a new directory simply finds
//! it empty.
//!
//! Every component of a granted path is opened without following symbolic
//! links. Two agents of one tenant may hold grants on nested directories
//! (`data` read-write for one, `data/in` read for the other); the first
//! could replace `data/in` with a link elsewhere, and following it would
//! hand the second agent a directory it was never granted. Such a link
//! fails the invocation instead, naming the grant.

use std::{
    io,
    os::{fd::OwnedFd, unix::fs::DirBuilderExt as _},
    path::{Path, PathBuf},
};

use rustix::fs::{CWD, Mode, OFlags, mkdirat, openat};
use thiserror::Error;
use warden_host_api::wasi_filesystem::{FilesGrant, GrantedDir};

use super::TenantId;

/// A granted directory could not be opened.
#[derive(Debug, Error)]
#[error("cannot open files grant {path:?} of tenant {tenant}: {reason}")]
pub struct FilesDirError {
    /// The tenant.
    pub tenant: TenantId,
    /// The grant's path.
    pub path: String,
    /// What went wrong and how to fix it.
    pub reason: String,
}

/// `tenant`'s files directory under `data_dir`.
pub fn files_dir(data_dir: &Path, tenant: &TenantId) -> PathBuf {
    data_dir.join("files").join(tenant.as_str())
}

/// Opens (creating where missing) every directory of `grant` inside
/// `tenant`'s files directory, ready to preopen.
///
/// # Errors
///
/// Returns [`FilesDirError`] naming the grant when a component is a
/// symbolic link or not a directory, or the file system refuses.
pub fn open_granted(
    data_dir: &Path,
    tenant: &TenantId,
    grant: &FilesGrant,
) -> Result<Vec<GrantedDir>, FilesDirError> {
    if grant.is_empty() {
        return Ok(Vec::new());
    }
    let error = |path: &str, reason: String| FilesDirError {
        tenant: tenant.clone(),
        path: path.to_owned(),
        reason,
    };
    let root_path = files_dir(data_dir, tenant);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root_path)
        .map_err(|e| error("", format!("cannot create {}: {e}", root_path.display())))?;
    let root = open_dir(CWD, &root_path)
        .map_err(|e| error("", format!("cannot open {}: {e}", root_path.display())))?;

    let mut out = Vec::with_capacity(grant.dirs.len());
    for dir in &grant.dirs {
        let mut current = root
            .try_clone()
            .map_err(|e| error(&dir.path, e.to_string()))?;
        for name in dir.path.split('/') {
            match mkdirat(&current, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(error(&dir.path, format!("cannot create {name:?}: {e}")));
                }
            }
            current = open_dir(&current, Path::new(name)).map_err(|e| {
                let reason = match e.raw_os_error() {
                    Some(code)
                        if code == rustix::io::Errno::LOOP.raw_os_error()
                            || code == rustix::io::Errno::NOTDIR.raw_os_error() =>
                    {
                        format!("{name:?} is a symbolic link or not a directory; replace it with a directory")
                    }
                    _ => format!("cannot open {name:?}: {e}"),
                };
                error(&dir.path, reason)
            })?;
        }
        out.push(GrantedDir {
            grant: dir.clone(),
            dir: std::fs::File::from(current),
        });
    }
    Ok(out)
}

/// Opens the directory `path` under `at` without following a symbolic link
/// in its last component.
fn open_dir(at: impl rustix::fd::AsFd, path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(openat(at, path, flags, Mode::empty())?)
}

#[cfg(test)]
mod tests {
    use warden_host_api::{warden_agent::Access, wasi_filesystem::DirGrant};

    use super::*;

    fn grant(paths: &[&str]) -> FilesGrant {
        FilesGrant {
            dirs: paths
                .iter()
                .map(|p| DirGrant {
                    path: (*p).to_owned(),
                    access: Access::Read,
                })
                .collect(),
        }
    }

    #[test]
    fn creates_missing_granted_directories() {
        let data = tempfile::tempdir().unwrap();
        let tenant = TenantId::new("acme").unwrap();
        let dirs = open_granted(data.path(), &tenant, &grant(&["inbox", "a/b"])).unwrap();
        assert_eq!(dirs.len(), 2);
        assert!(files_dir(data.path(), &tenant).join("a/b").is_dir());
    }

    #[test]
    fn refuses_a_symbolic_link_on_a_granted_path() {
        let data = tempfile::tempdir().unwrap();
        let tenant = TenantId::new("acme").unwrap();
        let root = files_dir(data.path(), &tenant);
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::os::unix::fs::symlink(data.path(), root.join("data/in")).unwrap();
        let err = open_granted(data.path(), &tenant, &grant(&["data/in"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("files grant \"data/in\" of tenant acme"),
            "{err}"
        );
        assert!(err.contains("symbolic link"), "{err}");
    }
}

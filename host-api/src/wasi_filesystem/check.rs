//! The checks every `wasi:filesystem` call goes through before wasmtime-wasi
//! does the work: descriptor lookup, the per-invocation call count, the
//! path and access decision, the read-only symbolic link resolution, and
//! the audit event.

use std::{io, path::Path, sync::Arc};

use wasmtime::component::Resource;
use wasmtime_wasi::{
    filesystem::{Descriptor, WasiFilesystemCtxView},
    p2::{
        DynOutputStream, FsError, FsResult,
        bindings::filesystem::types::{ErrorCode, HostDescriptor},
    },
};

use super::{
    DescInfo, FilesCtxView, INTERFACE,
    scope::{Need, Refusal, check_access, check_path, check_symlink_target},
    stream::{CheckedWrite, Position},
};
use crate::{
    audit::{self, Blame, Decision, EventBody},
    warden_agent::Access,
};

/// One call as it is recorded: the WIT function and the path the guest
/// named, joined to where it was resolved from.
pub(super) struct Call {
    pub(super) function: &'static str,
    pub(super) resource: String,
}

impl FilesCtxView<'_> {
    /// wasmtime-wasi's view over the same table, for the work itself.
    pub(super) fn inner(&mut self) -> WasiFilesystemCtxView<'_> {
        WasiFilesystemCtxView {
            ctx: &mut self.ctx.wasi,
            table: self.table,
        }
    }

    pub(super) fn info(&self, fd: &Resource<Descriptor>) -> FsResult<DescInfo> {
        self.ctx
            .descriptors
            .get(&fd.rep())
            .cloned()
            .ok_or_else(|| ErrorCode::BadDescriptor.into())
    }

    /// A directory descriptor's info and its handle, for resolving paths.
    pub(super) fn dir(
        &self,
        fd: &Resource<Descriptor>,
    ) -> FsResult<(DescInfo, Arc<std::fs::File>)> {
        let info = self.info(fd)?;
        match self.table.get(fd)? {
            Descriptor::Dir(d) => Ok((info, Arc::clone(&d.dir))),
            Descriptor::File(_) => Err(ErrorCode::NotDirectory.into()),
        }
    }

    /// A file descriptor's info and its handle.
    pub(super) fn file(
        &self,
        fd: &Resource<Descriptor>,
    ) -> FsResult<(DescInfo, Arc<std::fs::File>)> {
        let info = self.info(fd)?;
        match self.table.get(fd)? {
            Descriptor::File(f) => Ok((info, Arc::clone(&f.file))),
            Descriptor::Dir(_) => Err(ErrorCode::BadDescriptor.into()),
        }
    }

    /// Counts a recorded call against `max_calls`; past it the invocation
    /// traps, so that a loop of calls cannot grow the audit trail without
    /// bound.
    pub(super) fn count(&mut self) -> FsResult<()> {
        self.ctx.calls = self.ctx.calls.saturating_add(1);
        let max = self.ctx.limits.max_calls;
        if self.ctx.calls > max {
            self.ctx.shared.hit("max_host_calls");
            return Err(FsError::trap(wasmtime::Error::msg(format!(
                "max_host_calls ({max}) reached by wasi:filesystem calls"
            ))));
        }
        Ok(())
    }

    /// Records one decision. An audit failure traps the invocation (fail
    /// closed: the call must not go ahead unrecorded).
    pub(super) fn record(
        &self,
        call: &Call,
        decision: Decision,
        reason: String,
        blame: Option<Blame>,
    ) -> FsResult<()> {
        let body = EventBody::HostCall {
            interface: INTERFACE.to_owned(),
            function: call.function.to_owned(),
            resource: audit::bounded_resource(&call.resource),
            decision,
            reason,
            blame,
            value_digest: None,
            old_value_digest: None,
        };
        audit::emit(&*self.ctx.shared.audit, &self.ctx.shared.scope, body)
            .map_err(|e| FsError::trap(wasmtime::Error::new(e)))
    }

    /// Counts and records an allowed call under `grant`, and makes its
    /// event durable before the call goes ahead: a file changed on disk is
    /// an effect outside the invocation, which no event may trail.
    pub(super) fn allow(&mut self, call: &Call, grant: usize) -> FsResult<()> {
        self.count()?;
        let reason = self.allowed_by(grant);
        self.record(call, Decision::Allow, reason, None)?;
        self.ctx
            .shared
            .audit
            .flush()
            .map_err(|e| FsError::trap(wasmtime::Error::new(e)))
    }

    fn allowed_by(&self, grant: usize) -> String {
        let g = &self.ctx.grants[grant];
        let access = match g.access {
            Access::Read => "read",
            Access::ReadWrite => "read-write",
        };
        format!("files grant {:?} ({access})", g.path)
    }

    /// Counts and records a refusal the guest caused, and returns the error
    /// code it gets: `file-too-large` for the size limit, `not-permitted`
    /// for everything else.
    pub(super) fn refuse(&mut self, call: &Call, refusal: Refusal) -> FsError {
        tracing::debug!(
            tenant = %self.ctx.shared.scope.tenant,
            function = call.function,
            reason = %refusal,
            "wasi:filesystem call refused"
        );
        if let Err(trap) = self.count() {
            return trap;
        }
        let code = match refusal {
            Refusal::FileTooLarge { .. } => {
                self.ctx.shared.hit("max_file_bytes");
                ErrorCode::FileTooLarge
            }
            _ => ErrorCode::NotPermitted,
        };
        match self.record(
            call,
            Decision::Deny,
            refusal.to_string(),
            Some(Blame::Guest),
        ) {
            Ok(()) => code.into(),
            Err(trap) => trap,
        }
    }

    /// Checks `path` on directory `fd` for a call needing `need`, following
    /// a final symbolic link when `follow` is set. Returns the directory's
    /// info and the call to record.
    pub(super) fn check_at(
        &mut self,
        fd: &Resource<Descriptor>,
        function: &'static str,
        path: &str,
        need: Need,
        follow: bool,
    ) -> FsResult<(DescInfo, Call)> {
        let (info, dir) = self.dir(fd)?;
        let call = Call {
            function,
            resource: format!("{}/{path}", info.path),
        };
        let grant = &self.ctx.grants[info.grant];
        let checked = check_path(path)
            .and_then(|()| check_access(grant.access, &grant.path, need))
            .and_then(|()| resolve_inside(&dir, path, follow));
        match checked {
            Ok(()) => Ok((info, call)),
            Err(refusal) => Err(self.refuse(&call, refusal)),
        }
    }

    /// The check and record for `write-via-stream` and `append-via-stream`.
    pub(super) fn write_stream(
        &mut self,
        fd: Resource<Descriptor>,
        function: &'static str,
        position: Position,
    ) -> FsResult<Resource<DynOutputStream>> {
        let (info, file) = self.file(&fd)?;
        let call = Call {
            function,
            resource: info.path.clone(),
        };
        let grant = &self.ctx.grants[info.grant];
        if let Err(refusal) = check_access(grant.access, &grant.path, Need::Write) {
            return Err(self.refuse(&call, refusal));
        }
        self.allow(&call, info.grant)?;
        let stream = match position {
            Position::At(offset) => {
                HostDescriptor::write_via_stream(&mut self.inner(), fd, offset)?
            }
            Position::Append => HostDescriptor::append_via_stream(&mut self.inner(), fd)?,
        };
        let inner: DynOutputStream = self.table.delete(stream)?;
        let checked = CheckedWrite::new(
            inner,
            file,
            position,
            self.ctx.limits.max_file_bytes,
            Arc::clone(&self.ctx.shared),
            info.path,
        );
        let stream: DynOutputStream = Box::new(checked);
        Ok(self.table.push(stream)?)
    }
}

/// Resolves the symbolic links on `path` inside `dir`, reading only, and
/// refuses a path that a link leads outside of. The sandbox below would
/// refuse it too; checking first lets the refusal carry its reason.
///
/// A link swapped in between this check and the call (by another
/// invocation of the same tenant) still cannot lead out: the call itself
/// resolves in the sandbox, and then fails with `not-permitted` after an
/// "allow" event.
fn resolve_inside(dir: &std::fs::File, path: &str, follow: bool) -> Result<(), Refusal> {
    let trimmed = path.trim_end_matches('/');
    let parent = trimmed.rsplit_once('/').map_or("", |(p, _)| p);
    if !parent.is_empty()
        && let Err(e) = cap_primitives::fs::canonicalize(dir, Path::new(parent))
        && is_escape(&e)
    {
        return Err(Refusal::SymlinkEscapes);
    }
    if !follow || trimmed.is_empty() {
        return Ok(());
    }
    let last = Path::new(trimmed);
    let Ok(meta) = cap_primitives::fs::stat(dir, last, cap_primitives::fs::FollowSymlinks::No)
    else {
        return Ok(());
    };
    if !meta.file_type().is_symlink() {
        return Ok(());
    }
    match cap_primitives::fs::canonicalize(dir, last) {
        Ok(_) => Ok(()),
        Err(e) if is_escape(&e) => Err(Refusal::SymlinkEscapes),
        // A dangling link: following it (to create its target) must not
        // lead out either, so its text is checked like a new link's.
        Err(_) => {
            let target = cap_primitives::fs::read_link_contents(dir, last)
                .map_err(|_| Refusal::SymlinkEscapes)?;
            let target = target.to_str().ok_or(Refusal::SymlinkEscapes)?;
            check_symlink_target(trimmed, target).map_err(|_| Refusal::SymlinkEscapes)
        }
    }
}

/// Whether `e` is the sandbox's "a path led outside" refusal rather than
/// an error from the operating system.
fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
}

/// `base` joined with `path`, `.` and `..` applied (the path has already
/// passed [`check_path`], so `..` never climbs above `base`).
pub(super) fn join_normalised(base: &str, path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    if out.is_empty() {
        base.to_owned()
    } else {
        format!("{base}/{}", out.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opened_paths_are_recorded_normalised() {
        assert_eq!(join_normalised("/out", "a.txt"), "/out/a.txt");
        assert_eq!(join_normalised("/out", "./sub/../b"), "/out/b");
        assert_eq!(join_normalised("/out", "."), "/out");
        assert_eq!(join_normalised("/out", ""), "/out");
    }
}

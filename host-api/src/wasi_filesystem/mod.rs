//! Host side of `wasi:filesystem`: granted directories of the tenant's files
//! directory, every open, write, rename and delete checked and recorded.
//!
//! Guests use the standard `wasi:filesystem/types` and `preopens`
//! interfaces, so Rust's `std::fs` works unchanged. wasmtime-wasi does the
//! file system work, with its sandboxed path resolution (cap-std's
//! `cap-primitives`): no path, `..` or symbolic link resolved through a
//! directory descriptor can leave that directory. warden wraps it: the
//! [`FilesCtxView`] implements the generated Host traits and, for every
//! call, in this order (see `check.rs`):
//!
//! 1. counts it against the invocation's `max_host_calls`;
//! 2. checks the guest's path as text ([`scope::check_path`]: relative,
//!    never above the directory) and the grant's access
//!    ([`scope::check_access`]);
//! 3. resolves the path's symbolic links inside the directory, reading
//!    only, so that a link planted to lead outside is refused with its
//!    reason rather than failing later in the sandbox;
//! 4. records the decision in the tenant's audit stream;
//! 5. hands the call to wasmtime-wasi.
//!
//! Each granted directory is preopened at `/` plus its grant path (grant
//! `inbox` is `/inbox` in the guest). A read grant refuses every mutation;
//! renames and hard links must have both ends under read-write grants.
//!
//! # What is recorded
//!
//! One event per open, directory creation or removal, unlink, rename, link,
//! symbolic link, truncation or time change, allowed or refused. Reads of
//! file contents and metadata are not recorded one by one (their open is);
//! refused ones are. Writes are summed: the first write on a descriptor, or
//! the creation of a write stream, is recorded before any byte lands, and
//! the bytes written through it are recorded in one more event when the
//! guest drops it (or the invocation ends). A guest writing one byte at a
//! time therefore leaves two events per descriptor, not one per byte.
//!
//! # Limits
//!
//! [`FilesLimits::max_file_bytes`] bounds every file a write, a stream or a
//! truncation would grow; past it the call fails with `file-too-large` and
//! one refusal event. Recorded calls count against
//! [`FilesLimits::max_calls`]; past it the invocation traps.
//!
//! Absolute paths that name no preopened directory (`/etc/passwd` from
//! Rust's `std::fs`) never reach the host: the guest's libc refuses them
//! itself. The same path sent over the raw interface is refused and
//! recorded.

mod check;
mod host;
pub mod scope;
mod stream;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::{
    FsPerms, OpenMode,
    filesystem::{Dir, WasiFilesystemCtx},
};

use crate::{
    audit::{self, AuditSink, Decision, EventBody},
    scope::InstanceScope,
    warden_agent::Access,
};
pub use scope::{DirGrant, FilesGrant};

/// The interface name recorded in audit events.
pub const INTERFACE: &str = "wasi:filesystem/types";

/// Default largest file a guest may write: 16 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Default cap on recorded filesystem calls per invocation.
pub const DEFAULT_MAX_CALLS: u32 = 10_000;

/// Limits on what one invocation may do through `wasi:filesystem`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilesLimits {
    /// Largest size, in bytes, a write, write stream or truncation may
    /// grow a file to. Default [`DEFAULT_MAX_FILE_BYTES`] (16 MiB).
    pub max_file_bytes: u64,
    /// Most recorded calls (opens, mutations, refusals) per invocation;
    /// past it the invocation traps. Default [`DEFAULT_MAX_CALLS`].
    pub max_calls: u32,
}

impl Default for FilesLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_calls: DEFAULT_MAX_CALLS,
        }
    }
}

/// A granted directory, opened by the runtime inside the tenant's files
/// directory, ready to preopen.
#[derive(Debug)]
pub struct GrantedDir {
    /// The grant it was opened for.
    pub grant: DirGrant,
    /// The open directory.
    pub dir: std::fs::File,
}

/// What the host remembers of one descriptor the guest holds.
#[derive(Clone, Debug)]
struct DescInfo {
    /// Index of the grant it lies under.
    grant: usize,
    /// Its path as the guest reached it, for audit events: the preopen's
    /// guest path joined with the (normalised) paths opened from it.
    path: String,
    /// Bytes written through `descriptor.write` so far.
    written: u64,
    /// Whether the first write was recorded.
    write_recorded: bool,
}

/// State shared with the write streams the guest holds, which outlive any
/// one borrow of the [`FilesCtx`].
struct Shared {
    scope: Arc<InstanceScope>,
    audit: Arc<dyn AuditSink>,
    limit_hits: Mutex<BTreeMap<&'static str, u32>>,
}

impl Shared {
    fn hit(&self, limit: &'static str) {
        *self
            .limit_hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(limit)
            .or_default() += 1;
    }

    /// Records the bytes written through one descriptor or stream, after
    /// the fact. A failure cannot stop a write already made; it is logged.
    fn record_written(&self, function: &str, resource: &str, bytes: u64) {
        let body = EventBody::HostCall {
            interface: INTERFACE.to_owned(),
            function: function.to_owned(),
            resource: audit::bounded_resource(resource),
            decision: Decision::Allow,
            reason: format!("{bytes} bytes written"),
            blame: None,
            value_digest: None,
            old_value_digest: None,
        };
        if let Err(e) = audit::emit(&*self.audit, &self.scope, body) {
            tracing::error!(tenant = %self.scope.tenant, error = %e, "cannot record bytes written");
        }
    }
}

/// Per-instance state of `wasi:filesystem`.
pub struct FilesCtx {
    shared: Arc<Shared>,
    limits: FilesLimits,
    grants: Vec<DirGrant>,
    preopens: Vec<(Dir, usize)>,
    descriptors: HashMap<u32, DescInfo>,
    /// wasmtime-wasi's own context, with no preopens: the calls it serves
    /// reach only descriptors warden pushed.
    wasi: WasiFilesystemCtx,
    calls: u32,
}

impl fmt::Debug for FilesCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilesCtx")
            .field("grants", &self.grants)
            .field("limits", &self.limits)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl FilesCtx {
    /// State for one instance running under `scope`, with `dirs` opened by
    /// the runtime for the agent's files grant.
    pub fn new(
        scope: Arc<InstanceScope>,
        dirs: Vec<GrantedDir>,
        audit: Arc<dyn AuditSink>,
        limits: FilesLimits,
    ) -> Self {
        let mut grants = Vec::with_capacity(dirs.len());
        let mut preopens = Vec::with_capacity(dirs.len());
        for (i, GrantedDir { grant, dir }) in dirs.into_iter().enumerate() {
            let (perms, mode) = match grant.access {
                Access::Read => (FsPerms::ReadOnly, OpenMode::READ),
                Access::ReadWrite => (FsPerms::ReadWrite, OpenMode::READ | OpenMode::WRITE),
            };
            // wasmtime-wasi enforces these perms too, a second check
            // behind warden's own.
            preopens.push((Dir::new(dir, perms, mode, false), i));
            grants.push(grant);
        }
        Self {
            shared: Arc::new(Shared {
                scope,
                audit,
                limit_hits: Mutex::new(BTreeMap::new()),
            }),
            limits,
            grants,
            preopens,
            descriptors: HashMap::new(),
            wasi: WasiFilesystemCtx::default(),
            calls: 0,
        }
    }

    /// State for an agent with no files grant.
    pub fn empty(scope: Arc<InstanceScope>, audit: Arc<dyn AuditSink>) -> Self {
        Self::new(scope, Vec::new(), audit, FilesLimits::default())
    }

    /// The [`FilesLimits`] this invocation reached, by field name, with how
    /// many calls each refused.
    pub fn limit_hits(&self) -> Vec<(&'static str, u32)> {
        let hits = self
            .shared
            .limit_hits
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        hits.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

impl Drop for FilesCtx {
    /// Records the bytes written through descriptors the guest still held
    /// when the invocation ended.
    fn drop(&mut self) {
        for info in self.descriptors.values() {
            if info.written > 0 {
                self.shared
                    .record_written("descriptor.write", &info.path, info.written);
            }
        }
    }
}

/// The borrowed pair the Host traits are implemented on: an instance's
/// [`FilesCtx`] and its resource table.
pub struct FilesCtxView<'a> {
    /// The instance's files state.
    pub ctx: &'a mut FilesCtx,
    /// The store's resource table, shared with the other WASI interfaces.
    pub table: &'a mut ResourceTable,
}

impl fmt::Debug for FilesCtxView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilesCtxView")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

/// Implemented by a store's data type to lend out its [`FilesCtx`] and
/// resource table.
pub trait FilesView: Send {
    /// The instance's `wasi:filesystem` state.
    fn files(&mut self) -> FilesCtxView<'_>;
}

struct HasFiles;

impl HasData for HasFiles {
    type Data<'a> = FilesCtxView<'a>;
}

/// Adds `wasi:filesystem/types` and `wasi:filesystem/preopens` to `linker`,
/// served by warden's checked wrapper. Link the other WASI interfaces
/// separately, without wasmtime-wasi's own filesystem.
///
/// # Scope
///
/// Every path is checked against the instance's granted directories and
/// their access, and every open, mutation and refusal is recorded in the
/// audit stream (see the module docs for what is summed).
///
/// # Errors
///
/// Fails when the linker already defines these imports.
pub fn add_to_linker<T: FilesView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};
    types::add_to_linker::<T, HasFiles>(linker, T::files)?;
    preopens::add_to_linker::<T, HasFiles>(linker, T::files)?;
    Ok(())
}

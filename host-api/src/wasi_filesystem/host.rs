//! Trait impls for the `wasi:filesystem` bindings, one block per WIT
//! interface in WIT order: each call is checked and recorded (`check.rs`),
//! then handed to wasmtime-wasi's own implementation.

use wasmtime::component::Resource;
use wasmtime_wasi::{
    filesystem::Descriptor,
    p2::{
        DynInputStream, DynOutputStream, FsError, FsResult,
        bindings::filesystem::{
            preopens,
            types::{
                self, DescriptorFlags, ErrorCode, HostDescriptor, HostDirectoryEntryStream,
                OpenFlags, PathFlags,
            },
        },
    },
};

use super::{
    DescInfo, FilesCtxView,
    check::{Call, join_normalised},
    scope::{Need, check_access, check_file_size, check_symlink_target},
    stream::Position,
};

impl types::Host for FilesCtxView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.inner(), err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.inner(), err)
    }
}

impl HostDescriptor for FilesCtxView<'_> {
    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        HostDescriptor::read_via_stream(&mut self.inner(), fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        self.write_stream(fd, "write-via-stream", Position::At(offset))
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        self.write_stream(fd, "append-via-stream", Position::Append)
    }

    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        HostDescriptor::advise(&mut self.inner(), fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        HostDescriptor::sync_data(&mut self.inner(), fd).await
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        HostDescriptor::get_flags(&mut self.inner(), fd).await
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorType> {
        HostDescriptor::get_type(&mut self.inner(), fd).await
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: types::Filesize) -> FsResult<()> {
        let (info, _) = self.file(&fd)?;
        let call = Call {
            function: "set-size",
            resource: info.path.clone(),
        };
        let grant = &self.ctx.grants[info.grant];
        let checked = check_access(grant.access, &grant.path, Need::Write)
            .and_then(|()| check_file_size(size, self.ctx.limits.max_file_bytes));
        if let Err(refusal) = checked {
            return Err(self.refuse(&call, refusal));
        }
        self.allow(&call, info.grant)?;
        HostDescriptor::set_size(&mut self.inner(), fd, size).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        let info = self.info(&fd)?;
        let call = Call {
            function: "set-times",
            resource: info.path.clone(),
        };
        let grant = &self.ctx.grants[info.grant];
        if let Err(refusal) = check_access(grant.access, &grant.path, Need::Write) {
            return Err(self.refuse(&call, refusal));
        }
        self.allow(&call, info.grant)?;
        HostDescriptor::set_times(&mut self.inner(), fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        HostDescriptor::read(&mut self.inner(), fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        let rep = fd.rep();
        let (info, _) = self.file(&fd)?;
        let call = Call {
            function: "write",
            resource: info.path.clone(),
        };
        let grant = &self.ctx.grants[info.grant];
        let end = offset.saturating_add(buf.len() as u64);
        let checked = check_access(grant.access, &grant.path, Need::Write)
            .and_then(|()| check_file_size(end, self.ctx.limits.max_file_bytes));
        if let Err(refusal) = checked {
            return Err(self.refuse(&call, refusal));
        }
        // Only the first write on a descriptor is recorded before it lands;
        // the bytes of all of them are summed in one event when the
        // descriptor is dropped.
        if !info.write_recorded {
            self.allow(&call, info.grant)?;
        }
        let written = HostDescriptor::write(&mut self.inner(), fd, buf, offset).await?;
        if let Some(info) = self.ctx.descriptors.get_mut(&rep) {
            info.write_recorded = true;
            info.written = info.written.saturating_add(written);
        }
        Ok(written)
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        HostDescriptor::read_directory(&mut self.inner(), fd).await
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        HostDescriptor::sync(&mut self.inner(), fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let (info, call) = self.check_at(&fd, "create-directory-at", &path, Need::Write, false)?;
        self.allow(&call, info.grant)?;
        HostDescriptor::create_directory_at(&mut self.inner(), fd, path).await
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorStat> {
        HostDescriptor::stat(&mut self.inner(), fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        self.check_at(&fd, "stat-at", &path, Need::Read, follow)?;
        HostDescriptor::stat_at(&mut self.inner(), fd, path_flags, path).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        let (info, call) = self.check_at(&fd, "set-times-at", &path, Need::Write, follow)?;
        self.allow(&call, info.grant)?;
        HostDescriptor::set_times_at(&mut self.inner(), fd, path_flags, path, atim, mtim).await
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        // A hard link makes one file reachable from two places: both must
        // be writable grants, or a read-only file would gain a writable
        // name.
        let follow = old_path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        let (from, _) = self.check_at(&fd, "link-at", &old_path, Need::Write, follow)?;
        let (_, call) = self.check_at(&new_fd, "link-at", &new_path, Need::Write, false)?;
        let call = Call {
            resource: format!("{}/{old_path} -> {}", from.path, call.resource),
            ..call
        };
        self.allow(&call, from.grant)?;
        HostDescriptor::link_at(
            &mut self.inner(),
            fd,
            old_path_flags,
            old_path,
            new_fd,
            new_path,
        )
        .await
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let writes = oflags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE)
            || flags.contains(DescriptorFlags::WRITE);
        let need = if writes { Need::Write } else { Need::Read };
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        let (info, call) = self.check_at(&fd, "open-at", &path, need, follow)?;
        self.allow(&call, info.grant)?;
        let opened = HostDescriptor::open_at(
            &mut self.inner(),
            fd,
            path_flags,
            path.clone(),
            oflags,
            flags,
        )
        .await?;
        self.ctx.descriptors.insert(
            opened.rep(),
            DescInfo {
                grant: info.grant,
                path: join_normalised(&info.path, &path),
                written: 0,
                write_recorded: false,
            },
        );
        Ok(opened)
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        if let Some(info) = self.ctx.descriptors.remove(&fd.rep())
            && info.written > 0
        {
            self.ctx
                .shared
                .record_written("descriptor.write", &info.path, info.written);
        }
        HostDescriptor::drop(&mut self.inner(), fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        self.check_at(&fd, "readlink-at", &path, Need::Read, false)?;
        HostDescriptor::readlink_at(&mut self.inner(), fd, path).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let (info, call) = self.check_at(&fd, "remove-directory-at", &path, Need::Write, false)?;
        self.allow(&call, info.grant)?;
        HostDescriptor::remove_directory_at(&mut self.inner(), fd, path).await
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        // Both ends must be writable grants: moving a file out of a
        // read-only directory deletes it there, moving one in replaces what
        // was granted read-only.
        let (from, _) = self.check_at(&fd, "rename-at", &old_path, Need::Write, false)?;
        let (_, call) = self.check_at(&new_fd, "rename-at", &new_path, Need::Write, false)?;
        let call = Call {
            resource: format!("{}/{old_path} -> {}", from.path, call.resource),
            ..call
        };
        self.allow(&call, from.grant)?;
        HostDescriptor::rename_at(&mut self.inner(), fd, old_path, new_fd, new_path).await
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let (info, call) = self.check_at(&fd, "symlink-at", &dest_path, Need::Write, false)?;
        let call = Call {
            resource: format!("{} -> {src_path}", call.resource),
            ..call
        };
        if let Err(refusal) = check_symlink_target(&dest_path, &src_path) {
            return Err(self.refuse(&call, refusal));
        }
        self.allow(&call, info.grant)?;
        HostDescriptor::symlink_at(&mut self.inner(), fd, src_path, dest_path).await
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let (info, call) = self.check_at(&fd, "unlink-file-at", &path, Need::Write, false)?;
        self.allow(&call, info.grant)?;
        HostDescriptor::unlink_file_at(&mut self.inner(), fd, path).await
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        HostDescriptor::is_same_object(&mut self.inner(), a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash(&mut self.inner(), fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        self.check_at(&fd, "metadata-hash-at", &path, Need::Read, follow)?;
        HostDescriptor::metadata_hash_at(&mut self.inner(), fd, path_flags, path).await
    }
}

impl HostDirectoryEntryStream for FilesCtxView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        HostDirectoryEntryStream::read_directory_entry(&mut self.inner(), stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.inner(), stream)
    }
}

impl preopens::Host for FilesCtxView<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut out = Vec::with_capacity(self.ctx.preopens.len());
        for (dir, grant) in &self.ctx.preopens {
            let fd = self.table.push(Descriptor::Dir(dir.clone()))?;
            let path = self.ctx.grants[*grant].guest_path();
            self.ctx.descriptors.insert(
                fd.rep(),
                DescInfo {
                    grant: *grant,
                    path: path.clone(),
                    written: 0,
                    write_recorded: false,
                },
            );
            out.push((fd, path));
        }
        Ok(out)
    }
}

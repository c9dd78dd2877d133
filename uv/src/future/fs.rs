//! The file-system operations of [`Fs`] as futures, each one line over
//! [`request`]: the operation runs on the thread pool; dropping its future before
//! it completes cancels it (`uv_cancel`) if no thread has taken it yet, else it
//! completes and its result is dropped.
//!
//! Any `Fs` function of the callback form `Fs::op(&loop, args…, callback) ->
//! Result<Request>` becomes a future the same way:
//! `uv::future::request(|done| uv::Fs::op(&loop, args…, done))`.

use std::path::{Path, PathBuf};

use super::{request, RequestFuture};
use crate::loop_::LoopHandle;
use crate::{Fs, Stat};

/// [`Fs::stat`]: the metadata of `path`, following symbolic links.
pub fn stat(lp: &LoopHandle, path: impl AsRef<Path>) -> RequestFuture<Stat> {
    request(|done| Fs::stat(lp, path, done))
}

/// [`Fs::lstat`]: the metadata of `path` itself.
pub fn lstat(lp: &LoopHandle, path: impl AsRef<Path>) -> RequestFuture<Stat> {
    request(|done| Fs::lstat(lp, path, done))
}

/// [`Fs::unlink`]: removes a file.
pub fn unlink(lp: &LoopHandle, path: impl AsRef<Path>) -> RequestFuture<()> {
    request(|done| Fs::unlink(lp, path, done))
}

/// [`Fs::mkdir`]: makes a directory with `mode`.
pub fn mkdir(lp: &LoopHandle, path: impl AsRef<Path>, mode: i32) -> RequestFuture<()> {
    request(|done| Fs::mkdir(lp, path, mode, done))
}

/// [`Fs::rmdir`]: removes an empty directory.
pub fn rmdir(lp: &LoopHandle, path: impl AsRef<Path>) -> RequestFuture<()> {
    request(|done| Fs::rmdir(lp, path, done))
}

/// [`Fs::rename`]: renames `path` to `new_path`.
pub fn rename(
    lp: &LoopHandle,
    path: impl AsRef<Path>,
    new_path: impl AsRef<Path>,
) -> RequestFuture<()> {
    request(|done| Fs::rename(lp, path, new_path, done))
}

/// [`Fs::mkdtemp`]: makes a unique directory from `template` (ending in `XXXXXX`).
pub fn mkdtemp(lp: &LoopHandle, template: impl AsRef<Path>) -> RequestFuture<PathBuf> {
    request(|done| Fs::mkdtemp(lp, template, done))
}

/// [`Fs::realpath`]: the canonical path.
pub fn realpath(lp: &LoopHandle, path: impl AsRef<Path>) -> RequestFuture<PathBuf> {
    request(|done| Fs::realpath(lp, path, done))
}

/// [`Fs::readlink`]: the target of a symbolic link.
pub fn readlink(lp: &LoopHandle, path: impl AsRef<Path>) -> RequestFuture<PathBuf> {
    request(|done| Fs::readlink(lp, path, done))
}

/// [`Fs::access`]: checks the access `mode` to `path`.
pub fn access(lp: &LoopHandle, path: impl AsRef<Path>, mode: i32) -> RequestFuture<()> {
    request(|done| Fs::access(lp, path, mode, done))
}

/// [`Fs::chmod`]: changes the permissions of `path`.
pub fn chmod(lp: &LoopHandle, path: impl AsRef<Path>, mode: i32) -> RequestFuture<()> {
    request(|done| Fs::chmod(lp, path, mode, done))
}

/// [`Fs::link`]: makes a hard link `new_path` to `path`.
pub fn link(
    lp: &LoopHandle,
    path: impl AsRef<Path>,
    new_path: impl AsRef<Path>,
) -> RequestFuture<()> {
    request(|done| Fs::link(lp, path, new_path, done))
}

/// [`Fs::symlink`]: makes a symbolic link `new_path` to `path`.
pub fn symlink(
    lp: &LoopHandle,
    path: impl AsRef<Path>,
    new_path: impl AsRef<Path>,
    flags: i32,
) -> RequestFuture<()> {
    request(|done| Fs::symlink(lp, path, new_path, flags, done))
}

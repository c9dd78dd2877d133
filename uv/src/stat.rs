//! `Stat`: a file's metadata as libuv reports it (`uv_stat_t`), with typed times.

use std::time::{Duration, SystemTime};

use libuv_sys2 as sys;

/// A file's metadata (`uv_stat_t`): what `stat(2)` gives, the same on every
/// platform libuv runs on. Times are `SystemTime`s; a field the platform does not
/// fill is 0 (or `UNIX_EPOCH` for a time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stat {
    /// Device of the file.
    pub dev: u64,
    /// Type and permission bits (`S_IFMT`, `0o777`, ...).
    pub mode: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Device, for a device file.
    pub rdev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O block size.
    pub blksize: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// User-defined flags (BSD, macOS).
    pub flags: u64,
    /// Generation number (BSD, macOS).
    pub gen: u64,
    /// Last access.
    pub accessed: SystemTime,
    /// Last change of the contents.
    pub modified: SystemTime,
    /// Last change of the metadata.
    pub changed: SystemTime,
    /// Creation, where the platform records it.
    pub created: SystemTime,
}

impl Default for Stat {
    fn default() -> Self {
        Stat {
            dev: 0,
            mode: 0,
            nlink: 0,
            uid: 0,
            gid: 0,
            rdev: 0,
            ino: 0,
            size: 0,
            blksize: 0,
            blocks: 0,
            flags: 0,
            gen: 0,
            accessed: SystemTime::UNIX_EPOCH,
            modified: SystemTime::UNIX_EPOCH,
            changed: SystemTime::UNIX_EPOCH,
            created: SystemTime::UNIX_EPOCH,
        }
    }
}

fn time(t: &sys::uv_timespec_t) -> SystemTime {
    let nanos = u32::try_from(t.tv_nsec).unwrap_or(0).min(999_999_999);
    match u64::try_from(t.tv_sec) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::new(s, nanos),
        // Before 1970: seconds back, then the nanoseconds forward.
        Err(_) => {
            // `c_long` is 32 or 64 bits wide.
            #[allow(clippy::useless_conversion)]
            let back = Duration::from_secs(u64::from(t.tv_sec.unsigned_abs()));
            SystemTime::UNIX_EPOCH
                .checked_sub(back)
                .map_or(SystemTime::UNIX_EPOCH, |b| {
                    b + Duration::from_nanos(nanos.into())
                })
        }
    }
}

impl Stat {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }

    /// Whether it is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & 0o170000 == 0o120000
    }

    /// The permission bits (`0o7777`).
    pub fn permissions(&self) -> u32 {
        (self.mode & 0o7777) as u32
    }

    pub(crate) fn from_raw(s: &sys::uv_stat_t) -> Stat {
        Stat {
            dev: s.st_dev,
            mode: s.st_mode,
            nlink: s.st_nlink,
            uid: s.st_uid,
            gid: s.st_gid,
            rdev: s.st_rdev,
            ino: s.st_ino,
            size: s.st_size,
            blksize: s.st_blksize,
            blocks: s.st_blocks,
            flags: s.st_flags,
            gen: s.st_gen,
            accessed: time(&s.st_atim),
            modified: time(&s.st_mtim),
            changed: time(&s.st_ctim),
            created: time(&s.st_birthtim),
        }
    }
}

/// A `uv_stat_t` libuv passes to a callback, copied; NULL gives `Stat::default()`.
///
/// # Safety
/// `p` is NULL or points to a `uv_stat_t` valid for the call.
pub unsafe fn stat_arg(p: *const sys::uv_stat_t) -> Stat {
    // SAFETY: the caller's contract.
    unsafe { p.as_ref() }.map_or_else(Stat::default, Stat::from_raw)
}

/// A C string libuv passes to a callback as a path borrowed for the callback; NULL
/// gives `None`.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that stays valid and unchanged for `'a`
/// (the callback's duration; libuv keeps it until the callback returns).
pub unsafe fn opt_path_arg<'a>(p: *const std::ffi::c_char) -> Option<&'a std::path::Path> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    let bytes = unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes();
    #[cfg(unix)]
    let os = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes);
    // libuv gives UTF-8 on Windows.
    #[cfg(not(unix))]
    let os = std::ffi::OsStr::new(std::str::from_utf8(bytes).unwrap_or_default());
    Some(std::path::Path::new(os))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_and_after_the_epoch() {
        let t = sys::uv_timespec_t {
            tv_sec: 10,
            tv_nsec: 5,
        };
        assert_eq!(time(&t), SystemTime::UNIX_EPOCH + Duration::new(10, 5));
        let t = sys::uv_timespec_t {
            tv_sec: -2,
            tv_nsec: 500_000_000,
        };
        assert_eq!(
            time(&t),
            SystemTime::UNIX_EPOCH - Duration::from_millis(1500)
        );
    }

    #[test]
    fn null_arguments() {
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { stat_arg(std::ptr::null()) }, Stat::default());
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { opt_path_arg(std::ptr::null()) }, None);
        let s = c"dir/file";
        // SAFETY: a static C string.
        let p = unsafe { opt_path_arg(s.as_ptr()) };
        assert_eq!(p, Some(std::path::Path::new("dir/file")));
    }
}

/// A file system's statistics (`uv_statfs_t`, what `statfs(2)` gives): sizes in
/// blocks of `bsize` bytes. A field the platform does not fill is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct StatFs {
    /// File system type (a magic number: `statfs(2)`'s `f_type`).
    pub fs_type: u64,
    /// Block size.
    pub bsize: u64,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks an unprivileged user may use.
    pub bavail: u64,
    /// Total file nodes.
    pub files: u64,
    /// Free file nodes.
    pub ffree: u64,
}

impl StatFs {
    /// Copies libuv's struct.
    pub(crate) fn from_raw(s: &sys::uv_statfs_t) -> StatFs {
        StatFs {
            fs_type: s.f_type,
            bsize: s.f_bsize,
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
        }
    }
}

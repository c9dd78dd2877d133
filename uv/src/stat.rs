//! `Stat`: a file's metadata as libuv reports it (`uv_stat_t`), and `Timespec`,
//! its times as libuv gives them.

use std::time::{Duration, SystemTime};

use libuv_sys2 as sys;

/// A point in time as seconds and nanoseconds since the Unix epoch
/// (`uv_timespec_t`), the way libuv reports a file's times: exact, negative
/// before 1970, and free to copy out of a stat. Convert it with
/// [`to_system_time`](Timespec::to_system_time) or `SystemTime::from`; it orders
/// as the times do.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let t = uv::Timespec { sec: 90, nsec: 5 };
/// assert_eq!(SystemTime::from(t), SystemTime::UNIX_EPOCH + Duration::new(90, 5));
/// assert!(uv::Timespec { sec: -1, nsec: 0 } < t);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timespec {
    /// Whole seconds since 1970-01-01 00:00:00 UTC (negative before it).
    pub sec: i64,
    /// Nanoseconds past `sec`, below 1,000,000,000.
    pub nsec: u32,
}

impl Timespec {
    /// The epoch itself.
    pub const UNIX_EPOCH: Timespec = Timespec { sec: 0, nsec: 0 };

    /// The time as a `SystemTime` (saturating at the platform's range, where
    /// `SystemTime` cannot represent it).
    pub fn to_system_time(self) -> SystemTime {
        let nanos = self.nsec.min(999_999_999);
        match u64::try_from(self.sec) {
            Ok(s) => SystemTime::UNIX_EPOCH
                .checked_add(Duration::new(s, nanos))
                .unwrap_or(SystemTime::UNIX_EPOCH),
            // Before 1970: seconds back, then the nanoseconds forward.
            Err(_) => SystemTime::UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.sec.unsigned_abs()))
                .map_or(SystemTime::UNIX_EPOCH, |b| {
                    b + Duration::from_nanos(nanos.into())
                }),
        }
    }

    fn from_raw(t: &sys::uv_timespec_t) -> Timespec {
        // `c_long` is 32 or 64 bits wide; libuv's nanoseconds are in range.
        #[allow(clippy::useless_conversion)]
        Timespec {
            sec: i64::from(t.tv_sec),
            nsec: t.tv_nsec as u32,
        }
    }
}

impl From<Timespec> for SystemTime {
    fn from(t: Timespec) -> SystemTime {
        t.to_system_time()
    }
}

/// A `Timespec` equals the `SystemTime` it converts to.
impl PartialEq<SystemTime> for Timespec {
    fn eq(&self, other: &SystemTime) -> bool {
        self.to_system_time() == *other
    }
}

impl PartialEq<Timespec> for SystemTime {
    fn eq(&self, other: &Timespec) -> bool {
        *self == other.to_system_time()
    }
}

impl From<SystemTime> for Timespec {
    /// Exact within `i64` seconds (beyond, it saturates).
    fn from(t: SystemTime) -> Timespec {
        match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => Timespec {
                sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nsec: d.subsec_nanos(),
            },
            Err(e) => {
                // `d` before the epoch: -d = -(s + n) = -(s + 1) + (1e9 - n).
                let d = e.duration();
                let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => Timespec { sec: -s, nsec: 0 },
                    n => Timespec {
                        sec: -s - 1,
                        nsec: 1_000_000_000 - n,
                    },
                }
            }
        }
    }
}

/// A file's metadata (`uv_stat_t`): what `stat(2)` gives, the same on every
/// platform libuv runs on. Times are [`Timespec`]s (`SystemTime::from(st.modified)`
/// converts one); a field the platform does not fill is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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
    pub accessed: Timespec,
    /// Last change of the contents.
    pub modified: Timespec,
    /// Last change of the metadata.
    pub changed: Timespec,
    /// Creation, where the platform records it.
    pub created: Timespec,
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

    #[inline]
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
            accessed: Timespec::from_raw(&s.st_atim),
            modified: Timespec::from_raw(&s.st_mtim),
            changed: Timespec::from_raw(&s.st_ctim),
            created: Timespec::from_raw(&s.st_birthtim),
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
        let t = Timespec::from_raw(&sys::uv_timespec_t {
            tv_sec: 10,
            tv_nsec: 5,
        });
        assert_eq!(t, Timespec { sec: 10, nsec: 5 });
        let st = SystemTime::UNIX_EPOCH + Duration::new(10, 5);
        assert_eq!(t.to_system_time(), st);
        assert_eq!(Timespec::from(st), t);
        // -1.5 s is -2 s and 0.5 s forward.
        let t = Timespec::from_raw(&sys::uv_timespec_t {
            tv_sec: -2,
            tv_nsec: 500_000_000,
        });
        let st = SystemTime::UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(SystemTime::from(t), st);
        assert_eq!(Timespec::from(st), t);
        let whole = SystemTime::UNIX_EPOCH - Duration::from_secs(3);
        assert_eq!(Timespec::from(whole), Timespec { sec: -3, nsec: 0 });
        assert_eq!(
            Timespec::UNIX_EPOCH.to_system_time(),
            SystemTime::UNIX_EPOCH
        );
        assert!(
            Timespec {
                sec: -2,
                nsec: 999_999_999
            } < Timespec { sec: -1, nsec: 0 }
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

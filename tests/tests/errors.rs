//! Status codes, the error hierarchy and the io::Error conversion.

use std::io::ErrorKind;

use uv::{Category, Error, StatusCode};

#[test]
fn all_85_status_codes_round_trip_through_raw_values() {
    assert_eq!(StatusCode::ALL.len(), 85);
    for &code in StatusCode::ALL {
        assert!(code.raw() < 0, "{code:?}");
        assert_eq!(StatusCode::from_raw(code.raw()), code);
        assert!(!code.message().is_empty());
    }
}

#[test]
fn unknown_codes_keep_their_raw_value() {
    let c = StatusCode::from_raw(-123456);
    assert_eq!(c, StatusCode::Other(-123456));
    assert_eq!(c.raw(), -123456);
    assert_eq!(c.name(), "UNKNOWN");
    assert_eq!(c.category(), Category::Unclassified);
    let err = Error::from_raw(-123456, "uv_test");
    assert_eq!(err.code().raw(), -123456);
}

#[test]
fn names_and_messages_come_from_the_spec_and_libuv() {
    assert_eq!(StatusCode::EADDRINUSE.name(), "EADDRINUSE");
    assert_eq!(StatusCode::EADDRINUSE.message(), "address already in use");
    assert_eq!(StatusCode::EOF.message(), "end of file");
    let err = Error::new(StatusCode::EAGAIN, "uv_try_write");
    assert_eq!(
        err.to_string(),
        "uv_try_write: resource temporarily unavailable (EAGAIN)"
    );
    assert_eq!(err.operation(), "uv_try_write");
}

#[test]
fn a_program_can_match_on_codes() {
    let err = Error::new(StatusCode::EADDRINUSE, "uv_tcp_bind");
    let what = match err.code() {
        StatusCode::EADDRINUSE => "in use",
        StatusCode::EACCES => "denied",
        _ => "other",
    };
    assert_eq!(what, "in use");
}

#[test]
fn categories_follow_parents() {
    let e = Error::new(StatusCode::EADDRINUSE, "uv_tcp_bind");
    assert_eq!(e.kind(), Category::AddressInUse);
    assert!(e.is(Category::AddressInUse));
    assert!(e.is(Category::AddressUnavailable));
    assert!(e.is(Category::Address));
    assert!(!e.is(Category::NotFound));
    let enoent = Error::new(StatusCode::ENOENT, "uv_fs_open");
    assert!(!enoent.is(Category::Address));
    assert!(enoent.is(Category::FileNotFound));
    assert!(enoent.is(Category::NotFound));
    // Two parents: an address-flags error is also an argument error.
    let flags = Error::new(StatusCode::EAI_BADFLAGS, "uv_getaddrinfo");
    assert!(flags.is(Category::Address) && flags.is(Category::Argument));
    assert!(Error::new(StatusCode::ELOOP, "x").is(Category::TooManyLinks));
    assert!(Error::new(StatusCode::EISCONN, "x").is(Category::Argument));
}

/// Every category's codes, as the error table maps them.
#[test]
fn every_category_has_the_codes_of_the_table() {
    use StatusCode::*;
    let table: &[(Category, &[StatusCode])] = &[
        (Category::Argument, &[EINVAL, E2BIG, EAI_OVERFLOW, EFAULT]),
        (Category::IsConnected, &[EISCONN]),
        (Category::TemporaryUnavailable, &[EAGAIN, EAI_AGAIN]),
        (Category::Canceled, &[ECANCELED, EAI_CANCELED]),
        (Category::Permanent, &[EAI_FAIL]),
        (Category::Permission, &[EACCES, EPERM, EROFS]),
        (Category::BadFileDescriptor, &[EBADF]),
        (Category::ResourceBusy, &[EBUSY, ETXTBSY]),
        (Category::Charset, &[ECHARSET]),
        (Category::FileExists, &[EEXIST]),
        (Category::FileTooLarge, &[EFBIG]),
        (Category::Interrupted, &[EINTR]),
        (Category::Io, &[EIO]),
        (Category::IsADirectory, &[EISDIR]),
        (Category::NotADirectory, &[ENOTDIR]),
        (Category::NotEmpty, &[ENOTEMPTY]),
        (Category::MessageTooLong, &[EMSGSIZE]),
        (Category::NameTooLong, &[ENAMETOOLONG]),
        (Category::BufferSpace, &[ENOBUFS]),
        (Category::NoSpace, &[ENOSPC]),
        (Category::NotImplemented, &[ENOSYS]),
        (Category::NotConnected, &[ENOTCONN]),
        (Category::HostUnreachable, &[EHOSTUNREACH]),
        (Category::ResultTooLarge, &[ERANGE]),
        (Category::Seek, &[ESPIPE]),
        (Category::ProcessLookup, &[ESRCH]),
        (Category::Timeout, &[ETIMEDOUT]),
        (Category::CrossDevice, &[EXDEV]),
        (Category::EndOfFile, &[EOF]),
        (Category::NotSocket, &[ENOTSOCK]),
        (Category::NotSupported, &[ENOTSUP]),
        (Category::Protocol, &[EPROTO]),
        (Category::ProtocolNoOption, &[ENOPROTOOPT]),
        (Category::ProtocolNotSupported, &[EPROTONOSUPPORT]),
        (Category::ProtocolType, &[EPROTOTYPE]),
        (Category::AddressUnavailable, &[EADDRNOTAVAIL]),
        (Category::AddressInUse, &[EADDRINUSE]),
        (
            Category::AddressFamily,
            &[EAFNOSUPPORT, EAI_ADDRFAMILY, EAI_FAMILY],
        ),
        (Category::AddressFlags, &[EAI_BADFLAGS]),
        (Category::AddressHints, &[EAI_BADHINTS]),
        (Category::AddressData, &[EAI_NODATA]),
        (Category::AddressName, &[EAI_NONAME]),
        (Category::AddressProtocol, &[EAI_PROTOCOL]),
        (Category::AddressService, &[EAI_SERVICE]),
        (Category::AddressSocketType, &[EAI_SOCKTYPE]),
        (Category::DestinationAddress, &[EDESTADDRREQ]),
        (Category::BrokenPipe, &[EPIPE, ESHUTDOWN]),
        (Category::ConnectionAborted, &[ECONNABORTED]),
        (Category::ConnectionRefused, &[ECONNREFUSED]),
        (Category::ConnectionReset, &[ECONNRESET]),
        (Category::ConnectionInProgress, &[EALREADY]),
        (Category::DeviceNotFound, &[ENODEV, ENXIO]),
        (Category::FileNotFound, &[ENOENT]),
        (Category::NetworkDown, &[ENETDOWN]),
        (Category::NetworkUnreachable, &[ENETUNREACH]),
        (Category::NoNetwork, &[ENONET]),
        (Category::OutOfMemory, &[ENOMEM, EAI_MEMORY]),
        (Category::TooManyLinks, &[EMLINK]),
        (Category::TooManySymbolicLinks, &[ELOOP]),
        (Category::TooManyOpenFiles, &[EMFILE]),
        (Category::FileTableOverflow, &[ENFILE]),
        (Category::Unclassified, &[UNKNOWN, EHOSTDOWN]),
    ];
    let mut seen = 0;
    for (cat, codes) in table {
        for &code in *codes {
            assert_eq!(code.category(), *cat, "{code:?}");
            assert!(Error::new(code, "t").is(*cat));
            seen += 1;
        }
    }
    // The 9 codes libuv gained since the table have a home too.
    for code in [
        EOVERFLOW,
        EREMOTEIO,
        ENOTTY,
        EFTYPE,
        EILSEQ,
        ESOCKTNOSUPPORT,
        ENODATA,
        EUNATCH,
        ENOEXEC,
    ] {
        assert_ne!(code.category(), Category::Unclassified, "{code:?}");
        seen += 1;
    }
    assert_eq!(seen, 85);
    // Group parents.
    for c in [ECONNRESET, ECONNREFUSED, ECONNABORTED, EPIPE, EALREADY] {
        assert!(c.category().is(Category::Connection), "{c:?}");
    }
    for c in [ENETDOWN, ENETUNREACH, ENONET] {
        assert!(c.category().is(Category::Network));
    }
    for c in [ENOMEM, EMLINK, ELOOP, EMFILE, ENFILE] {
        assert!(c.category().is(Category::SystemFailure));
    }
    for c in [ENOTSOCK, ENOTSUP] {
        assert!(c.category().is(Category::UnsupportedOperation));
    }
}

#[test]
fn library_errors_sit_under_unsupported_operation() {
    let h = Error::closed_handle("uv_timer_start");
    assert_eq!(h.kind(), Category::ClosedHandle);
    assert!(h.is(Category::ClosedStructure) && h.is(Category::UnsupportedOperation));
    assert_eq!(h.code(), StatusCode::EINVAL);
    assert_eq!(
        h.to_string(),
        "uv_timer_start: operation on a closed handle (EINVAL)"
    );
    let l = Error::closed_loop("uv_run");
    assert_eq!(l.kind(), Category::ClosedLoop);
    assert!(!l.is(Category::ClosedHandle));
    assert_eq!(std::io::Error::from(l).raw_os_error(), None);
}

#[test]
fn io_error_kinds_and_os_errors() {
    use StatusCode::*;
    let cases = [
        (EADDRINUSE, ErrorKind::AddrInUse),
        (EADDRNOTAVAIL, ErrorKind::AddrNotAvailable),
        (ENOENT, ErrorKind::NotFound),
        (EACCES, ErrorKind::PermissionDenied),
        (EPERM, ErrorKind::PermissionDenied),
        (ECONNREFUSED, ErrorKind::ConnectionRefused),
        (ECONNRESET, ErrorKind::ConnectionReset),
        (ECONNABORTED, ErrorKind::ConnectionAborted),
        (ETIMEDOUT, ErrorKind::TimedOut),
        (EAGAIN, ErrorKind::WouldBlock),
        (EPIPE, ErrorKind::BrokenPipe),
        (EEXIST, ErrorKind::AlreadyExists),
        (EINVAL, ErrorKind::InvalidInput),
        (ENOSYS, ErrorKind::Unsupported),
        (ENOTCONN, ErrorKind::NotConnected),
        (EINTR, ErrorKind::Interrupted),
    ];
    for (code, kind) in cases {
        let io = std::io::Error::from(Error::new(code, "t"));
        assert_eq!(io.kind(), kind, "{code:?}");
        assert_eq!(code.io_error_kind(), kind, "{code:?}");
        #[cfg(unix)]
        assert_eq!(io.raw_os_error(), Some(-code.raw()), "{code:?}");
    }
    // The spec's kind agrees with std's decoding of the errno, for every errno code.
    #[cfg(unix)]
    for &code in StatusCode::ALL {
        let err = Error::new(code, "t");
        if let Some(errno) = err.raw_os_error() {
            let std_kind = std::io::Error::from_raw_os_error(errno).kind();
            let std_unclassified =
                matches!(format!("{std_kind:?}").as_str(), "Other" | "Uncategorized");
            if code.io_error_kind() != ErrorKind::Other && !std_unclassified {
                assert_eq!(code.io_error_kind(), std_kind, "{code:?}");
            }
        }
    }
    // Codes that are not errno values convert with the spec's kind and no OS error.
    let eof = std::io::Error::from(Error::new(EOF, "uv_read"));
    assert_eq!(eof.kind(), ErrorKind::UnexpectedEof);
    assert_eq!(eof.raw_os_error(), None);
    let gai = std::io::Error::from(Error::new(EAI_NONAME, "uv_getaddrinfo"));
    assert_eq!(gai.raw_os_error(), None);
    let inner = gai
        .get_ref()
        .and_then(|e| e.downcast_ref::<Error>())
        .cloned();
    assert_eq!(inner.map(|e| e.code()), Some(EAI_NONAME));
}

#[test]
fn enums_keep_unknown_values_and_flags_keep_unknown_bits() {
    assert_eq!(uv::RunMode::from_raw(1), uv::RunMode::Once);
    assert_eq!(uv::RunMode::from_raw(77), uv::RunMode::Other(77));
    assert_eq!(uv::RunMode::Other(77).raw(), 77);
    assert_eq!(uv::HandleType::Timer.name(), "Timer");
    let ev = uv::PollEvent::from_bits_retain(1 | 1024);
    assert!(ev.contains(uv::PollEvent::READABLE));
    assert_eq!(ev.bits(), 1025);
    assert_eq!(uv::PollEvent::READABLE.bits(), 1);
    assert_eq!(uv::PollEvent::WRITABLE.bits(), 2);
    assert_eq!(uv::TtyMode::Normal.raw(), 0);
    assert_eq!(uv::Membership::JoinGroup.raw(), 1);
    assert_eq!(uv::FsType::Unknown.raw(), -1);
    #[cfg(unix)]
    assert_eq!(uv::Signum::Interrupt.raw(), 2);
}

/// `Debug` shows the message beside the code, the category and the operation.
#[test]
fn debug_shows_the_message() {
    let err = uv::Error::new(uv::StatusCode::EADDRINUSE, "uv_tcp_bind");
    let shown = format!("{err:?}");
    assert!(shown.contains("EADDRINUSE"), "{shown}");
    assert!(shown.contains("uv_tcp_bind"), "{shown}");
    assert!(shown.contains(&err.message()), "{shown}");
}

#[test]
fn an_error_is_32_bytes_and_keeps_what_it_was_given() {
    #[cfg(target_pointer_width = "64")]
    assert_eq!(std::mem::size_of::<Error>(), 32);
    assert_eq!(
        std::mem::size_of::<uv::Result<()>>(),
        std::mem::size_of::<Error>()
    );
    let e = Error::new(StatusCode::ENOENT, "uv_fs_stat").with_path("/no/such/file");
    assert_eq!(e.code(), StatusCode::ENOENT);
    assert_eq!(e.kind(), StatusCode::ENOENT.category());
    assert_eq!(e.operation(), "uv_fs_stat");
    assert_eq!(e.path(), Some(std::path::Path::new("/no/such/file")));
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    let unknown = Error::new(StatusCode::Other(-123456), "op");
    assert_eq!(unknown.code(), StatusCode::Other(-123456));
    let closed = Error::closed_handle("uv_read_start");
    assert_eq!(closed.kind(), Category::ClosedHandle);
    assert_eq!(closed.operation(), "uv_read_start");
}

#[test]
fn errors_compare_and_hash_by_value_not_by_where_the_name_lives() {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};
    let hash = |e: &Error| {
        let mut h = DefaultHasher::new();
        e.hash(&mut h);
        h.finish()
    };
    // The same name at another address.
    static NAME: [u8; 11] = *b"uv_tcp_bind";
    let elsewhere: &'static str = std::str::from_utf8(&NAME).unwrap();
    assert_ne!(elsewhere.as_ptr(), "uv_tcp_bind".as_ptr());
    let a = Error::new(StatusCode::EADDRINUSE, "uv_tcp_bind");
    let b = Error::new(StatusCode::EADDRINUSE, elsewhere);
    assert_eq!(a, b);
    assert_eq!(hash(&a), hash(&b));
    assert_ne!(a, Error::new(StatusCode::EADDRINUSE, "uv_udp_bind"));
    assert_ne!(a, Error::new(StatusCode::EACCES, "uv_tcp_bind"));
    assert_ne!(a.clone().with_path("x"), a);
    assert_eq!(a.clone().with_path("x"), b.clone().with_path("x"));
}

#[test]
fn an_overlong_operation_name_is_cut_on_a_character_boundary() {
    // 65,534 ASCII bytes and then a 3-byte character: the cut at 65,535 bytes would
    // split it, so the name keeps the ASCII part only.
    const N: usize = 65_534 + 3 + 4;
    static LONG: [u8; N] = {
        let mut a = [b'a'; N];
        let euro = "€".as_bytes();
        a[65_534] = euro[0];
        a[65_535] = euro[1];
        a[65_536] = euro[2];
        a
    };
    let long: &'static str = std::str::from_utf8(&LONG).unwrap();
    let e = Error::new(StatusCode::EINVAL, long);
    assert_eq!(e.operation().len(), 65_534);
    assert!(long.starts_with(e.operation()));
    static EXACT: [u8; 65_535] = [b'b'; 65_535];
    let exact: &'static str = std::str::from_utf8(&EXACT).unwrap();
    assert_eq!(Error::new(StatusCode::EINVAL, exact).operation(), exact);
    assert!(e.to_string().starts_with("aaa"));
}

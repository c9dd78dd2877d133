// The public values that may cross threads, each `Send + Sync`: plain data
// (statuses, errors, addresses, stats, system information) and the senders made
// for other threads. None of them refers to a loop's thread-local state.
fn is_send_sync<T: Send + Sync>() {}

fn main() {
    is_send_sync::<uv::Error>();
    is_send_sync::<uv::JoinError>();
    is_send_sync::<uv::Rejected<std::os::fd::OwnedFd>>();
    is_send_sync::<uv::SendError<Vec<u8>>>();
    is_send_sync::<uv::Sender<Vec<u8>>>();
    is_send_sync::<uv::AsyncSender>();
    is_send_sync::<uv::CallLater>();
    is_send_sync::<uv::StatusCode>();
    is_send_sync::<uv::Category>();
    is_send_sync::<uv::Signum>();
    is_send_sync::<uv::SockAddr>();
    is_send_sync::<uv::AddrInfo>();
    is_send_sync::<uv::AddrInfoHints>();
    is_send_sync::<uv::NameInfo>();
    is_send_sync::<uv::Stat>();
    is_send_sync::<uv::StatFs>();
    is_send_sync::<uv::Timespec>();
    is_send_sync::<uv::DirEntry>();
    is_send_sync::<uv::FileTime>();
    is_send_sync::<uv::OpenFlags>();
    is_send_sync::<uv::PoolAllocator>();
    is_send_sync::<uv::Datagram<'static>>();
    is_send_sync::<uv::system::Uname>();
    is_send_sync::<uv::system::CpuInfo>();
    is_send_sync::<uv::system::InterfaceAddress>();
}

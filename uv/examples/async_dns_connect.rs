//! Async DNS lookup and connect: resolves "localhost" on the thread pool
//! (`uv::future::getaddrinfo`, the local resolver only: nothing goes over the
//! network), connects to each IPv4 address it gives, at the port of a server this
//! program runs itself, with a deadline (`uv::future::timeout`), greets the server
//! and reads its answer; then reverse-resolves the server's address
//! (`getnameinfo`, numeric). Exits non-zero if any step fails.
//!
//! Run with `cargo run -p libuv-safe --example async_dns_connect`.
//!
//! It prints how many IPv4 addresses "localhost" has, the address it connected to,
//! and the server's answer (`127.0.0.1:PORT answered "welcome async"`).

use std::time::Duration;

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::StreamExt;
use uv::future::{self as uvf, AsyncStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = uv::Loop::new()?;
    let lh = lp.handle();

    // A server that answers "hello NAME" with "welcome NAME".
    let server = uv::Tcp::new(&lp)?;
    server.bind("127.0.0.1:0".parse()?, uv::TcpFlags::empty())?;
    let port = server.local_addr()?.port();
    let mut incoming = uvf::incoming(server, 16)?;
    lp.spawn_local(async move {
        while let Some(Ok(conn)) = incoming.next().await {
            let mut s = AsyncStream::new(conn);
            let mut msg = String::new();
            if s.read_to_string(&mut msg).await.is_ok() {
                let name = msg.trim_start_matches("hello ").to_string();
                let _ = s.write_all(format!("welcome {name}").as_bytes()).await;
                let _ = s.close().await;
            }
        }
    })?;

    let answers = lp.block_on(async {
        let hints = uv::AddrInfoHints::default()
            .with_family(uv::AddressFamily::Inet)
            .with_socktype(uv::SocketType::Stream);
        let addrs =
            uvf::getaddrinfo(&lh, Some("localhost"), Some(&port.to_string()), &hints).await?;
        println!("localhost resolves to {} IPv4 address(es)", addrs.len());
        let mut answers = Vec::new();
        for ai in addrs {
            let tcp = uv::Tcp::new(&lh)?;
            uvf::timeout(&lh, Duration::from_secs(5), uvf::connect(&tcp, ai.addr)).await??;
            println!("connected to {}", ai.addr);
            let mut s = AsyncStream::new(tcp);
            s.write_all(b"hello async").await?;
            s.close().await?; // our side is done: the server reads to the end
            let mut answer = String::new();
            s.read_to_string(&mut answer).await?;
            let name = uvf::getnameinfo(
                &lh,
                ai.addr,
                uv::NameInfoFlags::NUMERICHOST | uv::NameInfoFlags::NUMERICSERV,
            )
            .await?;
            println!("{}:{} answered {answer:?}", name.host, name.service);
            answers.push(answer);
        }
        Ok::<_, Box<dyn std::error::Error>>(answers)
    })??;
    if answers.is_empty() || answers.iter().any(|a| a != "welcome async") {
        return Err(format!("unexpected answers: {answers:?}").into());
    }
    Ok(())
}

//! An async echo server, written with `uv::future`: the server accepts connections
//! as a stream and echoes each one in a task of its own (`futures::io::copy` over
//! `AsyncStream`); to check itself, the program connects three clients to it,
//! each sending 100 lines and reading them back through `BufReader::lines`, then
//! exits (non-zero on any mismatch). Loopback only, well under a second.
//!
//! Run with `cargo run -p libuv-safe --example async_echo_server`.
//!
//! It prints the server's address, `client N: 100 lines echoed` for each client,
//! and the number of bytes the server echoed.

use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use futures::StreamExt;
use uv::future::{self as uvf, AsyncStream};

const CLIENTS: usize = 3;
const LINES: usize = 100;

async fn client(
    lh: uv::LoopHandle,
    addr: std::net::SocketAddr,
    id: usize,
) -> std::io::Result<usize> {
    let tcp = uv::Tcp::new(&lh)?;
    uvf::connect(&tcp, addr).await?;
    let (r, mut w) = futures::io::AsyncReadExt::split(AsyncStream::new(tcp));
    let writer = async move {
        for i in 0..LINES {
            w.write_all(format!("client {id} line {i}\n").as_bytes())
                .await?;
        }
        w.close().await // shutdown: the server's copy ends, and so does our read
    };
    let reader = async move {
        let mut n = 0;
        let mut lines = BufReader::new(r).lines();
        while let Some(line) = lines.next().await {
            assert_eq!(line?, format!("client {id} line {n}"), "echoed line");
            n += 1;
        }
        Ok::<_, std::io::Error>(n)
    };
    let (w, r) = futures::join!(writer, reader);
    w?;
    r
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = uv::Loop::new()?;
    let server = uv::Tcp::new(&lp)?;
    server.bind("127.0.0.1:0".parse()?, uv::TcpFlags::empty())?;
    let addr = server.local_addr()?;
    println!("echo server on {addr}");

    // The server: one task per connection, until CLIENTS were served.
    let mut incoming = uvf::incoming(server, 64)?;
    let lh = lp.handle();
    let server_task = lp.spawn_local(async move {
        let mut conns = Vec::new();
        for _ in 0..CLIENTS {
            let conn = incoming.next().await.expect("listening")?;
            conns.push(lh.spawn_local(async move {
                let (mut r, mut w) = futures::io::AsyncReadExt::split(AsyncStream::new(conn));
                let n = futures::io::copy(&mut r, &mut w).await?;
                w.close().await?;
                Ok::<_, std::io::Error>(n)
            })?);
        }
        let mut bytes = 0;
        for c in conns {
            bytes += c.await.expect("echo task")?;
        }
        Ok::<_, Box<dyn std::error::Error>>(bytes)
    })?;

    // The clients, all at once.
    let lh = lp.handle();
    let counts = lp.block_on(futures::future::join_all(
        (0..CLIENTS).map(|id| client(lh.clone(), addr, id)),
    ))?;
    for (id, n) in counts.into_iter().enumerate() {
        let n = n?;
        println!("client {id}: {n} lines echoed");
        if n != LINES {
            return Err(format!("client {id}: {n} lines, not {LINES}").into());
        }
    }
    let bytes = lp.block_on(server_task)?.map_err(|e| e.to_string())??;
    println!("server echoed {bytes} bytes");
    // Nothing is left: the loop ends at once.
    if lp.run(uv::RunMode::Default)? {
        return Err("handles left open".into());
    }
    Ok(())
}

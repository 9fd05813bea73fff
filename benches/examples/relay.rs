//! The io_uring prototype of issue 27: a one-thread TCP relay (each client gets its own
//! connection to one node, bytes copied both ways), driven by epoll (tokio) or by io_uring
//! (tokio-uring, whose runtime submits every pending operation of every client in one
//! `io_uring_enter` when it parks). Both variants do the same work per request: a read and a
//! write on each side; what differs is how the kernel is asked. `benches/uring.sh` runs GET P1
//! through both and compares requests per CPU second.
//! Usage: cargo run --release -p hive-benches --example relay -- epoll|uring LISTEN NODE

use std::rc::Rc;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, kind, listen, node] = &args[..] else {
        eprintln!("usage: relay epoll|uring LISTEN NODE");
        std::process::exit(2);
    };
    match kind.as_str() {
        "epoll" => epoll(listen, node),
        "uring" => uring(listen, node),
        _ => {
            eprintln!("relay: the kind is epoll or uring");
            std::process::exit(2);
        }
    }
}

fn epoll(listen: &str, node: &str) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind(listen).await?;
        loop {
            let (client, _) = l.accept().await?;
            let node = node.to_string();
            tokio::spawn(async move {
                let Ok(backend) = tokio::net::TcpStream::connect(node).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = backend.set_nodelay(true);
                let (mut cr, mut cw) = client.into_split();
                let (mut br, mut bw) = backend.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || bw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = br.read(&mut buf).await {
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    })
}

fn uring(listen: &str, node: &str) -> std::io::Result<()> {
    let listen = listen.parse().map_err(std::io::Error::other)?;
    let node: std::net::SocketAddr = node.parse().map_err(std::io::Error::other)?;
    tokio_uring::start(async move {
        let l = tokio_uring::net::TcpListener::bind(listen)?;
        loop {
            let (client, _) = l.accept().await?;
            tokio_uring::spawn(async move {
                let Ok(backend) = tokio_uring::net::TcpStream::connect(node).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = backend.set_nodelay(true);
                let (client, backend) = (Rc::new(client), Rc::new(backend));
                let up = copy(client.clone(), backend.clone());
                let down = copy(backend, client);
                tokio::join!(up, down);
            });
        }
    })
}

/// Copies from `from` to `to` until either side closes, with one owned buffer.
async fn copy(from: Rc<tokio_uring::net::TcpStream>, to: Rc<tokio_uring::net::TcpStream>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (r, b) = from.read(buf).await;
        buf = b;
        let n = match r {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (r, b) = to
            .write_all(tokio_uring::buf::BoundedBuf::slice(buf, ..n))
            .await;
        buf = b.into_inner();
        if r.is_err() {
            return;
        }
    }
}

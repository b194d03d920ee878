//! A TCP proxy that injects faults between the gateway and a database, all on loopback:
//! `Pass` forwards, `Blackhole` accepts and swallows every byte in both directions (as a
//! firewall dropping packets: connections hang), `Reset` closes every connection and refuses
//! new ones at once. The mode applies to connections already open too.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Forward.
    Pass = 0,
    /// Swallow every byte; accept new connections and never answer.
    Blackhole = 1,
    /// Close connections; refuse new ones.
    Reset = 2,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mode_of(m: &AtomicU8) -> Fault {
    match m.load(Ordering::SeqCst) {
        0 => Fault::Pass,
        1 => Fault::Blackhole,
        _ => Fault::Reset,
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<AtomicU8>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match mode_of(&mode) {
            Fault::Pass => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Fault::Blackhole => {}
            Fault::Reset => return,
        }
    }
}

impl FaultProxy {
    /// A proxy on 127.0.0.1 to `target`, forwarding.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = Arc::new(AtomicU8::new(Fault::Pass as u8));
        let m = Arc::clone(&mode);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let m = Arc::clone(&m);
                tokio::spawn(async move {
                    match mode_of(&m) {
                        Fault::Reset => return,
                        Fault::Blackhole => {
                            // Hold the connection and answer nothing, until the mode changes.
                            let mut client = client;
                            let mut buf = [0u8; 1024];
                            while mode_of(&m) == Fault::Blackhole {
                                let read = tokio::time::timeout(
                                    std::time::Duration::from_millis(100),
                                    client.read(&mut buf),
                                )
                                .await;
                                if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
                                    return;
                                }
                            }
                            return;
                        }
                        Fault::Pass => {}
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = tokio::spawn(pump(cr, sw, Arc::clone(&m)));
                    let down = tokio::spawn(pump(sr, cw, Arc::clone(&m)));
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Self { addr, mode, task }
    }

    /// Changes what the proxy does, to new and open connections.
    pub fn set(&self, fault: Fault) {
        self.mode.store(fault as u8, Ordering::SeqCst);
    }
}

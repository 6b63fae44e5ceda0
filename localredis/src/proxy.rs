//! A TCP proxy on a free loopback port, for faults a signal cannot make:
//! slow answers on some connections but not others, a connection that goes
//! silent without closing (half-open), and a reply lost after the command ran.
//!
//! Put it between a client and one Redis process (point the client at
//! [`Proxy::port`]); every accepted connection gets its own upstream
//! connection and two forwarding threads. The faults:
//!
//! * [`Proxy::delay_replies`]: replies are held back for a fixed time on
//!   every connection that has not sent `SUBSCRIBE`, so a Sentinel client's
//!   lookups become slow while its `+switch-master` subscription stays live.
//!   Each chunk is delivered at *its arrival + the delay*, so order is kept
//!   and delays do not add up.
//! * [`Proxy::stall_open_connections`]: every connection open now stops
//!   forwarding in both directions and stays open, as when a peer's host
//!   vanishes without a FIN. Connections made afterwards work.
//! * [`Proxy::lose_next_reply`]: the next reply from upstream is dropped and
//!   that connection closed: the command ran, but its client sees a dropped
//!   connection — the case where re-sending applies a write twice.
//!
//! Blocking threads rather than async: this crate has a blocking API and no
//! runtime. The proxy and all its connections close when it is dropped.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;

const BUFFER: usize = 16 * 1024;
const STALL_POLL: Duration = Duration::from_millis(20);

/// A running proxy. See the module docs.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    delay_ms: AtomicU64,
    lose_next: AtomicBool,
    closing: AtomicBool,
    links: Mutex<Vec<Arc<Link>>>,
}

/// One proxied connection: the client side, the upstream side, its state.
#[derive(Debug)]
struct Link {
    client: TcpStream,
    server: TcpStream,
    stalled: AtomicBool,
    subscriber: AtomicBool,
}

impl Link {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

impl Proxy {
    /// Listen on a free `127.0.0.1` port and forward every connection to
    /// `127.0.0.1:upstream_port`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the listening socket cannot be made.
    pub fn start(upstream_port: u16) -> Result<Proxy, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding a proxy port on 127.0.0.1", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("reading the proxy's port", e))?
            .port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)),
            delay_ms: AtomicU64::new(0),
            lose_next: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        let acceptor = thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept_loop(listener, accepting))
            .map_err(|e| Error::io("starting the proxy thread", e))?;
        Ok(Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port clients should use.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Hold replies back for `delay` on connections that never sent
    /// `SUBSCRIBE` (zero turns it off). Applies to replies read from now on.
    pub fn delay_replies(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Freeze every connection open now (see the module docs).
    pub fn stall_open_connections(&self) {
        for link in self
            .shared
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            link.stalled.store(true, Ordering::SeqCst);
        }
    }

    /// Drop the next reply from upstream and close its connection.
    pub fn lose_next_reply(&self) {
        self.shared.lose_next.store(true, Ordering::SeqCst);
    }

    /// Connections currently open (not yet closed by either side).
    pub fn open_connections(&self) -> usize {
        let mut links = self.shared.links.lock().unwrap_or_else(|p| p.into_inner());
        links.retain(|l| l.client.peer_addr().is_ok() && l.server.peer_addr().is_ok());
        links.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the acceptor, then close every link so its threads end.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for link in self
            .shared
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            link.close();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        // An upstream that refuses is passed on as a closed connection.
        let Ok(link) = connect(client, shared.upstream) else {
            continue;
        };
        let link = Arc::new(link);
        shared
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(link.clone());
        let (up, down) = (link.clone(), shared.clone());
        let _ = thread::Builder::new()
            .name("proxy-up".into())
            .spawn(move || forward_requests(&up, &down));
        let down_shared = shared.clone();
        let _ = thread::Builder::new()
            .name("proxy-down".into())
            .spawn(move || forward_replies(&link, &down_shared));
    }
}

fn connect(client: TcpStream, upstream: SocketAddr) -> io::Result<Link> {
    let server = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok(Link {
        client,
        server,
        stalled: AtomicBool::new(false),
        subscriber: AtomicBool::new(false),
    })
}

/// Parks a stalled link's thread until the proxy closes: the socket stays
/// open and silent.
fn park_while_stalled(link: &Link, shared: &Shared) -> bool {
    if !link.stalled.load(Ordering::SeqCst) {
        return false;
    }
    while !shared.closing.load(Ordering::SeqCst) {
        thread::sleep(STALL_POLL);
    }
    true
}

fn forward_requests(link: &Link, shared: &Shared) {
    let mut buf = vec![0u8; BUFFER];
    let (mut from, mut to) = (&link.client, &link.server);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if park_while_stalled(link, shared) {
            return;
        }
        if buf[..n]
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
        {
            link.subscriber.store(true, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    link.close();
}

fn forward_replies(link: &Arc<Link>, shared: &Shared) {
    // A reader thread timestamps each chunk as it arrives, so a chunk that waits behind a delayed
    // one is still delivered at its own arrival + the delay.
    let (chunks, arrivals) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let reader = link.clone();
    let spawned = thread::Builder::new()
        .name("proxy-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; BUFFER];
            let mut from = &reader.server;
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if chunks.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
    if spawned.is_err() {
        link.close();
        return;
    }
    let mut to = &link.client;
    for (arrived, chunk) in arrivals {
        if park_while_stalled(link, shared) {
            return;
        }
        if shared.lose_next.swap(false, Ordering::SeqCst) {
            break; // the command ran; its reply is lost with the connection
        }
        let delay = Duration::from_millis(shared.delay_ms.load(Ordering::SeqCst));
        if !delay.is_zero() && !link.subscriber.load(Ordering::SeqCst) {
            let due = arrived + delay;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        if to.write_all(&chunk).is_err() {
            break;
        }
    }
    link.close();
}

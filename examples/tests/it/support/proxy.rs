//! A TCP proxy in front of PostgreSQL or Redis that a test cuts and restores: the dependency
//! going away as the server sees it, without stopping the shared service.
//!
//! [`Proxy::cut`] stops listening (new connections are refused) and resets every open
//! connection on both sides (`SO_LINGER` 0, so the peers get an RST, not a polite FIN: a
//! transaction in flight fails the way it does when a network path dies). While cut, the port
//! stays bound by a socket that does not listen, so connecting is refused and no other socket on
//! the machine can take the port; [`Proxy::restore`] makes that socket listen again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One proxy: a local port forwarding to `target`.
pub struct Proxy {
    addr: SocketAddr,
    target: String,
    /// Cancels the acceptor and every connection of the current "up" period.
    up: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
    /// While cut: the socket holding the port without listening.
    reserved: Mutex<Option<TcpSocket>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// A socket bound to `addr` that another one may share (the listener and the reservation).
fn bound(addr: SocketAddr) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.set_reuseport(true).unwrap();
    socket.bind(addr).unwrap();
    socket
}

impl Proxy {
    /// A running proxy to `target` (`host:port`) on a free local port.
    pub async fn start(target: &str) -> Self {
        let listener = bound("127.0.0.1:0".parse().unwrap()).listen(1024).unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            target: target.to_owned(),
            up: Mutex::new(None),
            reserved: Mutex::new(None),
            connections: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// The proxy's `host:port`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&self, listener: TcpListener) {
        let token = CancellationToken::new();
        let (target, connections, cut) =
            (self.target.clone(), self.connections.clone(), token.clone());
        let acceptor = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = cut.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((inbound, _)) = accepted else { continue };
                let handle = tokio::spawn(forward(inbound, target.clone(), cut.clone()));
                connections.lock().unwrap().push(handle);
            }
        });
        *self.up.lock().unwrap() = Some((token, acceptor));
    }

    /// Refuses new connections and resets the open ones. Returns once every connection is gone.
    pub async fn cut(&self) {
        // Hold the port first, so that it is never free while the proxy is down.
        *self.reserved.lock().unwrap() = Some(bound(self.addr));
        let up = self.up.lock().unwrap().take();
        if let Some((token, acceptor)) = up {
            token.cancel();
            let _ = acceptor.await;
        }
        let handles: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for handle in handles {
            let _ = handle.await;
        }
    }

    /// Listens on the same port again.
    pub async fn restore(&self) {
        let reserved = self.reserved.lock().unwrap().take();
        let socket = reserved.expect("restore() after cut()");
        self.serve(socket.listen(1024).unwrap());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some((token, _)) = self.up.lock().unwrap().take() {
            token.cancel();
        }
    }
}

/// Copies both ways until either side closes or the proxy is cut; a cut resets both sides.
async fn forward(mut inbound: TcpStream, target: String, cut: CancellationToken) {
    let connected = tokio::select! {
        () = cut.cancelled() => None,
        connected = TcpStream::connect(&target) => connected.ok(),
    };
    let Some(mut outbound) = connected else {
        let _ = inbound.set_zero_linger();
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        () = cut.cancelled() => {
            let _ = inbound.set_zero_linger();
            let _ = outbound.set_zero_linger();
        }
    }
}

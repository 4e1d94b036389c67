//! A TCP proxy in front of PostgreSQL or Redis that a test cuts and restores: the dependency
//! going away as the server sees it, without stopping the shared service.
//!
//! [`Proxy::cut`] closes the listening port (new connections are refused) and resets every open
//! connection on both sides (`SO_LINGER` 0, so the peers get an RST, not a polite FIN: a
//! transaction in flight fails the way it does when a network path dies). [`Proxy::restore`]
//! listens on the same port again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One proxy: a local port forwarding to `target`.
pub struct Proxy {
    addr: SocketAddr,
    target: String,
    /// Cancels the acceptor and every connection of the current "up" period.
    up: Mutex<Option<CancellationToken>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// A running proxy to `target` (`host:port`) on a free local port.
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            target: target.to_owned(),
            up: Mutex::new(None),
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
        *self.up.lock().unwrap() = Some(token.clone());
        let (target, connections) = (self.target.clone(), self.connections.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((inbound, _)) = accepted else { continue };
                let handle = tokio::spawn(forward(inbound, target.clone(), token.clone()));
                connections.lock().unwrap().push(handle);
            }
        });
    }

    /// Refuses new connections and resets the open ones. Returns once every connection is gone.
    pub async fn cut(&self) {
        if let Some(token) = self.up.lock().unwrap().take() {
            token.cancel();
        }
        let handles: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        for handle in handles {
            let _ = handle.await;
        }
    }

    /// Listens on the same port again (retrying while the old socket is still being released).
    pub async fn restore(&self) {
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("proxy could not listen on {} again", self.addr);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(token) = self.up.lock().unwrap().take() {
            token.cancel();
        }
    }
}

/// Copies both ways until either side closes or the proxy is cut; a cut resets both sides.
async fn forward(mut inbound: TcpStream, target: String, cut: CancellationToken) {
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
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

//! The Listener actor: accepts client connections on one worker.
//!
//! - **Owns**: this worker's clones of the proxy's listening sockets and
//!   their accept loops.
//! - **Receives**: [`StopAccepting`] at shutdown.
//! - **Sends**: nothing; it starts one [`TlsSession`] per accepted
//!   connection, and caps their number (`listener.max_connections`).
//!   Addresses outside `listener.allow` / inside `listener.deny` are closed
//!   at once, before any TLS work.
//! - **Restart policy**: lives as long as its worker. Every worker accepts
//!   from the same sockets, so the kernel spreads connections over workers.

use std::io;
use std::net::TcpListener as StdTcpListener;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use log::{debug, warn};

use crate::actors::tls_session::TlsSession;
use crate::runtime::{self, TcpListener};
use crate::worker::Worker;

/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Stop accepting new connections; sessions already open carry on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

/// Accepts connections and starts their sessions.
pub struct Listener {
    sockets: Vec<TcpListener>,
    worker: Rc<Worker>,
}

impl Listener {
    /// Wraps the worker's listening sockets.
    pub fn new(sockets: Vec<StdTcpListener>, worker: Rc<Worker>) -> io::Result<Self> {
        let sockets = sockets.into_iter().map(runtime::listener).collect::<io::Result<_>>()?;
        Ok(Self { sockets, worker })
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for socket in std::mem::take(&mut self.sockets) {
            ctx.spawn(accept_loop(socket, self.worker.clone()).into_actor(self));
        }
    }
}

impl Handler<StopAccepting> for Listener {
    type Result = ();

    fn handle(&mut self, _: StopAccepting, ctx: &mut Context<Self>) {
        debug!("listener stops accepting worker={}", self.worker.index);
        ctx.stop();
    }
}

async fn accept_loop(socket: TcpListener, worker: Rc<Worker>) {
    let max = worker.settings.listener.max_connections;
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("accept failed worker={} error={e}", worker.index);
                runtime::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if !worker.clients.access.permits(peer.ip()) {
            debug!("connection refused peer={peer} reason=access_list");
            drop(stream);
            continue;
        }
        if worker.sessions.get() >= max {
            debug!("connection refused peer={peer} reason=max_connections limit={max}");
            drop(stream);
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            debug!("set_nodelay failed peer={peer} error={e}");
        }
        worker.sessions.set(worker.sessions.get() + 1);
        TlsSession::new(stream, peer, worker.clone()).start();
    }
}

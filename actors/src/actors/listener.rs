//! The Listener actor: accepts client connections on one worker.
//!
//! - **Owns**: this worker's clones of the proxy's listening sockets and
//!   their accept loops.
//! - **Receives**: [`StopAccepting`] at shutdown, [`SetTls`] when the
//!   certificates are replaced.
//! - **Sends**: nothing; it starts one [`TlsSession`] per accepted
//!   connection, and caps their number (`listener.max_connections`).
//!   Addresses outside `listener.allow` / inside `listener.deny` are closed
//!   at once, before any TLS work.
//! - **Restart policy**: supervised (`supervision.*`). A restart keeps the
//!   sockets and re-spawns the accept loops in `started()`, unless the
//!   worker already stopped accepting. Every worker accepts from the same
//!   sockets, so the kernel spreads connections over workers.

use std::io;
use std::net::TcpListener as StdTcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use log::{debug, warn};
use rustls::ServerConfig;

use crate::actors::tls_session::TlsSession;
use crate::runtime::{self, LocalListener};
use crate::worker::Worker;

/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Stop accepting new connections; sessions already open carry on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

/// Use this TLS configuration for new handshakes (certificate replacement);
/// established sessions keep theirs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetTls(pub Arc<ServerConfig>);

/// Accept on these sockets from now on (a reload moved the listener). The
/// old sockets close once every worker has let go of them; connections
/// accepted on them carry on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSockets(pub Vec<StdTcpListener>);

/// Accepts connections and starts their sessions.
pub struct Listener {
    sockets: Vec<Rc<LocalListener>>,
    worker: Rc<Worker>,
    accepting: bool,
    loops: Vec<SpawnHandle>,
}

impl Listener {
    /// Wraps the worker's listening sockets.
    pub fn new(sockets: Vec<StdTcpListener>, worker: Rc<Worker>) -> io::Result<Self> {
        let sockets =
            sockets.into_iter().map(|s| runtime::local_listener(s).map(Rc::new)).collect::<io::Result<_>>()?;
        Ok(Self { sockets, worker, accepting: true, loops: Vec::new() })
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    /// Runs at start and after each restart (a restart drops the loops).
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.loops.clear();
        if !self.accepting {
            return;
        }
        for socket in &self.sockets {
            let handle = ctx.spawn(accept_loop(socket.clone(), self.worker.clone()).into_actor(self));
            self.loops.push(handle);
        }
    }
}

impl Supervised for Listener {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.loops.clear();
    }
}

impl Handler<StopAccepting> for Listener {
    type Result = ();
    fn handle(&mut self, _: StopAccepting, ctx: &mut Context<Self>) {
        debug!("listener stops accepting worker={}", self.worker.index);
        self.accepting = false;
        for handle in self.loops.drain(..) {
            ctx.cancel_future(handle);
        }
    }
}

impl Handler<SetSockets> for Listener {
    type Result = ();
    fn handle(&mut self, msg: SetSockets, ctx: &mut Context<Self>) {
        let sockets: io::Result<Vec<_>> = msg.0.into_iter().map(|s| runtime::local_listener(s).map(Rc::new)).collect();
        let sockets = match sockets {
            Ok(s) => s,
            Err(e) => {
                warn!("listener sockets not replaced worker={} error={e}", self.worker.index);
                return;
            }
        };
        for handle in self.loops.drain(..) {
            ctx.cancel_future(handle);
        }
        self.sockets = sockets;
        if self.accepting {
            for socket in &self.sockets {
                let handle = ctx.spawn(accept_loop(socket.clone(), self.worker.clone()).into_actor(self));
                self.loops.push(handle);
            }
        }
        debug!("listener sockets replaced worker={}", self.worker.index);
    }
}

impl Handler<SetTls> for Listener {
    type Result = ();
    fn handle(&mut self, msg: SetTls, _: &mut Context<Self>) {
        *self.worker.tls.borrow_mut() = msg.0;
        debug!("tls configuration replaced worker={}", self.worker.index);
    }
}

async fn accept_loop(socket: Rc<LocalListener>, worker: Rc<Worker>) {
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
        // Per-IP admission before the worker's session count: a flood from
        // one address is turned away here and never takes the slots that
        // other clients need (the permit lives as long as the session).
        let Some(permit) = worker.clients.admit(peer.ip()) else {
            debug!("connection refused peer={peer} reason=max_connections_per_ip");
            drop(stream);
            continue;
        };
        if worker.sessions.get() >= max {
            debug!("connection refused peer={peer} reason=max_connections limit={max}");
            drop(stream);
            continue;
        }
        worker.sessions.set(worker.sessions.get() + 1);
        TlsSession::new(stream, peer, worker.clone(), permit).start();
    }
}

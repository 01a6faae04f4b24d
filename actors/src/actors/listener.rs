//! The Listener actor: accepts client connections on one worker.
//!
//! - **Owns**: this worker's clones of the proxy's listening sockets and
//!   their accept loops.
//! - **Receives**: [`StopAccepting`] at shutdown, [`SetTls`] when the
//!   certificates are replaced, [`Adopt`] from another worker's Listener.
//! - **Sends**: [`Adopt`] to the Listener of the worker with the fewest
//!   sessions, when this one has [`SLACK`] more (see [`Spread`]). It starts
//!   one [`TlsSession`] per connection it keeps, and caps their number
//!   (`listener.max_connections`). Addresses outside `listener.allow` /
//!   inside `listener.deny` are closed at once, before any TLS work.
//! - **Restart policy**: supervised (`supervision.*`). A restart keeps the
//!   sockets and re-spawns the accept loops in `started()`, unless the
//!   worker already stopped accepting. Every worker accepts from the same
//!   sockets, registered exclusive: a connection that arrives while the
//!   workers sleep wakes one of them, and [`Spread`] evens out what that
//!   worker takes.

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use log::{debug, warn};
use rustls::ServerConfig;

use crate::actors::tls_session::TlsSession;
use crate::limits::ConnPermit;
use crate::runtime::{self, Accepted, LocalListener};
use crate::worker::Worker;

/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How many more sessions than the least-loaded worker a worker may have
/// before it hands new connections over.
pub const SLACK: usize = 2;

/// A connection another worker accepted and hands over (see [`Spread`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    stream: Accepted,
    peer: SocketAddr,
    permit: ConnPermit,
    counted: Counted,
}

/// How the workers of one proxy share new connections.
///
/// The workers accept from the same sockets, and a connection that arrives
/// while they all sleep wakes only one of them, which takes every
/// connection waiting. A burst would pile onto that worker, and a
/// connection stays for its life on the worker that serves it. So each
/// worker counts its open sessions here, and one that accepts a connection
/// while it has [`SLACK`] sessions more than the least-loaded worker hands
/// the connection to that worker's Listener (HAProxy spreads accepted
/// connections over its threads the same way). Short connections under a
/// light load stay where they were accepted, which saves a wake-up each.
#[derive(Debug)]
pub struct Spread {
    sessions: Box<[Counter]>,
    listeners: OnceLock<Vec<Recipient<Adopt>>>,
}

/// One worker's count, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counter(AtomicUsize);

impl Spread {
    /// Counts for `workers` workers; nothing is handed over until
    /// [`Spread::set_listeners`].
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self { sessions: (0..workers).map(|_| Counter::default()).collect(), listeners: OnceLock::new() })
    }

    /// The workers' Listeners, by worker index, once all have started.
    pub fn set_listeners(&self, listeners: Vec<Recipient<Adopt>>) {
        let _ = self.listeners.set(listeners);
    }

    /// Open sessions of each worker.
    pub fn sessions(&self) -> Vec<usize> {
        self.sessions.iter().map(|c| c.0.load(Relaxed)).collect()
    }

    /// Counts a connection for `worker` until the returned guard drops
    /// (with the session that serves it, or at once if none does). A
    /// connection handed over is counted for its new worker at once, so
    /// that a burst is not all handed to a worker that has yet to see it.
    fn counted(self: &Arc<Self>, worker: usize) -> Counted {
        self.count(worker, 1);
        Counted { spread: self.clone(), worker }
    }

    fn count(&self, worker: usize, delta: isize) {
        if let Some(c) = self.sessions.get(worker) {
            if delta >= 0 {
                c.0.fetch_add(delta.unsigned_abs(), Relaxed);
            } else {
                let _ = c.0.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(delta.unsigned_abs())));
            }
        }
    }

    /// The worker that should serve a connection `me` accepted, if not `me`.
    fn elsewhere(&self, me: usize) -> Option<usize> {
        let mine = self.sessions.get(me)?.0.load(Relaxed);
        let (least, fewest) = self.sessions.iter().map(|c| c.0.load(Relaxed)).enumerate().min_by_key(|&(_, n)| n)?;
        (least != me && mine >= fewest + SLACK).then_some(least)
    }

    /// Hands `adopt`, counted for worker `to`, to that worker; gives it
    /// back, counted for `me` instead, if that worker's Listener is gone
    /// or its mailbox is full.
    fn hand_over(self: &Arc<Self>, me: usize, to: usize, adopt: Adopt) -> Result<(), Adopt> {
        let sent = match self.listeners.get().and_then(|l| l.get(to)) {
            Some(listener) => listener.try_send(adopt).map_err(SendError::into_inner),
            None => Err(adopt),
        };
        sent.map_err(|mut adopt| {
            adopt.counted = self.counted(me);
            adopt
        })
    }
}

/// A connection counted in a worker's [`Spread`] count; dropping it takes
/// the count back (like a [`ConnPermit`] for its client's address).
#[derive(Debug)]
pub struct Counted {
    spread: Arc<Spread>,
    worker: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.spread.count(self.worker, -1);
    }
}

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
        let to = worker.spread.elsewhere(worker.index);
        let counted = worker.spread.counted(to.unwrap_or(worker.index));
        let mut adopt = Adopt { stream, peer, permit, counted };
        if let Some(to) = to {
            match worker.spread.hand_over(worker.index, to, adopt) {
                Ok(()) => {
                    debug!("connection handed over peer={peer} worker={} to={to}", worker.index);
                    continue;
                }
                Err(back) => adopt = back,
            }
        }
        serve(&worker, adopt);
    }
}

/// Starts the session of a connection, unless the worker is full.
fn serve(worker: &Rc<Worker>, Adopt { stream, peer, permit, counted }: Adopt) {
    let max = worker.settings.listener.max_connections;
    if worker.sessions.get() >= max {
        debug!("connection refused peer={peer} reason=max_connections limit={max}");
        return;
    }
    match stream.register() {
        Ok(stream) => {
            worker.sessions.set(worker.sessions.get() + 1);
            TlsSession::new(stream, peer, worker.clone(), permit, counted).start();
        }
        Err(e) => warn!("connection dropped peer={peer} worker={} error={e}", worker.index),
    }
}

impl Handler<Adopt> for Listener {
    type Result = ();
    fn handle(&mut self, msg: Adopt, _: &mut Context<Self>) {
        if !self.accepting {
            debug!("connection refused peer={} reason=draining", msg.peer);
            return;
        }
        serve(&self.worker, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_hands_over_once_it_has_slack_more_than_the_least_loaded() {
        let spread = Spread::new(3);
        assert_eq!(spread.elsewhere(0), None, "all even");
        spread.count(0, SLACK as isize - 1);
        assert_eq!(spread.elsewhere(0), None, "within the slack");
        spread.count(0, 1);
        assert_eq!(spread.elsewhere(0), Some(1), "the first of the least loaded");
        spread.count(1, 3);
        assert_eq!(spread.elsewhere(0), Some(2));
        assert_eq!(spread.elsewhere(2), None, "the least loaded keeps its own");
        spread.count(2, -5);
        assert_eq!(spread.sessions(), [SLACK, 3, 0], "counts never go below zero");
        let held = spread.counted(2);
        assert_eq!(spread.sessions(), [SLACK, 3, 1]);
        drop(held);
        assert_eq!(spread.sessions(), [SLACK, 3, 0], "a dropped guard takes its count back");
        assert_eq!(Spread::new(1).elsewhere(0), None, "one worker keeps everything");
        assert_eq!(spread.elsewhere(7), None, "an unknown worker keeps it");
    }
}

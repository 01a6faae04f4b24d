//! Edge-triggered readiness for a worker thread's connections.
//!
//! async-io registers every socket one-shot in its global epoll, so every
//! wait for readiness costs an `epoll_ctl` to re-arm it (measured: 2.2 per
//! proxied request). A worker instead keeps its connections in an epoll
//! instance of its own, each registered once, edge-triggered, as nginx and
//! tokio do. That instance's descriptor is itself one source on the async-io
//! reactor, so the worker thread still sleeps in one place (`block_on`), and
//! one re-arm serves a whole batch of events. [`dispatch`] runs in the
//! worker's root future: it drains the instance and wakes the tasks.
//!
//! Readiness is a flag per direction, set by an event and cleared by
//! `EAGAIN` or by a short read (the socket was drained: the next data to
//! arrive raises a new edge).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use async_io::Async;
use rustix::buffer::spare_capacity;
use rustix::event::{Timespec, epoll};

thread_local! {
    /// The worker thread's epoll instance (None on other threads).
    static REACTOR: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

/// Events taken from the instance per `epoll_wait`.
const BATCH: usize = 256;

/// Installs a reactor on the current (worker) thread.
pub(super) fn install() -> io::Result<()> {
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let reactor = Rc::new(Reactor { epoll: Async::new(epoll)?, sources: RefCell::default() });
    REACTOR.with(|r| *r.borrow_mut() = Some(reactor));
    Ok(())
}

/// Removes the current thread's reactor.
pub(super) fn uninstall() {
    REACTOR.with(|r| *r.borrow_mut() = None);
}

/// The current thread's reactor, if it is a worker.
pub(super) fn current() -> Option<Rc<Reactor>> {
    REACTOR.try_with(|r| r.borrow().clone()).ok().flatten()
}

/// Drains the worker's epoll instance whenever it has events, forever
/// (it runs beside the worker's main future and must never end first).
pub(super) async fn dispatch() {
    let Some(reactor) = current() else { return std::future::pending().await };
    let mut events = Vec::with_capacity(BATCH);
    loop {
        if let Err(e) = reactor.epoll.readable().await {
            log::error!("worker epoll instance failed: {e}");
            return std::future::pending().await;
        }
        loop {
            events.clear();
            let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
            if epoll::wait(reactor.epoll.get_ref(), spare_capacity(&mut events), Some(&zero)).is_err() {
                break;
            }
            for event in &events {
                reactor.deliver(event.data.u64(), event.flags);
            }
            if events.len() < BATCH {
                break;
            }
        }
    }
}

/// One worker's epoll instance and its registered sources.
pub(super) struct Reactor {
    epoll: Async<OwnedFd>,
    sources: RefCell<Slots>,
}

/// Registered sources by slot; a key is `slot | generation << 32`, so an
/// event for a closed source never reaches the slot's next tenant.
#[derive(Default)]
struct Slots {
    entries: Vec<(u32, Option<Rc<Source>>)>,
    free: Vec<usize>,
}

impl Reactor {
    /// Registers `fd` (non-blocking) for both directions, edge-triggered.
    pub(super) fn register(self: &Rc<Self>, fd: impl AsFd) -> io::Result<Registration> {
        let mut slots = self.sources.borrow_mut();
        let slot = slots.free.pop().unwrap_or_else(|| {
            slots.entries.push((0, None));
            slots.entries.len() - 1
        });
        let generation = slots.entries[slot].0.wrapping_add(1);
        let key = slot as u64 | u64::from(generation) << 32;
        let source = Rc::new(Source::default());
        slots.entries[slot] = (generation, Some(source.clone()));
        drop(slots);
        let flags = epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
        if let Err(e) = epoll::add(self.epoll.get_ref(), fd, epoll::EventData::new_u64(key), flags) {
            self.release(slot);
            return Err(e.into());
        }
        Ok(Registration { reactor: self.clone(), slot, source })
    }

    fn release(&self, slot: usize) {
        let mut slots = self.sources.borrow_mut();
        slots.entries[slot].1 = None;
        slots.free.push(slot);
    }

    fn deliver(&self, key: u64, flags: epoll::EventFlags) {
        let (slot, generation) = ((key & 0xffff_ffff) as usize, (key >> 32) as u32);
        let source = match self.sources.borrow().entries.get(slot) {
            Some((g, Some(source))) if *g == generation => source.clone(),
            _ => return,
        };
        use epoll::EventFlags as F;
        if flags.intersects(F::RDHUP | F::HUP | F::ERR) {
            source.read.closed.set(true);
        }
        if flags.intersects(F::HUP | F::ERR) {
            source.write.closed.set(true);
        }
        if flags.intersects(F::IN | F::RDHUP | F::HUP | F::ERR | F::PRI) {
            source.read.set_ready();
        }
        if flags.intersects(F::OUT | F::HUP | F::ERR) {
            source.write.set_ready();
        }
    }
}

/// Readiness of one source.
#[derive(Default)]
struct Source {
    read: Direction,
    write: Direction,
}

/// Readiness of one direction, and the task waiting for it.
struct Direction {
    ready: Cell<bool>,
    /// The peer closed (or the socket failed): no further edge will come,
    /// so the direction stays ready and each operation reports what is left
    /// (the last bytes, then end of stream or the error).
    closed: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Default for Direction {
    fn default() -> Self {
        // New sockets are tried first: an accepted connection usually has
        // its first bytes waiting, and a new one can always be written.
        Self { ready: Cell::new(true), closed: Cell::new(false), waker: Cell::new(None) }
    }
}

impl Direction {
    fn set_ready(&self) {
        self.ready.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Runs `op` while the direction is ready; `Pending` (and the task
    /// remembered) once it is not. `drained(result)` tells whether a
    /// successful result emptied the direction.
    fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<T>,
        drained: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        loop {
            if !self.ready.get() {
                let waker = match self.waker.take() {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                self.waker.set(Some(waker));
                return Poll::Pending;
            }
            match op() {
                Ok(v) => {
                    if drained(&v) && !self.closed.get() {
                        self.ready.set(false);
                    }
                    return Poll::Ready(Ok(v));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.closed.get() => self.ready.set(false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Closed but nothing to report yet (a half-close seen
                    // before the data): wait for the next event after all.
                    self.ready.set(false);
                    self.closed.set(false);
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// A source's registration; dropping it frees the slot (closing the
/// descriptor removes it from the epoll instance).
pub(super) struct Registration {
    reactor: Rc<Reactor>,
    slot: usize,
    source: Rc<Source>,
}

impl Registration {
    /// Reads with `read` once the source is readable. A read that returned
    /// less than `want` bytes (but not 0: end of stream stays readable)
    /// drained the socket.
    pub(super) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        want: usize,
        read: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.source.read.poll(cx, read, |&n| n > 0 && n < want)
    }

    /// Writes with `write` once the source is writable.
    pub(super) fn poll_write(
        &self,
        cx: &mut Context<'_>,
        write: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.source.write.poll(cx, write, |_| false)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.reactor.release(self.slot);
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("slot", &self.slot).finish_non_exhaustive()
    }
}

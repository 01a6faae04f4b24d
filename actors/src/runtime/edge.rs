//! Edge-triggered readiness for a worker thread's connections, and the
//! loop that runs the worker.
//!
//! async-io registers every socket one-shot in its global epoll, so every
//! wait for readiness costs an `epoll_ctl` to re-arm it (measured: 2.2 per
//! proxied request), and all threads share that one reactor. A worker
//! instead keeps its listeners and connections in an epoll instance of its
//! own, each registered once, edge-triggered, as nginx and tokio do, and
//! sleeps in that instance ([`block_on`]). Wake-ups from other threads
//! (actix messages, tokio timers, the few async-io sources a worker uses,
//! such as sleeps) arrive through an eventfd in the same instance; async-io's
//! own driver thread runs its reactor.
//!
//! Readiness is a flag per direction, set by an event and cleared by
//! `EAGAIN` or by a short read (the socket was drained: the next data to
//! arrive raises a new edge).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};

thread_local! {
    /// The worker thread's epoll instance (None on other threads).
    static REACTOR: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
    /// When the worker's loop last woke up (None outside [`Runner::block_on`]).
    static WOKE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Events taken from the instance per `epoll_wait`.
const BATCH: usize = 256;

/// Key of the cross-thread wake-up eventfd in the epoll instance.
const NOTIFY_KEY: u64 = u64::MAX;

/// Installs a reactor on the current (worker) thread.
pub(super) fn install() -> io::Result<()> {
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let reactor = Rc::new(Reactor { epoll, sources: RefCell::default() });
    REACTOR.with(|r| *r.borrow_mut() = Some(reactor));
    Ok(())
}

/// Removes the current thread's reactor.
pub(super) fn uninstall() {
    REACTOR.with(|r| *r.borrow_mut() = None);
}

/// When the running worker loop last woke up, if this thread runs one.
pub(super) fn woke() -> Option<Instant> {
    WOKE.get()
}

/// The current thread's reactor, if it is a worker.
pub(super) fn current() -> Option<Rc<Reactor>> {
    REACTOR.try_with(|r| r.borrow().clone()).ok().flatten()
}

/// Wakes the worker's loop: a flag when the loop is running, an eventfd
/// write when it sleeps in `epoll_wait`.
struct Notify {
    woken: AtomicBool,
    sleeping: AtomicBool,
    eventfd: OwnedFd,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, SeqCst) && self.sleeping.load(SeqCst) {
            let _ = rustix::io::write(&self.eventfd, &1u64.to_ne_bytes());
        }
    }
}

/// The worker's loop: its epoll instance and the wake-up eventfd in it.
pub(super) struct Runner {
    reactor: Rc<Reactor>,
    notify: Arc<Notify>,
}

impl Runner {
    /// A loop over the current thread's reactor (see [`install`]).
    pub(super) fn new() -> io::Result<Self> {
        let reactor = current().ok_or_else(|| io::Error::other("no worker reactor on this thread"))?;
        let eventfd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
        epoll::add(&reactor.epoll, &eventfd, epoll::EventData::new_u64(NOTIFY_KEY), flags)?;
        let notify = Arc::new(Notify { woken: AtomicBool::new(true), sleeping: AtomicBool::new(false), eventfd });
        Ok(Self { reactor, notify })
    }

    /// Runs `fut` until it completes: polls it when woken, otherwise sleeps
    /// in the epoll instance, delivering readiness to the sources. Before
    /// each sleep it calls `on_tick`, with the time once per `tick`; while
    /// `on_tick` reports timers armed the sleep lasts until the next tick,
    /// otherwise until an event (an idle worker does not wake up). The
    /// clock is read once per wake-up, and that time is what [`woke`]
    /// returns meanwhile.
    pub(super) fn block_on<T>(
        self,
        fut: impl Future<Output = T>,
        tick: Duration,
        mut on_tick: impl FnMut(Option<Instant>) -> bool,
    ) -> T {
        let Self { reactor, notify } = self;
        let waker = Waker::from(notify.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(fut);
        let mut events = Vec::with_capacity(BATCH);
        let mut now = Instant::now();
        let mut next_tick = now + tick;
        WOKE.set(Some(now));
        // No loop, no wake-up time, however the loop ends (a panic too).
        struct Unset;
        impl Drop for Unset {
            fn drop(&mut self) {
                WOKE.set(None);
            }
        }
        let _unset = Unset;
        loop {
            if notify.woken.swap(false, SeqCst)
                && let Poll::Ready(v) = fut.as_mut().poll(&mut cx)
            {
                return v;
            }
            // The wake-up's time, behind the clock by the work since: a
            // tick or a sleep's end comes that much later.
            let armed = if now >= next_tick {
                next_tick = now + tick;
                on_tick(Some(now))
            } else {
                on_tick(None)
            };
            notify.sleeping.store(true, SeqCst);
            let wait = if notify.woken.load(SeqCst) {
                Some(Duration::ZERO)
            } else {
                armed.then(|| next_tick.saturating_duration_since(now))
            };
            let timeout = wait.map(|w| Timespec { tv_sec: w.as_secs() as _, tv_nsec: w.subsec_nanos().into() });
            events.clear();
            let waited = epoll::wait(&reactor.epoll, spare_capacity(&mut events), timeout.as_ref());
            notify.sleeping.store(false, SeqCst);
            now = Instant::now();
            WOKE.set(Some(now));
            if let Err(e) = waited {
                if e != rustix::io::Errno::INTR {
                    log::error!("worker epoll_wait failed: {e}");
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            for event in &events {
                match event.data.u64() {
                    NOTIFY_KEY => {
                        let mut buf = [0u8; 8];
                        let _ = rustix::io::read(&notify.eventfd, &mut buf);
                        notify.woken.store(true, SeqCst);
                    }
                    key => reactor.deliver(key, event.flags),
                }
            }
        }
    }
}

/// One worker's epoll instance and its registered sources.
pub(super) struct Reactor {
    epoll: OwnedFd,
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
        use epoll::EventFlags as F;
        self.add(fd, F::IN | F::OUT | F::RDHUP | F::ET)
    }

    /// Registers a listening socket (non-blocking), edge-triggered and
    /// exclusive: when the workers sharing it all sleep, a new connection
    /// wakes one of them, not every one (a worker that is awake still gets
    /// the event, so a busy worker never holds a connection back). Each
    /// worker accepts until `EAGAIN`, so whichever is woken takes every
    /// connection waiting. Kernels before 4.5 lack the flag: all are woken.
    pub(super) fn register_listener(self: &Rc<Self>, fd: impl AsFd) -> io::Result<Registration> {
        use epoll::EventFlags as F;
        match self.add(fd.as_fd(), F::IN | F::ET | F::EXCLUSIVE) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => self.add(fd, F::IN | F::ET),
            other => other,
        }
    }

    fn add(self: &Rc<Self>, fd: impl AsFd, flags: epoll::EventFlags) -> io::Result<Registration> {
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
        if let Err(e) = epoll::add(&self.epoll, fd, epoll::EventData::new_u64(key), flags) {
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.set(false),
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

    /// Ready while the source is readable (as far as the last edge and
    /// read tell); otherwise the task waits for the next edge.
    pub(super) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.source.read.poll(cx, || Ok(()), |_| false)
    }

    /// What the events since the last drained read say of the reading
    /// side, without a syscall: `(closed, readable)`, the peer closed (or
    /// the socket failed), and bytes or the end may be waiting.
    pub(super) fn read_state(&self) -> (bool, bool) {
        (self.source.read.closed.get(), self.source.read.ready.get())
    }

    /// Records that a read (a peek) found nothing waiting.
    pub(super) fn read_drained(&self) {
        if !self.source.read.closed.get() {
            self.source.read.ready.set(false);
        }
    }

    /// Runs `op` (an accept) once the source is readable; `EAGAIN` waits
    /// for the next edge.
    pub(super) fn poll_accept<T>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        self.source.read.poll(cx, op, |_| false)
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

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    /// How many of two threads, each asleep in an epoll instance of its own
    /// with the same listening socket registered, a new connection wakes.
    fn threads_woken(listener: &std::net::TcpListener, exclusive: bool) -> usize {
        let barrier = Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let fd = listener.try_clone().expect("clone");
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
                    let reactor = Rc::new(Reactor { epoll, sources: RefCell::default() });
                    let _reg = if exclusive { reactor.register_listener(&fd) } else { reactor.register(&fd) }
                        .expect("register");
                    barrier.wait();
                    let mut events = Vec::with_capacity(4);
                    let timeout = Timespec { tv_sec: 0, tv_nsec: 300_000_000 };
                    epoll::wait(&reactor.epoll, spare_capacity(&mut events), Some(&timeout)).expect("wait");
                    events.len()
                })
            })
            .collect();
        barrier.wait();
        // Both are asleep in `epoll_wait` by now (were one not, it would
        // find the event queued when it got there: counted as woken).
        std::thread::sleep(Duration::from_millis(100));
        let _client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let woken = threads.into_iter().map(|t| t.join().expect("thread")).filter(|&n| n > 0).count();
        listener.accept().expect("the connection waited");
        woken
    }

    /// Workers share their listening sockets: a connection arriving while
    /// they all sleep wakes one of them, not every one.
    #[test]
    fn a_new_connection_wakes_one_sleeping_worker() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        assert_eq!(threads_woken(&listener, false), 2, "without the flag, each sleeper is woken");
        // A thread slow to reach `epoll_wait` would see the event too: one
        // round of five with exactly one woken shows the flag at work.
        let rounds: Vec<usize> = (0..5).map(|_| threads_woken(&listener, true)).collect();
        assert!(rounds.contains(&1), "woken per round: {rounds:?}");
    }
}

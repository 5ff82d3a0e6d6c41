//! Long-idle keep-alive connections, parked: a connection that has waited
//! [`PARK_AFTER`] for its next request gives up its task and its place in
//! tokio's reactor, and waits as a bare socket in its worker's parking lot
//! (one mio poller and one task per worker thread). When bytes arrive it
//! gets a new task and carries on (taking the newest configuration, if a
//! reload came meanwhile); when its wait runs out, or on a graceful stop,
//! it is closed. This is nginx's model for idle
//! connections (a socket and a few words of state), where a task per
//! connection would cost kilobytes each.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Token};
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

use super::conn::Waiting;
use crate::http::server::ConnState;

/// How long a kept-alive connection waits in its own task before it parks.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

struct Parked {
    stream: mio::net::TcpStream,
    state: ConnState,
    waiting: Waiting,
}

/// One worker thread's parked connections.
struct Lot {
    registry: mio::Registry,
    parked: Mutex<Parking>,
    /// A connection was parked: its deadline may be the nearest now.
    arrived: Notify,
}

#[derive(Default)]
struct Parking {
    next_token: usize,
    entries: HashMap<usize, Parked>,
    /// Deadlines, nearest first (entries already gone are skipped).
    deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
}

thread_local! {
    static LOT: RefCell<Option<Arc<Lot>>> = const { RefCell::new(None) };
}

/// Parks `stream`; `state` and `waiting` are what it needs to carry on.
/// Closes it instead if no parking lot can be had on this thread.
pub fn park(stream: TcpStream, state: ConnState, waiting: Waiting) {
    let Some(lot) = lot(&state.epoch) else {
        return;
    };
    let Ok(std) = stream.into_std() else { return };
    let mut stream = mio::net::TcpStream::from_std(std);
    let Ok(mut parking) = lot.parked.lock() else {
        return;
    };
    let token = parking.next_token;
    parking.next_token = parking.next_token.wrapping_add(1);
    if lot
        .registry
        .register(&mut stream, Token(token), Interest::READABLE)
        .is_err()
    {
        return;
    }
    let deadline = waiting.deadline(&state.context);
    parking.deadlines.push(Reverse((deadline, token)));
    parking.entries.insert(
        token,
        Parked {
            stream,
            state,
            waiting,
        },
    );
    drop(parking);
    lot.arrived.notify_one();
}

fn lot(epoch: &watch::Receiver<u64>) -> Option<Arc<Lot>> {
    LOT.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some(lot) = cell.as_ref() {
            return Some(lot.clone());
        }
        let poll = mio::Poll::new().ok()?;
        let registry = poll.registry().try_clone().ok()?;
        // SAFETY: a mio::Poll owns its epoll descriptor for as long as it
        // lives and always returns that same descriptor; the AsyncFd owns the
        // Poll, so the descriptor stays open while it is registered.
        let poller = unsafe { AsyncFd::register(poll) }.ok()?;
        let lot = Arc::new(Lot {
            registry,
            parked: Mutex::new(Parking::default()),
            arrived: Notify::new(),
        });
        tokio::spawn(watch_lot(lot.clone(), poller, epoch.clone()));
        *cell = Some(lot.clone());
        Some(lot)
    })
}

/// The lot's task: wakes parked connections that have bytes to read,
/// closes those whose wait ran out, and all of them on a graceful stop.
async fn watch_lot(lot: Arc<Lot>, mut poller: AsyncFd<mio::Poll>, mut epoch: watch::Receiver<u64>) {
    let mut events = Events::with_capacity(256);
    loop {
        let nearest = lot
            .parked
            .lock()
            .ok()
            .and_then(|p| p.deadlines.peek().map(|Reverse((d, _))| *d));
        let sleep = nearest.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            ready = poller.readable_mut() => {
                let Ok(mut guard) = ready else { return };
                loop {
                    events.clear();
                    if guard.get_inner_mut().poll(&mut events, Some(Duration::ZERO)).is_err() {
                        break;
                    }
                    if events.is_empty() {
                        guard.clear_ready();
                        break;
                    }
                    for event in events.iter() {
                        unpark(&lot, event.token().0);
                    }
                }
            }
            _ = tokio::time::sleep_until(sleep.into()) => expire(&lot, Instant::now()),
            _ = lot.arrived.notified() => {}
            changed = epoch.changed() => {
                if changed.is_err() {
                    return;
                }
                epoch.mark_unchanged();
                close_if_stopping(&lot);
            }
        }
    }
}

/// Gives a parked connection a task again.
fn unpark(lot: &Lot, token: usize) {
    let Some(mut parked) = lot
        .parked
        .lock()
        .ok()
        .and_then(|mut p| p.entries.remove(&token))
    else {
        return;
    };
    let _ = lot.registry.deregister(&mut parked.stream);
    let std: std::net::TcpStream = parked.stream.into();
    let Ok(stream) = TcpStream::from_std(std) else {
        return;
    };
    // A reload while parked is seen by the driver, which takes the new
    // configuration before the next request.
    let state = parked.state;
    let mut waiting = parked.waiting;
    // Not straight back: the reactor has yet to report the bytes that woke it.
    waiting.park_at = Instant::now() + PARK_AFTER;
    tokio::spawn(crate::observe::error_log::scoped(
        None,
        crate::http::server::resume(stream, state, waiting),
    ));
}

/// Closes the connections whose wait has run out by `now`.
fn expire(lot: &Lot, now: Instant) {
    let Ok(mut parking) = lot.parked.lock() else {
        return;
    };
    while let Some(Reverse((deadline, token))) = parking.deadlines.peek().copied() {
        if deadline > now {
            break;
        }
        parking.deadlines.pop();
        if let Some(mut parked) = parking.entries.remove(&token) {
            let _ = lot.registry.deregister(&mut parked.stream);
        }
    }
}

/// On a graceful stop, closes every parked connection (a reload closes
/// none: each takes the new configuration when its next request comes).
fn close_if_stopping(lot: &Lot) {
    let Ok(mut parking) = lot.parked.lock() else {
        return;
    };
    let stopping: Vec<usize> = parking
        .entries
        .iter()
        .filter(|(_, p)| *p.state.context.shared.stopping.borrow())
        .map(|(t, _)| *t)
        .collect();
    for token in stopping {
        if let Some(mut parked) = parking.entries.remove(&token) {
            let _ = lot.registry.deregister(&mut parked.stream);
        }
    }
}

//! The epoch ticker: the thread that time-slices guests.
//!
//! Every tick it increments the engine's epoch, which makes each running
//! guest yield to the executor at its next check. Its wake-ups cost CPU
//! (about a seventh of a core at a 100 µs tick), so the ticker only runs
//! while some worker of this process is running guest code: each store
//! holds a [`Running`] guard, each comm call a [`Waiting`] one that takes
//! its worker out of the count while the call waits, and with none left
//! the thread parks. A worker inside a call needs no tick: the host
//! answers its call, not its code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;

use anyhow::Context as _;

/// The ticker of one engine; stops when dropped.
pub(super) struct Ticker {
    shared: Arc<Shared>,
}

struct Shared {
    /// Workers alive and outside a comm call: the ticker runs while this
    /// is above zero.
    workers: AtomicUsize,
    stopped: AtomicBool,
    thread: Thread,
    /// Ticks so far (for tests).
    ticks: AtomicU64,
}

/// Keeps the ticker running while it lives; one per worker store.
pub(crate) struct Running(Arc<Shared>);

/// Takes one worker out of the ticker's count while it lives: the worker
/// is waiting in a comm call.
pub(crate) struct Waiting(Arc<Shared>);

impl Ticker {
    /// Starts the ticker thread of `engine`, ticking every `tick` while a
    /// worker is running.
    pub(super) fn start(engine: wasmtime::EngineWeak, tick: Duration) -> anyhow::Result<Self> {
        let (handoff, shared) = std::sync::mpsc::sync_channel::<Arc<Shared>>(1);
        let thread = std::thread::Builder::new()
            .name("burst-epoch".into())
            .spawn(move || {
                let Ok(shared) = shared.recv() else { return };
                while !shared.stopped.load(Ordering::Acquire) {
                    if shared.workers.load(Ordering::Acquire) == 0 {
                        // A worker that starts after this load unparks us,
                        // and an unpark before the park makes it return.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(tick);
                    match engine.upgrade() {
                        Some(engine) => {
                            engine.increment_epoch();
                            shared.ticks.fetch_add(1, Ordering::Relaxed);
                        }
                        None => break,
                    }
                }
            })
            .context("starting the epoch ticker")?;
        let shared = Arc::new(Shared {
            workers: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            thread: thread.thread().clone(),
        });
        handoff.send(Arc::clone(&shared)).context("starting the epoch ticker")?;
        Ok(Self { shared })
    }

    /// A guard that keeps the ticker running for one worker.
    pub(super) fn running(&self) -> Running {
        self.shared.resume();
        Running(Arc::clone(&self.shared))
    }
}

impl Shared {
    fn resume(&self) {
        if self.workers.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
    }
}

impl Running {
    /// Pauses this worker's share of the ticker until the guard drops;
    /// taken for each comm call.
    pub(crate) fn waiting(&self) -> Waiting {
        self.0.workers.fetch_sub(1, Ordering::AcqRel);
        Waiting(Arc::clone(&self.0))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.workers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.resume();
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_only_while_a_worker_runs() {
        let engine = wasmtime::Engine::default();
        let ticker = Ticker::start(engine.weak(), Duration::from_micros(100)).expect("ticker");
        let ticks = || ticker.shared.ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ticks(), 0, "an idle ticker ticked");

        let running = [ticker.running(), ticker.running()];
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ticks() < 10 {
            assert!(std::time::Instant::now() < deadline, "a running ticker did not tick");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(running);
        // The tick under way when the last worker ended may still land.
        std::thread::sleep(Duration::from_millis(20));
        let after = ticks();
        std::thread::sleep(Duration::from_millis(50));
        assert!(ticks() <= after + 1, "the ticker went on ticking with no worker");

        let again = ticker.running();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ticks() < after + 10 {
            assert!(std::time::Instant::now() < deadline, "a parked ticker did not resume");
            std::thread::sleep(Duration::from_millis(1));
        }

        let waiting = again.waiting();
        std::thread::sleep(Duration::from_millis(20));
        let parked = ticks();
        std::thread::sleep(Duration::from_millis(50));
        assert!(ticks() <= parked + 1, "the ticker ticked while its only worker waited in a call");
        drop(waiting);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ticks() < parked + 10 {
            assert!(std::time::Instant::now() < deadline, "the ticker did not resume after a call");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

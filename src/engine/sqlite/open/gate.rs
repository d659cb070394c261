//! The gate every read of the file passes: it lets the log start over
//! without holding writers back.
//!
//! A checkpoint can only start the WAL over once no reader holds a
//! snapshot older than its last frame. Under steady writes some reader
//! nearly always does, so the checkpoint would have to stop the writer
//! until the reads of the moment end: a store as long as the longest
//! read. Every read of this process checks out a connection through this
//! gate instead, and the checkpointer [closes](ReadGate::close) it for the
//! moment the restart needs: it waits, writers running, for a moment with
//! no read under way and shuts the gate then, so that reads started
//! meanwhile wait for the restart alone; only when such moments do not
//! come does it shut the gate and let the reads of the moment drain, which
//! new reads wait for too.
//!
//! A thread that already holds a pass of a gate (a read inside
//! `consistent`, or a read made while reading) passes again without
//! waiting: waiting would be for its own read to end.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Reads under way.
    reading: usize,
    /// Whether new reads wait.
    closed: bool,
}

/// The gate of one store's reads; see the module's documentation.
#[derive(Default)]
pub(crate) struct ReadGate {
    state: Mutex<State>,
    /// Signalled when a read ends and when the gate opens.
    changed: Condvar,
}

thread_local! {
    /// The gates this thread holds passes of, with how many of each.
    static HELD: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

impl ReadGate {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This gate's identity among the gates a thread holds passes of.
    fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Lets one read through, waiting while the gate is closed (unless
    /// this thread already holds a pass); the read lasts as long as the
    /// pass.
    pub fn enter(self: &Arc<Self>) -> ReadPass {
        let key = self.key();
        let held = HELD.with(|held| held.borrow().iter().any(|(k, _)| *k == key));
        let mut state = self.lock();
        if !held {
            while state.closed {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        state.reading += 1;
        drop(state);
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            match held.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => held.push((key, 1)),
            }
        });
        ReadPass {
            gate: Arc::clone(self),
            _this_thread: PhantomData,
        }
    }

    /// Shuts the gate once no read is under way: first waits up to `gap`
    /// for such a moment, leaving the gate open meanwhile; then shuts it and
    /// waits up to `drain` for the reads under way to end. `None`, with the
    /// gate open again, when they do not.
    pub fn close(&self, gap: Duration, drain: Duration) -> Option<GateClosed<'_>> {
        let reading = |state: &mut State| state.reading > 0;
        let (mut state, _) = self
            .changed
            .wait_timeout_while(self.lock(), gap, reading)
            .unwrap_or_else(PoisonError::into_inner);
        state.closed = true;
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, drain, reading)
            .unwrap_or_else(PoisonError::into_inner);
        if state.reading > 0 {
            state.closed = false;
            drop(state);
            self.changed.notify_all();
            return None;
        }
        Some(GateClosed { gate: self })
    }
}

/// One read's way through a [`ReadGate`]; the read ends when it is
/// dropped. Not `Send`: the thread that holds it is remembered.
pub(crate) struct ReadPass {
    gate: Arc<ReadGate>,
    _this_thread: PhantomData<*const ()>,
}

impl Drop for ReadPass {
    fn drop(&mut self) {
        let key = self.gate.key();
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(i) = held.iter().position(|(k, _)| *k == key) {
                held[i].1 -= 1;
                if held[i].1 == 0 {
                    held.swap_remove(i);
                }
            }
        });
        let mut state = self.gate.lock();
        state.reading -= 1;
        if state.reading == 0 {
            self.gate.changed.notify_all();
        }
    }
}

/// A shut [`ReadGate`]: no read of this process is under way, and new
/// ones wait, until this is dropped.
pub(crate) struct GateClosed<'a> {
    gate: &'a ReadGate,
}

impl Drop for GateClosed<'_> {
    fn drop(&mut self) {
        self.gate.lock().closed = false;
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_closed_gate_holds_new_reads_until_it_opens() {
        let gate = Arc::new(ReadGate::default());
        let closed = gate.close(Duration::ZERO, Duration::ZERO).unwrap();
        let entered = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let _pass = gate.enter();
                entered.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                !entered.load(Ordering::SeqCst),
                "a read passed a closed gate"
            );
            drop(closed);
            reader.join().unwrap();
        });
        assert!(entered.load(Ordering::SeqCst));
    }

    #[test]
    fn closing_waits_for_a_moment_without_reads() {
        let gate = Arc::new(ReadGate::default());
        let pass = gate.enter();
        std::thread::scope(|s| {
            let closer = s.spawn(|| {
                gate.close(Duration::from_secs(10), Duration::ZERO)
                    .is_some()
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!closer.is_finished(), "closed with a read under way");
            drop(pass);
            assert!(
                closer.join().unwrap(),
                "the read ended, yet the gate did not close"
            );
        });
        // Open again: a read passes at once.
        drop(gate.enter());
    }

    #[test]
    fn a_read_that_does_not_end_leaves_the_gate_open() {
        let gate = Arc::new(ReadGate::default());
        let pass = gate.enter();
        let gate2 = Arc::clone(&gate);
        std::thread::spawn(move || {
            assert!(gate2
                .close(Duration::from_millis(10), Duration::from_millis(10))
                .is_none());
        })
        .join()
        .unwrap();
        // Another thread's read passes: the gate opened again.
        let gate3 = Arc::clone(&gate);
        std::thread::spawn(move || drop(gate3.enter()))
            .join()
            .unwrap();
        drop(pass);
    }

    #[test]
    fn a_thread_with_a_pass_passes_a_closing_gate() {
        let gate = Arc::new(ReadGate::default());
        let outer = gate.enter();
        std::thread::scope(|s| {
            let closer = s.spawn(|| {
                gate.close(Duration::ZERO, Duration::from_secs(10))
                    .is_some()
            });
            // Wait until the gate is shut and draining.
            while !gate.lock().closed {
                std::thread::yield_now();
            }
            // This thread's own read inside its read does not wait for it.
            drop(gate.enter());
            drop(outer);
            assert!(closer.join().unwrap());
        });
    }
}

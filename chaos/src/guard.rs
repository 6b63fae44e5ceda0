//! What makes "nothing is left behind, even on Ctrl-C" true: the signal listener, the count of
//! node operations still in flight, and tasks that die with their owner.
//!
//! Three gaps had to be closed, each by one type here:
//! - **A signal between two experiments was lost.** `tokio::signal::ctrl_c()` only sees signals
//!   that arrive while it is being awaited, and once tokio has a handler installed the default
//!   "terminate" action is gone: a Ctrl-C while a report was being written did nothing. An
//!   [`Interrupt`] is created once, before anything starts, and remembers a signal until asked.
//! - **Aborting a task does not stop work already handed elsewhere.** A `redis-server` starting
//!   on a blocking thread, or a container whose `create` request the Docker engine is still
//!   serving, outlives the aborted future that asked for it; a sweep by label that ran right after
//!   the abort could miss a container created a moment later (the "small race if Ctrl-C arrives
//!   mid-way through starting containers"). Every such operation holds a [`Pending`] token until
//!   its result is either handed over or destroyed; [`PendingDone::wait`] returns when no token is
//!   left, and only then does the runner sweep.
//! - **A detached task kept the topology alive.** [`AbortOnDrop`] ties a spawned task (the
//!   nemesis, a rejoin watch, the next experiment's start-up) to the value that owns it.

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

/// SIGINT (and, for the command line, SIGTERM) caught from the moment this is created.
pub struct Interrupt {
    int: Signal,
    term: Option<Signal>,
}

impl Interrupt {
    /// Ctrl-C only: what a library caller (a test) expects to be caught.
    pub fn ctrl_c() -> std::io::Result<Interrupt> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: None,
        })
    }

    /// Ctrl-C and SIGTERM (what CI runners and `timeout` send before SIGKILL): the command line.
    pub fn ctrl_c_and_term() -> std::io::Result<Interrupt> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: Some(signal(SignalKind::terminate())?),
        })
    }

    /// Waits for the next signal (or returns one that arrived since the last call) and returns
    /// its number.
    pub async fn recv(&mut self) -> i32 {
        let term = async {
            match &mut self.term {
                Some(t) => t.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(()) = self.int.recv() => libc::SIGINT,
            Some(()) = term => libc::SIGTERM,
            else => std::future::pending().await,
        }
    }
}

/// The signal's name for messages.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// One unit of "something of this run is still being created or destroyed". Clone it into every
/// operation that can outlive the future that started it; drop it when that operation's result
/// has been handed over or destroyed. Never sends anything: only the drops count.
#[derive(Clone, Debug)]
pub struct Pending {
    _alive: mpsc::Sender<()>,
}

/// The other side of every [`Pending`] of one run.
pub struct PendingDone(mpsc::Receiver<()>);

/// A fresh tracker: hand out clones of the token, keep the waiter.
pub fn pending() -> (Pending, PendingDone) {
    let (tx, rx) = mpsc::channel(1);
    (Pending { _alive: tx }, PendingDone(rx))
}

impl PendingDone {
    /// Waits until every [`Pending`] token is dropped; `false` if some are still alive after
    /// `limit` (a Docker engine that stopped answering).
    pub async fn wait(mut self, limit: Duration) -> bool {
        // `recv` yields `None` once all senders are gone; nothing is ever sent.
        tokio::time::timeout(limit, self.0.recv()).await.is_ok()
    }
}

/// A spawned task that is aborted when this handle is dropped.
pub struct AbortOnDrop<T>(JoinHandle<T>);

impl<T: Send + 'static> AbortOnDrop<T> {
    pub fn spawn(future: impl Future<Output = T> + Send + 'static) -> AbortOnDrop<T> {
        AbortOnDrop(tokio::spawn(future))
    }
}

impl<T> AbortOnDrop<T> {
    /// Waits for the task's result (its end, or its cancellation if aborted).
    pub async fn join(&mut self) -> Result<T, JoinError> {
        (&mut self.0).await
    }

    /// Asks the task to stop; [`join`](Self::join) then returns once it has been dropped.
    pub fn abort(&self) {
        self.0.abort();
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pending_waits_for_every_token_and_only_for_them() {
        let (token, done) = pending();
        let held = token.clone();
        drop(token);
        let release = tokio::spawn(async move {
            tokio::task::yield_now().await;
            drop(held);
        });
        assert!(done.wait(Duration::from_secs(5)).await);
        release.await.unwrap();

        let (token, done) = pending();
        assert!(!done.wait(Duration::from_millis(20)).await);
        drop(token);
    }
}

//! The worker's OS thread: started under a name, woken with `unpark`, and waited for with a
//! time limit that tells a thread that panicked from one that would not stop.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::thread::Thread;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::ChainStopError;

/// How the thread ended: normally, or with a panic's message.
type Outcome = Result<(), String>;

/// A running thread and the word it sends when it ends.
#[derive(Debug)]
pub(crate) struct WorkerThread {
    thread: Thread,
    /// `None` once the end was seen.
    done: Mutex<Option<oneshot::Receiver<Outcome>>>,
}

impl WorkerThread {
    /// Runs `body` on a new thread named `name`; if it panics, `on_panic` gets the message
    /// (on that thread) before the end is reported.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce() + Send + 'static,
        on_panic: impl FnOnce(&str) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (report, done) = oneshot::channel();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let outcome =
                    catch_unwind(AssertUnwindSafe(body)).map_err(|p| panic_message(p.as_ref()));
                if let Err(message) = &outcome {
                    on_panic(message);
                }
                // Nobody may be waiting any more; that is fine.
                let _ = report.send(outcome);
            })?;
        Ok(Self {
            thread: handle.thread().clone(),
            done: Mutex::new(Some(done)),
        })
    }

    /// Wakes the thread if it is parked.
    pub(crate) fn wake(&self) {
        self.thread.unpark();
    }

    /// Waits up to `limit` for the thread to end (it must have been told to). Once it has
    /// ended, later calls return `Ok` at once.
    ///
    /// # Errors
    /// [`ChainStopError::Panicked`] with the panic's message, [`ChainStopError::TimedOut`] when
    /// it is still running after `limit`.
    pub(crate) async fn join(&self, limit: Duration) -> Result<(), ChainStopError> {
        let taken = self.done.lock().ok().and_then(|mut done| done.take());
        let Some(mut done) = taken else {
            return Ok(());
        };
        let Ok(outcome) = tokio::time::timeout(limit, &mut done).await else {
            if let Ok(mut slot) = self.done.lock() {
                *slot = Some(done);
            }
            return Err(ChainStopError::TimedOut { limit });
        };
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(ChainStopError::Panicked { message }),
            // The sender is dropped unsent only if the thread died without unwinding.
            Err(_) => Err(ChainStopError::Panicked {
                message: "the thread ended without reporting".to_owned(),
            }),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_thread_that_ends_joins_once() {
        let thread = WorkerThread::spawn("test-ok", || {}, |_| {}).unwrap();
        thread.join(LIMIT).await.unwrap();
        thread.join(LIMIT).await.unwrap();
    }

    #[tokio::test]
    async fn a_panic_is_reported_with_its_message() {
        let seen = Arc::new(Mutex::new(String::new()));
        let seen_by_hook = seen.clone();
        let thread = WorkerThread::spawn(
            "test-panic",
            || panic!("wallet state torn"),
            move |message| {
                if let Ok(mut seen) = seen_by_hook.lock() {
                    *seen = message.to_owned();
                }
            },
        )
        .unwrap();
        let err = thread.join(LIMIT).await.unwrap_err();
        assert!(
            matches!(&err, ChainStopError::Panicked { message } if message == "wallet state torn"),
            "{err}"
        );
        assert_eq!(*seen.lock().unwrap(), "wallet state torn");
        let formatted = WorkerThread::spawn("test-panic-fmt", || panic!("batch {}", 7), |_| {})
            .unwrap()
            .join(LIMIT)
            .await
            .unwrap_err();
        assert!(formatted.to_string().contains("batch 7"), "{formatted}");
    }

    #[tokio::test]
    async fn a_thread_that_does_not_stop_times_out_and_can_be_waited_for_again() {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_seen = stop.clone();
        let thread = WorkerThread::spawn(
            "test-stuck",
            move || {
                while !stop_seen.load(Ordering::Acquire) {
                    std::thread::park();
                }
            },
            |_| {},
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = thread.join(Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, ChainStopError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < LIMIT);
        assert!(err.to_string().contains("0.2s"), "{err}");
        stop.store(true, Ordering::Release);
        thread.wake();
        thread.join(LIMIT).await.unwrap();
    }
}

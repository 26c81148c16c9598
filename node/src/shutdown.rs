//! Stopping the daemon: the signal that starts it (SIGINT or SIGTERM, delivered once to every
//! part), and the parts that must stop, each under a name, within one time limit.
//!
//! A part that returns an error or panics, while the daemon runs or while it stops, is named in
//! the log and makes the daemon exit non-zero; so does a part still running when the time is up,
//! which is then left behind instead of holding the process forever.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT or SIGTERM.
pub(crate) fn on_signal(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            () = token.cancelled() => return,
        }
        token.cancel();
    });
    Ok(())
}

/// How a part ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    Stopped,
    Failed(String),
    Panicked(String),
}

type Part = BoxFuture<'static, (usize, Ending)>;

/// The parts of a running daemon. Each is a spawned task or a future that ends when the part
/// has stopped; all of them are told to stop through one [`CancellationToken`].
#[derive(Default)]
pub(crate) struct Parts {
    running: FuturesUnordered<Part>,
    /// The names of the running parts, by the number their futures answer with.
    names: BTreeMap<usize, &'static str>,
    failures: Vec<String>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("running", &self.names.values().collect::<Vec<_>>())
            .field("failures", &self.failures)
            .finish()
    }
}

impl Parts {
    /// A spawned task. Its panic is caught by tokio and reported here with its message.
    pub(crate) fn task(&mut self, name: &'static str, handle: JoinHandle<()>) {
        self.add(name, async move {
            match handle.await {
                Ok(()) => Ending::Stopped,
                Err(e) => joined(e),
            }
        });
    }

    /// A spawned task that ends with a result.
    pub(crate) fn fallible_task<E: std::fmt::Display + Send + 'static>(
        &mut self,
        name: &'static str,
        handle: JoinHandle<Result<(), E>>,
    ) {
        self.add(name, async move {
            match handle.await {
                Ok(Ok(())) => Ending::Stopped,
                Ok(Err(e)) => Ending::Failed(format!("{e:#}")),
                Err(e) => joined(e),
            }
        });
    }

    /// A part that stops when `stopped` completes, with its error if it failed.
    pub(crate) fn future(
        &mut self,
        name: &'static str,
        stopped: impl Future<Output = Result<()>> + Send + 'static,
    ) {
        self.add(name, async move {
            match stopped.await {
                Ok(()) => Ending::Stopped,
                Err(e) => Ending::Failed(format!("{e:#}")),
            }
        });
    }

    fn add(&mut self, name: &'static str, ended: impl Future<Output = Ending> + Send + 'static) {
        let id = self.names.last_key_value().map_or(0, |(id, _)| id + 1);
        self.names.insert(id, name);
        self.running
            .push(Box::pin(async move { (id, ended.await) }));
    }

    /// Runs until `token` is cancelled (a signal) or a part ends on its own, which is a failure:
    /// parts run as long as the daemon does. Either way `token` is cancelled on return, so every
    /// part starts stopping.
    pub(crate) async fn run_until_cancelled(&mut self, token: &CancellationToken) {
        let ended = tokio::select! {
            biased;
            () = token.cancelled() => return,
            Some(ended) = self.running.next() => ended,
        };
        let (id, ending) = ended;
        // A part may see the cancellation and end before this task does: that is a stop.
        let ending = match ending {
            Ending::Stopped if !token.is_cancelled() => {
                Ending::Failed("stopped while the daemon was running".into())
            }
            other => other,
        };
        let name = self.record(id, &ending);
        if ending != Ending::Stopped {
            tracing::error!(part = name, "a part of the daemon ended; shutting down");
        }
        token.cancel();
    }

    /// Waits up to `limit` for every part to stop.
    ///
    /// # Errors
    /// Names every part that failed, panicked or did not stop in time.
    pub(crate) async fn stop(mut self, limit: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.running.next()).await {
                Ok(Some((id, ending))) => {
                    self.record(id, &ending);
                }
                Ok(None) => break,
                Err(_) => {
                    let left: Vec<&str> = self.names.values().copied().collect();
                    for name in &left {
                        tracing::error!(
                            part = name,
                            ?limit,
                            "did not stop in time; exiting without it"
                        );
                    }
                    self.failures
                        .push(format!("{} did not stop within {limit:?}", left.join(", ")));
                    break;
                }
            }
        }
        if self.failures.is_empty() {
            return Ok(());
        }
        bail!(
            "the daemon did not stop cleanly: {}",
            self.failures.join("; ")
        )
    }

    /// Logs how the part numbered `id` ended, keeps a failure for the exit, and gives its name.
    fn record(&mut self, id: usize, ending: &Ending) -> &'static str {
        let name = self.names.remove(&id).unwrap_or("a part");
        match ending {
            Ending::Stopped => tracing::debug!(part = name, "stopped"),
            Ending::Failed(e) => {
                tracing::error!(part = name, error = %e, "failed");
                self.failures.push(format!("{name} failed: {e}"));
            }
            Ending::Panicked(message) => {
                tracing::error!(part = name, panic = %message, "panicked");
                self.failures.push(format!("{name} panicked: {message}"));
            }
        }
        name
    }
}

fn joined(e: JoinError) -> Ending {
    if !e.is_panic() {
        return Ending::Failed("cancelled".into());
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    Ending::Panicked(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn until(token: &CancellationToken) -> impl Future<Output = ()> + use<> {
        let token = token.clone();
        async move { token.cancelled().await }
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_that_will_not_stop_is_named_and_left_behind() {
        let token = CancellationToken::new();
        let mut parts = Parts::default();
        parts.task("polite", tokio::spawn(until(&token)));
        parts.task("stubborn", tokio::spawn(std::future::pending()));
        token.cancel();
        let started = tokio::time::Instant::now();
        let err = parts
            .stop(Duration::from_secs(5))
            .await
            .expect_err("a part did not stop");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let message = format!("{err:#}");
        assert!(
            message.contains("stubborn did not stop within 5s"),
            "{message}"
        );
        assert!(!message.contains("polite"), "{message}");
    }

    #[tokio::test]
    async fn panics_and_errors_are_reported_with_their_part() {
        let token = CancellationToken::new();
        let mut parts = Parts::default();
        let waiting = until(&token);
        parts.task(
            "watcher",
            tokio::spawn(async move {
                waiting.await;
                panic!("boom at shutdown");
            }),
        );
        parts.future("server", async { anyhow::bail!("accept failed") });
        // The server ends at once, which a running daemon takes as a failure and stops for.
        parts.run_until_cancelled(&token).await;
        assert!(token.is_cancelled());
        let message = format!(
            "{:#}",
            parts.stop(Duration::from_secs(30)).await.unwrap_err()
        );
        assert!(
            message.contains("server failed: accept failed"),
            "{message}"
        );
        assert!(
            message.contains("watcher panicked: boom at shutdown"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn parts_that_stop_when_told_stop_cleanly() {
        let token = CancellationToken::new();
        let mut parts = Parts::default();
        parts.task("a", tokio::spawn(until(&token)));
        let waiting = until(&token);
        parts.fallible_task(
            "b",
            tokio::spawn(async move {
                waiting.await;
                Ok::<(), std::io::Error>(())
            }),
        );
        let stopper = token.clone();
        tokio::spawn(async move { stopper.cancel() });
        parts.run_until_cancelled(&token).await;
        parts.stop(Duration::from_secs(30)).await.unwrap();
    }
}

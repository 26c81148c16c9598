//! The mirror's side of the sync protocol (`p2p::sync`): the set it reconciles holds the id of
//! every recorded entry, the protocol reads entries from the store (`entries.rs`), and what it
//! learns goes through the same intake as announcements.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::running::Mirror;
use crate::p2p::sync::Learned;

impl Mirror {
    /// Takes what reconciliations learned through the intake, until shutdown.
    pub(super) async fn learn(self, mut learned: mpsc::Receiver<Learned>) {
        loop {
            let Learned { peer, entries } = tokio::select! {
                () = self.inner.shutdown.cancelled() => return,
                learned = learned.recv() => match learned {
                    Some(l) => l,
                    None => return,
                },
            };
            let count = entries.len();
            if !self.inner.settings.download {
                continue;
            }
            match self.admit(entries).await {
                Ok(_) => {
                    self.inner
                        .learned
                        .fetch_add(count as u64, Ordering::Relaxed);
                    tracing::debug!(%peer, count, "entries learned by reconciliation");
                }
                Err(e) => tracing::warn!(error = %e, "recording entries learned by reconciliation"),
            }
        }
    }
}

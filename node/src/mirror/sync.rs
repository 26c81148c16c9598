//! The mirror's side of the sync protocol (`p2p::sync`): the set it reconciles holds the id of
//! every recorded entry, mirrored uploads and stego uploads alike (their ids never collide),
//! the protocol reads entries from the store (`entries.rs`), and what it learns goes through
//! the same intake as announcements: the mirror's, or for a stego entry the stego part's.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use stargate_protocol::mirror::Entry;
use tokio::sync::mpsc;

use super::running::Mirror;
use crate::p2p::sync::{Learned, SyncSet};

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
            let entries = self.pass_on_stego(entries).await;
            if !self.inner.settings.download || entries.is_empty() {
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

    /// Hands the stego entries among `entries` (from a manifest or a reconciliation) to the
    /// stego part's intake, waiting for room; returns the others.
    pub(super) async fn pass_on_stego(&self, entries: Vec<Entry>) -> Vec<Entry> {
        let (stego, mirrored): (Vec<Entry>, Vec<Entry>) =
            entries.into_iter().partition(|e| e.payload.is_some());
        if !stego.is_empty() && self.inner.stego_entries.send(stego).await.is_err() {
            tracing::debug!("stego entries dropped: the stego part has stopped");
        }
        mirrored
    }

    /// The stego entries peers told of, for the stego part's intake; `None` once taken.
    pub(crate) fn take_stego_entries(&self) -> Option<mpsc::Receiver<Vec<Entry>>> {
        self.inner
            .stego_inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The reconciled set, which the stego part adds its uploads' ids to.
    pub(crate) fn reconciled_set(&self) -> &SyncSet {
        &self.inner.set
    }
}

//! The mirror's side of the sync protocol (`p2p::sync`): the set it reconciles holds the id of
//! every recorded entry, the protocol reads entries from the store, and what it learns goes
//! through the same intake as announcements.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use stargate_protocol::mirror::{Entry, EntryId};
use stargate_storage::Store;
use tokio::sync::mpsc;

use super::running::Mirror;
use crate::p2p::sync::{Learned, SyncEntries};

/// The store as the sync protocol reads it.
pub(super) struct StoreEntries(pub(super) Store);

impl SyncEntries for StoreEntries {
    fn entries(&self, ids: &[EntryId]) -> Vec<Entry> {
        self.0.mirror_entries(ids).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading entries for a sync session");
            Vec::new()
        })
    }
}

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

    /// The store's entries for the sync protocol.
    pub(super) fn sync_entries(&self) -> Arc<dyn SyncEntries> {
        Arc::new(StoreEntries(self.inner.store.clone()))
    }
}

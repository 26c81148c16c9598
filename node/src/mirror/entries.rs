//! The mirror's records as the sync protocol reads them.

use stargate_protocol::mirror::{Entry, EntryId};
use stargate_storage::Store;

use crate::p2p::sync::SyncEntries;

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

//! The mirror's records and the stego uploads, as the sync protocol reads them.

use stargate_protocol::mirror::{Entry, EntryId};
use stargate_storage::Store;

use crate::p2p::sync::SyncEntries;

/// The store as the sync protocol reads it.
pub(super) struct StoreEntries(pub(super) Store);

impl SyncEntries for StoreEntries {
    fn entries(&self, ids: &[EntryId]) -> Vec<Entry> {
        let read = || -> Result<Vec<Entry>, stargate_storage::StoreError> {
            let mut entries = self.0.mirror_entries(ids)?;
            if entries.len() < ids.len() {
                // The ids of the two kinds never collide: what is not a mirror record may be a
                // stego upload.
                entries.extend(self.0.stego_entries(ids)?);
            }
            Ok(entries)
        };
        read().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading entries for a sync session");
            Vec::new()
        })
    }
}

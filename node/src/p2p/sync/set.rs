//! The set of entry ids a node mirrors, as the sync protocol reconciles it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use stargate_protocol::mirror::EntryId;
use stargate_protocol::reconcile::{Digest, DigestAccumulator, Snapshot};
use tokio::sync::Notify;

/// The ids a node mirrors, with their digest kept up to date (O(1) per insert) and a sorted
/// snapshot for reconciliations, rebuilt only after a change. Cheap to clone; clones share the
/// set.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncSet {
    inner: Arc<Mutex<Inner>>,
    /// Woken on every change, so that the digest goes out to peers (debounced).
    changed: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: BTreeSet<EntryId>,
    digest: DigestAccumulator,
    /// The ids as last handed to a reconciliation; dropped on change.
    snapshot: Option<Snapshot>,
}

impl SyncSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `id`; false if it was there already.
    pub(crate) fn insert(&self, id: EntryId) -> bool {
        let added = {
            let mut inner = self.lock();
            let added = inner.ids.insert(id);
            if added {
                inner.digest.add(&id);
                inner.snapshot = None;
            }
            added
        };
        if added {
            self.changed.notify_one();
        }
        added
    }

    /// Whether `id` is in the set.
    pub(crate) fn contains(&self, id: &EntryId) -> bool {
        self.lock().ids.contains(id)
    }

    /// How many ids the set holds.
    pub(crate) fn len(&self) -> usize {
        self.lock().ids.len()
    }

    /// The set's digest (count and fingerprint), as peers compare it.
    pub(crate) fn digest(&self) -> Digest {
        self.lock().digest.digest()
    }

    /// The ids as they are now, for one reconciliation.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut inner = self.lock();
        if let Some(s) = &inner.snapshot {
            return s.clone();
        }
        let snapshot = Snapshot::new(inner.ids.iter().copied().collect());
        inner.snapshot = Some(snapshot.clone());
        snapshot
    }

    /// Resolves after the set changed (at once if it changed since the last call).
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The incremental digest equals the digest of the set built at once, and the snapshot
        /// holds exactly the ids, whatever the order and repeats of the inserts.
        #[test]
        fn digest_and_snapshot_follow_the_inserts(ids in prop::collection::vec(any::<[u8; 32]>(), 0..300)) {
            let set = SyncSet::new();
            let mut model = BTreeSet::new();
            for id in &ids {
                prop_assert_eq!(set.insert(*id), model.insert(*id));
                if model.len() % 37 == 0 {
                    prop_assert_eq!(set.snapshot().ids().len(), model.len());
                }
            }
            let mut whole = DigestAccumulator::default();
            model.iter().for_each(|id| whole.add(id));
            prop_assert_eq!(set.digest(), whole.digest());
            prop_assert_eq!(set.len(), model.len());
            let snapshot = set.snapshot();
            let want: Vec<EntryId> = model.iter().copied().collect();
            prop_assert_eq!(snapshot.ids(), &want[..]);
            prop_assert!(ids.iter().all(|id| set.contains(id)));
        }
    }
}

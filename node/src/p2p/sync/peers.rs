//! The peers this node reconciles with: those that sent it a digest or finished a session with
//! it since they connected. Every entry such a peer mirrors reaches this node through the sync
//! protocol, so the mirror does not read their manifests too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use libp2p::PeerId;

/// Peers kept at most (as many as the engine keeps state for).
const MAX: usize = 4096;

/// See the module documentation. Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncPeers(Arc<Mutex<HashSet<PeerId>>>);

impl SyncPeers {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<PeerId>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn add(&self, peer: PeerId) {
        let mut peers = self.lock();
        if peers.len() < MAX {
            peers.insert(peer);
        }
    }

    pub(super) fn remove(&self, peer: &PeerId) {
        self.lock().remove(peer);
    }

    /// Whether `peer` reconciles with this node.
    pub(crate) fn contains(&self, peer: &PeerId) -> bool {
        self.lock().contains(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_until_removed() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let peers = SyncPeers::new();
        peers.add(a);
        assert!(peers.contains(&a) && !peers.contains(&b));
        peers.clone().remove(&a);
        assert!(!peers.contains(&a));
    }
}

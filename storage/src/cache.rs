//! A bounded in-memory cache of block bytes, in front of the database for [`Store::get`].
//!
//! A hot file (a gateway serving the same content to many clients) is then served without a
//! database read, a copy of its bytes and a thread hand-off per block. Entries are the shared
//! [`Bytes`] the store hands out, so a hit costs a reference count, not a copy.
//!
//! Blocks are immutable and keyed by multihash, so a cached entry can only become wrong by its
//! block being removed (`block rm`, GC). Removals invalidate their entries after they commit;
//! a read that raced a removal (its snapshot still had the block) drops what it cached, so a
//! removed block is never served from here and `repo gc` frees the memory of what it removed.
//!
//! [`Store::get`]: crate::Store::get

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use stargate_protocol::Multihash;

/// Memory counted per entry besides its bytes (key, reference count, the cache's bookkeeping),
/// so that many tiny blocks cannot exceed the bound.
const ENTRY_OVERHEAD: u32 = 256;

/// The cache, or nothing when its size is zero.
#[derive(Debug)]
pub(crate) struct BlockCache {
    entries: Option<moka::sync::Cache<Multihash, Bytes>>,
    /// Bumped after every committed removal: a read that started before it may hold a removed
    /// block and must not leave it here.
    removals: AtomicU64,
}

/// What a reader notes before it opens its database snapshot; see [`BlockCache::admit`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl BlockCache {
    /// A cache holding at most about `max_bytes` of blocks (0: no cache).
    pub(crate) fn new(max_bytes: usize) -> Self {
        let entries = (max_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_bytes as u64)
                .weigher(|_: &Multihash, data: &Bytes| {
                    u32::try_from(data.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(ENTRY_OVERHEAD)
                })
                .build()
        });
        Self {
            entries,
            removals: AtomicU64::new(0),
        }
    }

    /// The cached bytes of `mh`.
    pub(crate) fn get(&self, mh: &Multihash) -> Option<Bytes> {
        self.entries.as_ref()?.get(mh)
    }

    /// Taken before a database read whose result may be admitted.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.removals.load(Ordering::SeqCst))
    }

    /// Caches `data` of `mh`, read from a snapshot opened after `ticket` was taken. If a removal
    /// committed meanwhile, the block may be gone and the entry is dropped again: either this
    /// check sees the removal, or the insert happened before it and the removal's own
    /// invalidation (which follows its count) takes the entry out.
    pub(crate) fn admit(&self, mh: Multihash, data: Bytes, ticket: Ticket) {
        let Some(entries) = &self.entries else {
            return;
        };
        entries.insert(mh, data);
        if self.removals.load(Ordering::SeqCst) != ticket.0 {
            entries.invalidate(&mh);
        }
    }

    /// Forgets blocks whose removal has just committed.
    pub(crate) fn removed<'a>(&self, multihashes: impl IntoIterator<Item = &'a Multihash>) {
        let Some(entries) = &self.entries else {
            return;
        };
        self.removals.fetch_add(1, Ordering::SeqCst);
        for mh in multihashes {
            entries.invalidate(mh);
        }
    }

    /// Bytes held (as weighed, after pending bookkeeping).
    #[cfg(test)]
    pub(crate) fn weighed_bytes(&self) -> u64 {
        self.entries.as_ref().map_or(0, |e| {
            e.run_pending_tasks();
            e.weighted_size()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stargate_protocol::{Block, Codec, HashCode, Version};

    fn block(n: u8, len: usize) -> Block {
        Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![n; len]).unwrap()
    }

    #[test]
    fn holds_what_it_admits_within_its_bound() {
        let cache = BlockCache::new(64 * 1024);
        let blocks: Vec<Block> = (0..32).map(|n| block(n, 8 * 1024)).collect();
        for b in &blocks {
            let ticket = cache.ticket();
            cache.admit(*b.cid().hash(), b.data().clone(), ticket);
        }
        let held = blocks
            .iter()
            .filter(|b| cache.get(b.cid().hash()).is_some())
            .count();
        assert!(held >= 1, "nothing kept");
        assert!(
            cache.weighed_bytes() <= 64 * 1024,
            "{}",
            cache.weighed_bytes()
        );
        // What it returns is what was admitted, shared rather than copied.
        let kept = blocks
            .iter()
            .find(|b| cache.get(b.cid().hash()).is_some())
            .unwrap();
        let got = cache.get(kept.cid().hash()).unwrap();
        assert_eq!(got, kept.data());
        assert_eq!(got.as_ptr(), kept.data().as_ptr());
    }

    #[test]
    fn removals_take_entries_out_and_void_reads_that_raced_them() {
        let cache = BlockCache::new(1 << 20);
        let (a, b) = (block(1, 100), block(2, 100));
        cache.admit(*a.cid().hash(), a.data().clone(), cache.ticket());
        assert!(cache.get(a.cid().hash()).is_some());
        cache.removed([a.cid().hash()]);
        assert!(cache.get(a.cid().hash()).is_none());
        assert_eq!(cache.weighed_bytes(), 0);

        // A read whose snapshot predates a removal: its result is not kept.
        let ticket = cache.ticket();
        cache.removed([b.cid().hash()]);
        cache.admit(*b.cid().hash(), b.data().clone(), ticket);
        assert!(cache.get(b.cid().hash()).is_none());
        // A read after it is.
        cache.admit(*b.cid().hash(), b.data().clone(), cache.ticket());
        assert!(cache.get(b.cid().hash()).is_some());
    }

    #[test]
    fn size_zero_caches_nothing() {
        let cache = BlockCache::new(0);
        let a = block(1, 10);
        cache.admit(*a.cid().hash(), a.data().clone(), cache.ticket());
        assert!(cache.get(a.cid().hash()).is_none());
        cache.removed([a.cid().hash()]);
        assert_eq!(cache.weighed_bytes(), 0);
    }
}

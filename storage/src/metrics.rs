//! Counters the node exports (Prometheus or logs); the store only counts.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    blocks_put: AtomicU64,
    bytes_put: AtomicU64,
    blocks_read: AtomicU64,
    bytes_read: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    blocks_removed: AtomicU64,
    bytes_removed: AtomicU64,
    corrupt_reads: AtomicU64,
    verify_failures: AtomicU64,
    rejected_writes: AtomicU64,
    commits: AtomicU64,
}

/// The store's counters since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Blocks newly written (a block already present is not counted).
    pub blocks_put: u64,
    /// Bytes of those blocks.
    pub bytes_put: u64,
    /// Blocks served by `get`.
    pub blocks_read: u64,
    /// Bytes of those blocks.
    pub bytes_read: u64,
    /// Of those reads, the ones the block cache answered (no database read).
    pub cache_hits: u64,
    /// Reads the block cache could not answer (the block was read from the database, or is
    /// not stored).
    pub cache_misses: u64,
    /// Blocks removed by `delete` or GC.
    pub blocks_removed: u64,
    /// Bytes of those blocks.
    pub bytes_removed: u64,
    /// Reads refused because `hash_on_read` found the bytes corrupt.
    pub corrupt_reads: u64,
    /// Corrupt blocks found by `verify`.
    pub verify_failures: u64,
    /// Writes refused: pins of incomplete DAGs, removals of pinned blocks, unpins of unpinned CIDs.
    pub rejected_writes: u64,
    /// Write transactions committed.
    pub commits: u64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn put(&self, blocks: u64, bytes: u64) {
        add(&self.blocks_put, blocks);
        add(&self.bytes_put, bytes);
    }

    pub(crate) fn read(&self, bytes: u64) {
        add(&self.blocks_read, 1);
        add(&self.bytes_read, bytes);
    }

    pub(crate) fn cache_hit(&self, bytes: u64) {
        add(&self.cache_hits, 1);
        self.read(bytes);
    }

    pub(crate) fn cache_miss(&self) {
        add(&self.cache_misses, 1);
    }

    pub(crate) fn removed(&self, blocks: u64, bytes: u64) {
        add(&self.blocks_removed, blocks);
        add(&self.bytes_removed, bytes);
    }

    pub(crate) fn corrupt_read(&self) {
        add(&self.corrupt_reads, 1);
    }

    pub(crate) fn verify_failures(&self, n: u64) {
        add(&self.verify_failures, n);
    }

    pub(crate) fn reject(&self) {
        add(&self.rejected_writes, 1);
    }

    pub(crate) fn commit(&self) {
        add(&self.commits, 1);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            blocks_put: get(&self.blocks_put),
            bytes_put: get(&self.bytes_put),
            blocks_read: get(&self.blocks_read),
            bytes_read: get(&self.bytes_read),
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
            blocks_removed: get(&self.blocks_removed),
            bytes_removed: get(&self.bytes_removed),
            corrupt_reads: get(&self.corrupt_reads),
            verify_failures: get(&self.verify_failures),
            rejected_writes: get(&self.rejected_writes),
            commits: get(&self.commits),
        }
    }
}

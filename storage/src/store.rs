//! The store handle: opening the database, reads, and the typed transaction helpers every
//! module (blocks, pins, GC, and later anchors) goes through.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, WriteTransaction};
use stargate_protocol::{Block, Cid, Multihash};

use crate::StoreError;
use crate::blocks::{IndexEntry, hash_matches, reconcile_totals};
use crate::cache::BlockCache;
use crate::error::db_err;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::tables::{BLOCK_INDEX, BLOCK_TOTALS, PINS, open_read, prepare, read_tables};
use crate::writer::{BlockWriter, WriteSummary, WriterThread};

/// Name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "stargate.redb";

/// How to open a store. Start from [`StoreOptions::default`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Re-hash every block read by [`Store::get`] and refuse one that no longer matches
    /// (Kubo's `Datastore.HashOnRead`). Off by default: hashing is the CPU bottleneck on
    /// machines without SHA extensions, and `repo verify` checks everything on demand.
    pub hash_on_read: bool,
    /// Memory redb may use for pages: read cache plus, up to half of it, pages written but not
    /// yet committed (more are written out early). An upper bound, filled as pages are used and
    /// then kept, so it adds to the resident size of a long-running node. Measured here, 8, 16
    /// and 64 MiB give the same write throughput (the disk decides).
    pub cache_bytes: usize,
    /// A [`BlockWriter`] hands its blocks to the writer thread in batches of about this many
    /// bytes; each batch is one transaction (or part of one) and one fsync.
    pub batch_bytes: usize,
    /// Memory for recently read blocks, kept so that hot content (a file many gateway clients
    /// ask for) is served without a database read per block; 0 turns the cache off. Filled by
    /// reads only (an add does not flush it) and emptied of what `block rm` and GC remove.
    pub block_cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            hash_on_read: false,
            cache_bytes: 32 << 20,
            batch_bytes: 8 << 20,
            block_cache_bytes: 64 << 20,
        }
    }
}

/// The block store: one redb database file in the data directory.
///
/// Cheap to clone; clones share the database, its writer thread and its counters. The
/// database is closed when the last clone (and the last [`BlockWriter`]) is dropped.
///
/// Every method blocks on disk I/O (and fsync, for writes); from async code call them inside
/// `tokio::task::spawn_blocking`, never on an executor thread.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // Dropped first: the writer thread finishes its queue before the database handle goes.
    writer: Arc<WriterThread>,
    db: Arc<Database>,
    dir: PathBuf,
    file: PathBuf,
    options: StoreOptions,
    /// Writers hold it shared, GC exclusively, so GC never sees an add half done.
    gc_gate: Arc<RwLock<()>>,
    metrics: Arc<Metrics>,
    cache: BlockCache,
}

/// Sizes and counts, as `repo stat` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStat {
    /// Blocks stored.
    pub blocks: u64,
    /// Total bytes of those blocks.
    pub block_bytes: u64,
    /// Disk space the database file takes. redb grows the file by doubling and leaves the new
    /// part unwritten (sparse), so this is less than its length; it does not shrink after GC
    /// (freed pages are reused).
    pub file_bytes: u64,
    /// Recursive pins.
    pub recursive_pins: u64,
    /// Direct pins.
    pub direct_pins: u64,
}

/// What the store holds, as [`Store::usage`] reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreUsage {
    /// Blocks stored.
    pub blocks: u64,
    /// Total bytes of those blocks.
    pub block_bytes: u64,
    /// Disk space the database file takes (see [`StoreStat::file_bytes`]).
    pub file_bytes: u64,
}

/// A stored block as listed by [`Store::blocks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Its multihash (the key blocks are stored under).
    pub multihash: Multihash,
    /// Its length in bytes.
    pub size: u64,
    /// The multicodec code it was first stored under.
    pub codec: u64,
}

impl BlockInfo {
    /// A CIDv1 naming it under the codec it was first stored with.
    pub fn cid(&self) -> Cid {
        Cid::new_v1(self.codec, self.multihash)
    }
}

impl Store {
    /// Opens the store in `dir`, creating the directory and the database if needed.
    ///
    /// # Errors
    /// [`StoreError::InUse`] when another process or handle has it open;
    /// [`StoreError::SchemaTooNew`]/[`StoreError::SchemaTooOld`]/[`StoreError::NotAStore`] when
    /// the file is not one this build can use; [`StoreError::Open`] for I/O errors.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_owned();
        let open_err = |reason: String| StoreError::Open {
            path: dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&dir).map_err(|e| open_err(e.to_string()))?;
        let file = dir.join(DATABASE_FILE);
        let mut builder = Database::builder();
        builder.set_cache_size(options.cache_bytes);
        builder.set_repair_callback(|session| {
            tracing::warn!(
                progress = session.progress(),
                "repairing the database after an unclean shutdown"
            );
        });
        let db = builder.create(&file).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch => StoreError::InUse { path: dir.clone() },
            redb::DatabaseError::UpgradeRequired(version) => StoreError::NotAStore {
                path: file.clone(),
                reason: format!("redb file format {version}, which this build cannot read"),
            },
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() != std::io::ErrorKind::InvalidData =>
            {
                open_err(io.to_string())
            }
            other => StoreError::NotAStore {
                path: file.clone(),
                reason: other.to_string(),
            },
        })?;
        let txn = db.begin_write().map_err(db_err("opening the database"))?;
        prepare(&txn, &file)?;
        reconcile_totals(&txn)?;
        txn.commit().map_err(db_err("opening the database"))?;

        let db = Arc::new(db);
        let metrics = Arc::new(Metrics::default());
        let writer = WriterThread::spawn(db.clone(), metrics.clone())
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        tracing::debug!(path = %file.display(), "store open");
        let cache = BlockCache::new(options.block_cache_bytes);
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Arc::new(writer),
                db,
                dir,
                file,
                options,
                gc_gate: Arc::new(RwLock::new(())),
                metrics,
                cache,
            }),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The counters since the store was opened.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// The block `cid` names, if stored (looked up by multihash, so a CIDv0 finds what was
    /// stored under CIDv1 and vice versa). Identity CIDs are answered from the CID itself.
    ///
    /// # Errors
    /// [`StoreError::CorruptBlock`] when `hash_on_read` is on and the bytes no longer match;
    /// a database error.
    pub fn get(&self, cid: &Cid) -> Result<Option<Block>, StoreError> {
        if let Some(block) = Block::from_identity(cid) {
            return Ok(Some(block));
        }
        if let Some(block) = self.cached(cid) {
            return Ok(Some(block));
        }
        self.inner.metrics.cache_miss();
        let ticket = self.inner.cache.ticket();
        let mh = cid.hash().to_bytes();
        let data = self.read(|txn| {
            let tables = read_tables(txn)?;
            match tables.entry(&mh)? {
                Some(entry) => tables.data(&mh, entry).map(Some),
                None => Ok(None),
            }
        })?;
        let Some(data) = data else {
            return Ok(None);
        };
        if self.inner.options.hash_on_read && !hash_matches(cid.hash(), &data) {
            self.inner.metrics.corrupt_read();
            tracing::error!(%cid, "stored block does not match its hash");
            return Err(StoreError::CorruptBlock {
                cid: cid.to_string(),
            });
        }
        self.inner.metrics.read(data.len() as u64);
        // With `hash_on_read` on, only bytes that were just verified get here. What it guards
        // against is the stored copy going bad on disk; the cached copy is not read from disk
        // again, so serving it without hashing again keeps that promise.
        self.inner.cache.admit(*cid.hash(), data.clone(), ticket);
        Ok(Some(Block::new_unchecked(*cid, data)))
    }

    /// The block `cid` names if the block cache holds it: never blocks, so async code may call
    /// it on an executor thread before falling back to [`Store::get`] on a blocking one.
    pub fn cached(&self, cid: &Cid) -> Option<Block> {
        let data = self.inner.cache.get(cid.hash())?;
        self.inner.metrics.cache_hit(data.len() as u64);
        Some(Block::new_unchecked(*cid, data))
    }

    /// Whether the block `cid` names is stored (identity CIDs always are).
    ///
    /// # Errors
    /// A database error.
    pub fn has(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.size(cid)?.is_some())
    }

    /// The size of the block `cid` names, if stored, without reading it.
    ///
    /// # Errors
    /// A database error.
    pub fn size(&self, cid: &Cid) -> Result<Option<u64>, StoreError> {
        if Block::from_identity(cid).is_some() {
            return Ok(Some(cid.hash().digest().len() as u64));
        }
        let entry = self.read(|txn| read_tables(txn)?.entry(&cid.hash().to_bytes()))?;
        Ok(entry.map(|e: IndexEntry| u64::from(e.len)))
    }

    /// Stores one block; returns whether it was new. For many blocks use [`Store::put_many`]
    /// or a [`Store::writer`].
    ///
    /// # Errors
    /// A database error.
    pub fn put(&self, block: Block) -> Result<bool, StoreError> {
        Ok(self.put_many([block])?.blocks_new == 1)
    }

    /// Stores blocks in as few transactions as the batch size allows; durable on return. Does
    /// not wait for a GC: the blocks are unpinned, and a GC running meanwhile may remove them.
    /// To store blocks and pin them safely, use [`Store::writer`].
    ///
    /// # Errors
    /// A database error; blocks of batches committed before it stay stored.
    pub fn put_many(
        &self,
        blocks: impl IntoIterator<Item = Block>,
    ) -> Result<WriteSummary, StoreError> {
        let mut writer = BlockWriter::new(
            self.inner.writer.clone(),
            self.inner.options.batch_bytes,
            None,
        );
        for block in blocks {
            writer.put(block)?;
        }
        writer.finish(None)
    }

    /// A writer for a stream of blocks that ends, optionally, in a pin (an `add`, a fetched
    /// DAG). Waits while a GC runs; a GC waits for it to finish.
    pub fn writer(&self) -> BlockWriter {
        // Recursive: a thread that holds a writer may open another (or pin) while a GC waits;
        // a fair lock would then deadlock. The price is that overlapping writers can hold a GC
        // off for as long as they keep overlapping.
        let guard = self.inner.gc_gate.read_arc_recursive();
        BlockWriter::new(
            self.inner.writer.clone(),
            self.inner.options.batch_bytes,
            Some(guard),
        )
    }

    /// Every stored block, in multihash order, read from one snapshot of the database.
    ///
    /// # Errors
    /// A database error, at the start or (as an item) during iteration.
    pub fn blocks(
        &self,
    ) -> Result<impl Iterator<Item = Result<BlockInfo, StoreError>> + Send + use<>, StoreError>
    {
        let txn = self
            .inner
            .db
            .begin_read()
            .map_err(db_err("starting a read"))?;
        let index = open_read(&txn, BLOCK_INDEX)?;
        let range = index.range::<&[u8]>(..).map_err(db_err("listing blocks"))?;
        Ok(range.map(|item| {
            let (k, v) = item.map_err(db_err("listing blocks"))?;
            let multihash = Multihash::from_bytes(k.value()).map_err(|e| StoreError::Corrupt {
                reason: format!("a block key is not a multihash: {e}"),
            })?;
            let (size, codec) = v.value();
            Ok(BlockInfo {
                multihash,
                size: u64::from(size),
                codec,
            })
        }))
    }

    /// Blocks, their bytes and the file's disk usage, without a scan: the block totals are
    /// kept with every write, so this is cheap enough for every metrics scrape.
    ///
    /// # Errors
    /// A database error.
    pub fn usage(&self) -> Result<StoreUsage, StoreError> {
        let (blocks, block_bytes) =
            self.read(|txn| crate::blocks::totals(&open_read(txn, BLOCK_TOTALS)?))?;
        let meta = std::fs::metadata(&self.inner.file).map_err(|e| StoreError::Database {
            context: "reading the database file size",
            reason: e.to_string(),
        })?;
        Ok(StoreUsage {
            blocks,
            block_bytes,
            file_bytes: disk_usage(&meta),
        })
    }

    /// Counts and sizes: [`Store::usage`] and a count of the pins (which reads every pin).
    ///
    /// # Errors
    /// A database error.
    pub fn stat(&self) -> Result<StoreStat, StoreError> {
        let size = self.usage()?;
        let mut stat = StoreStat {
            blocks: size.blocks,
            block_bytes: size.block_bytes,
            file_bytes: size.file_bytes,
            ..StoreStat::default()
        };
        self.read(|txn| {
            for (_, mode) in crate::pin_table::all_pins(&open_read(txn, PINS)?)? {
                match mode {
                    crate::PinMode::Recursive => stat.recursive_pins += 1,
                    crate::PinMode::Direct => stat.direct_pins += 1,
                }
            }
            Ok(())
        })?;
        Ok(stat)
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self
            .inner
            .db
            .begin_read()
            .map_err(db_err("starting a read"))?;
        f(&txn)
    }

    /// Runs `f` in a write transaction on the calling thread and commits (durably) if it
    /// returns `Ok`; nothing is written if it returns `Err`. Waits for any write in progress.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.commit_with(Durability::Immediate, f)
    }

    /// [`Store::write`] without an fsync (redb's `Durability::None`): the change is visible at
    /// once and becomes durable with the next durable commit; a crash before that undoes it.
    /// Only for changes whose loss leaves a state the node resumes from correctly.
    pub(crate) fn write_volatile<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.commit_with(Durability::None, f)
    }

    fn commit_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self
            .inner
            .db
            .begin_write()
            .map_err(db_err("starting a write"))?;
        txn.set_durability(durability)
            .map_err(db_err("setting a write's durability"))?;
        let value = f(&txn)?;
        txn.commit().map_err(db_err("committing"))?;
        self.inner.metrics.commit();
        Ok(value)
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    pub(crate) fn counters(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Called after a removal of `multihashes` has committed.
    pub(crate) fn forget_cached<'a>(&self, multihashes: impl IntoIterator<Item = &'a Multihash>) {
        self.inner.cache.removed(multihashes);
    }

    /// Held exclusively by GC for its whole run.
    pub(crate) fn gc_exclusive(&self) -> parking_lot::RwLockWriteGuard<'_, ()> {
        self.inner.gc_gate.write()
    }
}

#[cfg(unix)]
fn disk_usage(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    // st_blocks counts 512-byte units whatever the file system's block size.
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn disk_usage(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::CHUNK_LEN;
    use crate::testutil::{node, open, open_with, raw};
    use stargate_protocol::limits::MAX_BLOCK_SIZE;
    use stargate_protocol::{Codec, HashCode, Version, parse_cid};

    #[test]
    fn blocks_of_every_chunk_boundary_round_trip() {
        let (_dir, store) = open();
        for len in [
            0,
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            256 * 1024,
            MAX_BLOCK_SIZE,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let block = raw(data);
            assert!(store.put(block.clone()).unwrap(), "{len} new");
            assert!(!store.put(block.clone()).unwrap(), "{len} again");
            assert_eq!(store.get(block.cid()).unwrap().as_ref(), Some(&block));
            assert_eq!(store.size(block.cid()).unwrap(), Some(len as u64));
        }
        let missing = raw(&b"never stored"[..]);
        assert_eq!(store.get(missing.cid()).unwrap(), None);
        assert!(!store.has(missing.cid()).unwrap());
        assert_eq!(store.size(missing.cid()).unwrap(), None);
    }

    #[test]
    fn cid_v0_and_v1_share_one_entry() {
        let (_dir, store) = open();
        let v0 = node(&[], b"shared");
        let v1 = Cid::new_v1(Codec::DagPb.code(), *v0.cid().hash());
        store.put(v0.clone()).unwrap();
        let got = store.get(&v1).unwrap().unwrap();
        assert_eq!(got.cid(), &v1);
        assert_eq!(got.data(), v0.data());
        // Same bytes as raw: found too, no second copy.
        let as_raw = Block::new(
            Cid::new_v1(Codec::Raw.code(), *v0.cid().hash()),
            v0.data().clone(),
        )
        .unwrap();
        assert!(!store.put(as_raw).unwrap());
        assert_eq!(store.stat().unwrap().blocks, 1);
    }

    #[test]
    fn identity_cids_never_touch_the_database() {
        let (_dir, store) = open();
        let cid = parse_cid("bafkqaaa").unwrap();
        assert!(store.has(&cid).unwrap());
        assert_eq!(store.size(&cid).unwrap(), Some(0));
        assert_eq!(store.get(&cid).unwrap().unwrap().data().len(), 0);
        let inline =
            Block::encode(Version::V1, Codec::Raw, HashCode::Identity, &b"hi"[..]).unwrap();
        assert!(!store.put(inline.clone()).unwrap());
        assert_eq!(store.get(inline.cid()).unwrap().unwrap().data(), &b"hi"[..]);
        assert_eq!(store.stat().unwrap().blocks, 0);
    }

    #[test]
    fn size_follows_every_write_and_is_rebuilt_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (small, large) = (raw(vec![1u8; 10]), raw(vec![2u8; 3 * CHUNK_LEN]));
        let size = |store: &Store| {
            let s = store.usage().unwrap();
            (s.blocks, s.block_bytes)
        };
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            assert_eq!(size(&store), (0, 0));
            store.put_many([small.clone(), large.clone()]).unwrap();
            // Present already: not counted twice.
            store.put(small.clone()).unwrap();
            assert_eq!(size(&store), (2, 10 + 3 * CHUNK_LEN as u64));
            store.delete(large.cid()).unwrap();
            assert_eq!(size(&store), (1, 10));
            let stat = store.stat().unwrap();
            assert_eq!((stat.blocks, stat.block_bytes), (1, 10));
            store.put(large.clone()).unwrap();
            assert_eq!(store.gc().unwrap().blocks_removed, 2);
            assert_eq!(size(&store), (0, 0));
            store.put_many([small.clone(), large.clone()]).unwrap();
            // What a file written by a build without the totals looks like.
            store
                .write(|txn| {
                    txn.delete_table(BLOCK_TOTALS).unwrap();
                    Ok(())
                })
                .unwrap();
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(size(&store), (2, 10 + 3 * CHUNK_LEN as u64));
    }

    #[test]
    fn hash_on_read_refuses_corrupt_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let block = raw(vec![5u8; 1000]);
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            store.put(block.clone()).unwrap();
            crate::blocks::tests::flip_a_byte(&store, block.cid());
            // Off by default: served as stored (that is what `verify` is for).
            assert_ne!(store.get(block.cid()).unwrap().unwrap(), block);
        }
        let options = StoreOptions {
            hash_on_read: true,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), options).unwrap();
        let err = store.get(block.cid()).unwrap_err();
        assert_eq!(
            err,
            StoreError::CorruptBlock {
                cid: block.cid().to_string()
            }
        );
        assert!(err.to_string().contains("repo verify"));
        assert_eq!(store.metrics().corrupt_reads, 1);
        // Intact blocks are still served.
        let good = raw(&b"good"[..]);
        store.put(good.clone()).unwrap();
        assert_eq!(store.get(good.cid()).unwrap(), Some(good));
    }

    #[test]
    fn the_block_cache_answers_repeat_reads_and_forgets_removed_blocks() {
        let (_dir, store) = open();
        let (a, b) = (raw(vec![1u8; 5000]), raw(vec![2u8; 7000]));
        store.put_many([a.clone(), b.clone()]).unwrap();
        for _ in 0..3 {
            assert_eq!(store.get(a.cid()).unwrap().as_ref(), Some(&a));
        }
        let m = store.metrics();
        assert_eq!((m.cache_misses, m.cache_hits, m.blocks_read), (1, 2, 3));
        // CIDv0/v1 and codecs share the entry, as they share the stored block.
        let as_pb = Cid::new_v1(Codec::DagPb.code(), *a.cid().hash());
        assert_eq!(store.cached(&as_pb).unwrap().cid(), &as_pb);

        assert!(store.delete(a.cid()).unwrap());
        assert!(store.cached(a.cid()).is_none());
        assert_eq!(store.get(a.cid()).unwrap(), None);

        assert_eq!(store.get(b.cid()).unwrap().as_ref(), Some(&b));
        assert!(store.inner.cache.weighed_bytes() >= 7000);
        assert_eq!(store.gc().unwrap().blocks_removed, 1);
        assert_eq!(store.get(b.cid()).unwrap(), None);
        // GC frees the memory too.
        assert_eq!(store.inner.cache.weighed_bytes(), 0);
    }

    #[test]
    fn with_hash_on_read_only_verified_bytes_are_cached() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            hash_on_read: true,
            ..StoreOptions::default()
        };
        let (good, bad) = (raw(vec![3u8; 1000]), raw(vec![4u8; 1000]));
        {
            let store = Store::open(dir.path(), options.clone()).unwrap();
            store.put_many([good.clone(), bad.clone()]).unwrap();
            assert_eq!(store.get(good.cid()).unwrap().as_ref(), Some(&good));
            // The disk copy goes bad after a verified read: the verified bytes are served.
            crate::blocks::tests::flip_a_byte(&store, good.cid());
            assert_eq!(store.get(good.cid()).unwrap().as_ref(), Some(&good));
            crate::blocks::tests::flip_a_byte(&store, bad.cid());
        }
        let store = Store::open(dir.path(), options).unwrap();
        for _ in 0..2 {
            assert!(matches!(
                store.get(bad.cid()),
                Err(StoreError::CorruptBlock { .. })
            ));
        }
        let m = store.metrics();
        assert_eq!((m.corrupt_reads, m.cache_hits), (2, 0));
        assert!(store.cached(bad.cid()).is_none());
    }

    #[test]
    fn a_second_open_of_the_same_dir_fails_at_once() {
        let (dir, store) = open();
        let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
        assert_eq!(
            err,
            StoreError::InUse {
                path: dir.path().to_owned()
            }
        );
        assert!(
            err.to_string()
                .contains("in use by another stargate process")
        );
        // Released when the last handle goes, writer thread included.
        let clone = store.clone();
        drop(store);
        assert!(Store::open(dir.path(), StoreOptions::default()).is_err());
        drop(clone);
        Store::open(dir.path(), StoreOptions::default()).unwrap();
    }

    #[test]
    fn contents_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = raw(&b"leaf"[..]);
        let root = node(&[&leaf], b"root");
        {
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            store.put_many([leaf.clone(), root.clone()]).unwrap();
            store.pin(root.cid(), crate::PinMode::Recursive).unwrap();
        }
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.get(leaf.cid()).unwrap(), Some(leaf));
        assert_eq!(
            store.pin_type(root.cid()).unwrap(),
            Some(crate::PinType::Recursive)
        );
    }

    #[test]
    fn schema_versions_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(DATABASE_FILE);
        drop(Store::open(dir.path(), StoreOptions::default()).unwrap());
        for (version, newer) in [(crate::tables::SCHEMA_VERSION + 1, true), (0, false)] {
            {
                let db = Database::create(&file).unwrap();
                let txn = db.begin_write().unwrap();
                txn.open_table(crate::tables::META)
                    .unwrap()
                    .insert("schema_version", version)
                    .unwrap();
                txn.commit().unwrap();
            }
            let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
            if newer {
                assert!(matches!(err, StoreError::SchemaTooNew { found, .. } if found == version));
                assert!(err.to_string().contains("upgrade stargate"));
            } else {
                assert!(matches!(err, StoreError::SchemaTooOld { found: 0, .. }));
            }
        }
    }

    #[test]
    fn foreign_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(DATABASE_FILE);
        std::fs::write(&file, b"definitely not a redb file, just some text").unwrap();
        let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"definitely not a redb file, just some text"
        );

        // A redb database of someone else's.
        std::fs::remove_file(&file).unwrap();
        {
            let db = Database::create(&file).unwrap();
            let txn = db.begin_write().unwrap();
            let table: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("theirs");
            txn.open_table(table).unwrap().insert(1, 2).unwrap();
            txn.commit().unwrap();
        }
        let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
        assert!(
            matches!(&err, StoreError::NotAStore { reason, .. } if reason.contains("theirs")),
            "{err}"
        );
    }

    #[test]
    fn listing_and_stat() {
        let (_dir, store) = open_with(StoreOptions {
            batch_bytes: 1,
            ..StoreOptions::default()
        });
        let a = raw(vec![1u8; 100]);
        let b = node(&[&a], b"x");
        store.put_many([a.clone(), b.clone()]).unwrap();
        store.pin(b.cid(), crate::PinMode::Recursive).unwrap();
        store.pin(a.cid(), crate::PinMode::Direct).unwrap();
        let mut listed: Vec<BlockInfo> = store.blocks().unwrap().map(Result::unwrap).collect();
        listed.sort_by_key(|i| i.size);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].cid(), *a.cid());
        assert_eq!(listed[0].codec, Codec::DagPb.code());
        assert_eq!(listed[0].multihash, *b.cid().hash());
        let stat = store.stat().unwrap();
        assert_eq!(stat.blocks, 2);
        assert_eq!(stat.block_bytes, 100 + b.data().len() as u64);
        assert_eq!((stat.recursive_pins, stat.direct_pins), (1, 1));
        assert!(stat.file_bytes > 0);
        let usage = store.usage().unwrap();
        assert_eq!(
            (usage.blocks, usage.block_bytes, usage.file_bytes),
            (2, stat.block_bytes, stat.file_bytes)
        );
        let m = store.metrics();
        assert_eq!((m.blocks_put, m.bytes_put), (2, stat.block_bytes));
    }
}

//! The write path: one thread owns every block write and commits what callers hand it in
//! groups, so concurrent writers share transactions and fsyncs, and a caller filling a
//! [`BlockWriter`] keeps working (hashing the next chunks) while earlier batches are committed.
//!
//! A writer's intermediate batches are committed without an fsync (redb's `Durability::None`:
//! written to the file, visible to readers, made durable by the next durable commit); its last
//! batch, with the pins, is committed durably, which makes every earlier one durable too. An add
//! thus pays one fsync's fixed latency instead of two per batch (5-20 ms each on this machine's
//! disk), and a crash loses only unpinned blocks of an unfinished writer, as before.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use parking_lot::RawRwLock;
use parking_lot::lock_api::ArcRwLockReadGuard;
use redb::{Database, Durability};
use stargate_protocol::{Block, Cid};

use crate::StoreError;
use crate::error::db_err;
use crate::metrics::Metrics;
use crate::pin_table::{PinMode, insert_pins};
use crate::tables::{PINS, open_write, write_tables};

/// Jobs waiting for the writer thread; senders block beyond this.
const QUEUE_JOBS: usize = 4;
/// A group stops taking more queued jobs once it holds this many bytes.
const MAX_GROUP_BYTES: usize = 64 << 20;
/// Batches one [`BlockWriter`] may have queued or committing before `put` waits.
const MAX_IN_FLIGHT: usize = 2;

/// What a write stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteSummary {
    /// Blocks that were not in the store before.
    pub blocks_new: u64,
    /// Bytes of those blocks.
    pub bytes_new: u64,
    /// Blocks that were already stored (nothing written for them).
    pub blocks_present: u64,
}

impl WriteSummary {
    fn add(&mut self, other: Self) {
        self.blocks_new += other.blocks_new;
        self.bytes_new += other.bytes_new;
        self.blocks_present += other.blocks_present;
    }
}

type Reply = Result<WriteSummary, StoreError>;

pub(crate) struct Job {
    blocks: Vec<Block>,
    bytes: usize,
    pins: Vec<(Cid, PinMode)>,
    /// Whether the commit must be durable before the reply (a writer's last batch).
    durable: bool,
    reply: SyncSender<Reply>,
}

/// The writer thread. Dropping it lets the thread finish the queued jobs and waits for it, so
/// the database is closed when the last [`Store`] handle is gone.
pub(crate) struct WriterThread {
    queue: Option<SyncSender<Job>>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WriterThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterThread").finish_non_exhaustive()
    }
}

impl WriterThread {
    pub(crate) fn spawn(db: Arc<Database>, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (queue, jobs) = sync_channel(QUEUE_JOBS);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&db, &metrics, &jobs))?;
        Ok(Self {
            queue: Some(queue),
            handle: Some(handle),
        })
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.queue
            .as_ref()
            .ok_or(StoreError::WriterStopped)?
            .send(job)
            .map_err(|_| StoreError::WriterStopped)
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
    }
}

fn run(db: &Database, metrics: &Metrics, jobs: &Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut bytes = first.bytes;
        let mut group = vec![first];
        while bytes < MAX_GROUP_BYTES {
            let Ok(job) = jobs.try_recv() else { break };
            bytes += job.bytes;
            group.push(job);
        }
        match commit_group(db, metrics, &group) {
            Ok(replies) => {
                for (job, reply) in group.iter().zip(replies) {
                    // A writer that gave up waiting (dropped) does not need the answer.
                    let _ = job.reply.send(reply);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, jobs = group.len(), "block write failed");
                for job in &group {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Applies a group of jobs in one transaction. A job's pins that cannot be added fail that job
/// alone (its blocks stay stored, unpinned); a database error fails the whole group.
fn commit_group(db: &Database, metrics: &Metrics, group: &[Job]) -> Result<Vec<Reply>, StoreError> {
    let ctx = "committing blocks";
    let mut txn = db.begin_write().map_err(db_err(ctx))?;
    if !group.iter().any(|job| job.durable) {
        txn.set_durability(Durability::None).map_err(db_err(ctx))?;
    }
    let mut replies = Vec::with_capacity(group.len());
    let mut written = WriteSummary::default();
    {
        let mut tables = write_tables(&txn)?;
        let mut pins = open_write(&txn, PINS)?;
        for job in group {
            let mut summary = WriteSummary::default();
            for block in &job.blocks {
                if tables.insert(block)? {
                    summary.blocks_new += 1;
                    summary.bytes_new += block.data().len() as u64;
                } else {
                    summary.blocks_present += 1;
                }
            }
            written.add(summary);
            let reply = insert_pins(&tables, &mut pins, &job.pins).map(|()| summary);
            if reply.is_err() {
                metrics.reject();
            }
            replies.push(reply);
        }
    }
    txn.commit().map_err(db_err(ctx))?;
    metrics.commit();
    metrics.put(written.blocks_new, written.bytes_new);
    Ok(replies)
}

/// Stores many blocks in few transactions, and optionally pins in the last one.
///
/// `put` buffers blocks and hands full batches to the store's writer thread without waiting
/// for them to commit (at most two batches ahead), so the caller overlaps its own work with
/// the writes. [`BlockWriter::finish`] writes the rest and the pins together: a pin is only
/// ever committed with, or after, every block of its DAG, so a crash at any point leaves no pin
/// of an incomplete DAG. Blocks of an unfinished writer may be committed (unpinned) or not.
///
/// A writer from [`Store::writer`] holds off [`Store::gc`] from its creation until it is
/// finished or dropped, so GC never removes the blocks of an add in progress. Do not call `gc`
/// on a thread that holds a writer: it would wait forever. Its methods block (they wait for the
/// writer thread); use them from a blocking context.
pub struct BlockWriter {
    /// Shared with the store: a writer outliving every `Store` handle keeps the thread (and
    /// so the database) open until it is done.
    thread: Arc<WriterThread>,
    /// Bytes buffered before a batch goes to the thread (`StoreOptions::batch_bytes`).
    batch_limit: usize,
    _gc_guard: Option<ArcRwLockReadGuard<RawRwLock, ()>>,
    batch: Vec<Block>,
    batch_bytes: usize,
    in_flight: VecDeque<Receiver<Reply>>,
    /// A batch was committed without an fsync: `finish` must commit durably, even with nothing
    /// left to write.
    undurable: bool,
    summary: WriteSummary,
    error: Option<StoreError>,
}

impl std::fmt::Debug for BlockWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWriter")
            .field("buffered", &self.batch.len())
            .field("in_flight", &self.in_flight.len())
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl BlockWriter {
    /// A writer; `gc_guard` is `None` for plain puts, which pin nothing and so need not hold
    /// off GC (their blocks are unpinned and GC may take them in any case).
    pub(crate) fn new(
        thread: Arc<WriterThread>,
        batch_limit: usize,
        gc_guard: Option<ArcRwLockReadGuard<RawRwLock, ()>>,
    ) -> Self {
        Self {
            thread,
            batch_limit,
            _gc_guard: gc_guard,
            batch: Vec::new(),
            batch_bytes: 0,
            in_flight: VecDeque::new(),
            undurable: false,
            summary: WriteSummary::default(),
            error: None,
        }
    }

    /// Adds a block. Blocks with identity CIDs are not stored (their CID holds them).
    ///
    /// # Errors
    /// The error of an earlier batch that failed; the writer is then useless.
    pub fn put(&mut self, block: Block) -> Result<(), StoreError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if Block::from_identity(block.cid()).is_some() {
            return Ok(());
        }
        self.batch_bytes += block.data().len();
        self.batch.push(block);
        if self.batch_bytes >= self.batch_limit {
            self.send(Vec::new(), false);
        }
        self.error.clone().map_or(Ok(()), Err)
    }

    /// Writes the remaining blocks and, in the same transaction, the pins (none, one as
    /// `Some((cid, mode))`, or several); waits until all of this writer's blocks are committed
    /// and durable.
    ///
    /// # Errors
    /// The first error of any batch, or of the pins ([`StoreError::MissingBlock`] when a DAG is
    /// incomplete). The pins are written all or none, and only if every batch succeeded.
    pub fn finish(
        mut self,
        pins: impl IntoIterator<Item = (Cid, PinMode)>,
    ) -> Result<WriteSummary, StoreError> {
        let pins: Vec<_> = pins.into_iter().collect();
        if self.error.is_none() && (self.undurable || !self.batch.is_empty() || !pins.is_empty()) {
            self.send(pins, true);
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest();
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.summary),
        }
    }

    fn send(&mut self, pins: Vec<(Cid, PinMode)>, durable: bool) {
        let (reply, answer) = sync_channel(1);
        self.undurable |= !durable;
        let job = Job {
            blocks: std::mem::take(&mut self.batch),
            bytes: std::mem::take(&mut self.batch_bytes),
            pins,
            durable,
            reply,
        };
        if let Err(e) = self.thread.submit(job) {
            self.error.get_or_insert(e);
            return;
        }
        self.in_flight.push_back(answer);
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.wait_oldest();
        }
    }

    fn wait_oldest(&mut self) {
        let Some(answer) = self.in_flight.pop_front() else {
            return;
        };
        match answer.recv() {
            Ok(Ok(summary)) => self.summary.add(summary),
            Ok(Err(e)) => {
                self.error.get_or_insert(e);
            }
            Err(_) => {
                self.error.get_or_insert(StoreError::WriterStopped);
            }
        }
    }
}

/// The importer writes `add`s straight into a writer.
impl stargate_protocol::unixfs::BlockSink for BlockWriter {
    type Error = StoreError;

    fn put(&mut self, block: Block) -> Result<(), StoreError> {
        BlockWriter::put(self, block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, open_with, raw};
    use crate::{Store, StoreOptions};

    fn small_batches() -> StoreOptions {
        StoreOptions {
            batch_bytes: 10_000,
            ..StoreOptions::default()
        }
    }

    #[test]
    fn a_writer_streams_batches_and_pins_last() {
        let (_dir, store) = open_with(small_batches());
        let leaves: Vec<Block> = (0..50u32)
            .map(|i| raw(vec![i as u8; 3000 + i as usize]))
            .collect();
        let refs: Vec<&Block> = leaves.iter().collect();
        let root = node(&refs, b"root");
        let mut writer = store.writer();
        for leaf in &leaves {
            writer.put(leaf.clone()).unwrap();
        }
        writer.put(leaves[0].clone()).unwrap();
        writer.put(root.clone()).unwrap();
        let summary = writer
            .finish(Some((*root.cid(), PinMode::Recursive)))
            .unwrap();
        assert_eq!(summary.blocks_new, 51);
        assert_eq!(summary.blocks_present, 1);
        assert_eq!(
            summary.bytes_new,
            leaves.iter().map(|b| b.data().len() as u64).sum::<u64>() + root.data().len() as u64
        );
        assert_eq!(
            store.pin_type(root.cid()).unwrap(),
            Some(crate::PinType::Recursive)
        );
        // About 15 batches; a writer has at most MAX_IN_FLIGHT + 1 of them outstanding, so
        // grouping can merge at most that many per transaction.
        assert!(
            store.metrics().commits >= 15 / (MAX_IN_FLIGHT as u64 + 1),
            "{:?}",
            store.metrics()
        );
    }

    #[test]
    fn finish_makes_every_batch_durable() {
        let (dir, store) = open_with(small_batches());
        // Two blocks fill a batch, so the last one is sent (without an fsync) by `put` and
        // `finish` has nothing left to write.
        let leaves: Vec<Block> = (0..20u8).map(|i| raw(vec![i; 5000])).collect();
        let mut writer = store.writer();
        for leaf in &leaves {
            writer.put(leaf.clone()).unwrap();
        }
        writer.finish(None).unwrap();
        // The file as a crash now would leave it: only durable commits are in it.
        let copy = tempfile::tempdir().unwrap();
        let file = crate::store::DATABASE_FILE;
        std::fs::copy(dir.path().join(file), copy.path().join(file)).unwrap();
        let reopened = Store::open(copy.path(), StoreOptions::default()).unwrap();
        for leaf in &leaves {
            assert!(reopened.has(leaf.cid()).unwrap(), "{} lost", leaf.cid());
        }
    }

    #[test]
    fn a_failed_pin_keeps_the_blocks_unpinned() {
        let (_dir, store) = open_with(small_batches());
        let missing = raw(&b"missing"[..]);
        let present = raw(&b"present"[..]);
        let root = node(&[&present, &missing], b"root");
        let mut writer = store.writer();
        writer.put(present.clone()).unwrap();
        writer.put(root.clone()).unwrap();
        let err = writer
            .finish(Some((*root.cid(), PinMode::Recursive)))
            .unwrap_err();
        assert!(matches!(err, StoreError::MissingBlock { .. }));
        assert!(store.has(root.cid()).unwrap());
        assert!(store.pins(crate::PinFilter::All).unwrap().is_empty());
    }

    #[test]
    fn several_pins_are_written_all_or_none() {
        let (_dir, store) = open_with(small_batches());
        let (a, b) = (raw(&b"a"[..]), raw(&b"b"[..]));
        let missing = raw(&b"missing"[..]);
        let broken = node(&[&missing], b"broken");
        let mut writer = store.writer();
        writer.put(a.clone()).unwrap();
        writer.put(b.clone()).unwrap();
        writer.put(broken.clone()).unwrap();
        let err = writer
            .finish([
                (*a.cid(), PinMode::Recursive),
                (*broken.cid(), PinMode::Recursive),
            ])
            .unwrap_err();
        assert!(matches!(err, StoreError::MissingBlock { .. }));
        assert!(store.pins(crate::PinFilter::All).unwrap().is_empty());

        // A later entry sees the earlier ones: recursive then direct of one CID is refused.
        let err = store
            .writer()
            .finish([(*a.cid(), PinMode::Recursive), (*a.cid(), PinMode::Direct)])
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyPinnedRecursively { .. }));
        store
            .writer()
            .finish(vec![
                (*a.cid(), PinMode::Direct),
                (*b.cid(), PinMode::Recursive),
            ])
            .unwrap();
        assert_eq!(store.pins(crate::PinFilter::All).unwrap().len(), 2);
    }

    #[test]
    fn concurrent_writers_all_land() {
        let (_dir, store) = open_with(small_batches());
        let roots: Vec<Block> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|t| {
                    let store = store.clone();
                    s.spawn(move || {
                        let leaves: Vec<Block> =
                            (0..20u8).map(|i| raw(vec![t, i, 1, 2, 3])).collect();
                        let root = node(&leaves.iter().collect::<Vec<_>>(), &[t]);
                        let mut w = store.writer();
                        for leaf in leaves {
                            w.put(leaf).unwrap();
                        }
                        w.put(root.clone()).unwrap();
                        w.finish(Some((*root.cid(), PinMode::Recursive))).unwrap();
                        root
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(store.stat().unwrap().blocks, 8 * 21);
        for root in roots {
            assert_eq!(
                store.pin_type(root.cid()).unwrap(),
                Some(crate::PinType::Recursive)
            );
        }
    }

    #[test]
    fn an_import_streams_into_a_writer_and_pins_its_root() {
        use stargate_protocol::unixfs::{ImportOptions, import_file};
        let (_dir, store) = open_with(StoreOptions::default());
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut writer = store.writer();
        let file = import_file(&data[..], &ImportOptions::default(), &mut writer, |_| {}).unwrap();
        writer.finish(Some((file.cid, PinMode::Recursive))).unwrap();
        assert_eq!(
            store.pin_type(&file.cid).unwrap(),
            Some(crate::PinType::Recursive)
        );
        // Four 256 KiB leaves and their root.
        assert_eq!(store.stat().unwrap().blocks, 5);
    }

    #[test]
    fn dropping_a_writer_unfinished_writes_no_pin_and_releases_gc() {
        let (_dir, store) = open_with(small_batches());
        let mut writer = store.writer();
        for i in 0..10u8 {
            writer.put(raw(vec![i; 5000])).unwrap();
        }
        drop(writer);
        let gc = store.gc().unwrap();
        assert_eq!(gc.blocks_kept, 0);
        assert!(store.pins(crate::PinFilter::All).unwrap().is_empty());
    }
}

//! Removing blocks: one by one (`block rm`, refused for pinned blocks) and by garbage
//! collection (everything no pin protects).

use stargate_protocol::{Block, Cid, Multihash};

use crate::pin_table::{PinType, all_pins};
use crate::tables::{PINS, open_read, open_write, read_tables, write_tables};
use crate::{Store, StoreError};

/// Blocks removed per GC transaction: bounds the memory of a sweep and the time other writers
/// wait for it.
const GC_BATCH: usize = 4096;

/// What a garbage collection did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcSummary {
    /// Blocks removed.
    pub blocks_removed: u64,
    /// Their bytes (freed inside the database file, which keeps its size and reuses them).
    pub bytes_freed: u64,
    /// Blocks kept because a pin protects them.
    pub blocks_kept: u64,
}

fn describe(how: &PinType) -> String {
    match how {
        PinType::Recursive => "recursively".to_owned(),
        PinType::Direct => "directly".to_owned(),
        PinType::Indirect { via } => format!("indirectly through {via}"),
    }
}

impl Store {
    /// Removes the block `cid` names; `Ok(false)` if it was not stored.
    ///
    /// # Errors
    /// [`StoreError::Pinned`] if a pin protects it (directly, recursively, or as part of a
    /// recursively pinned DAG); a database error.
    pub fn delete(&self, cid: &Cid) -> Result<bool, StoreError> {
        self.delete_many(std::slice::from_ref(cid))?
            .pop()
            .unwrap_or(Ok(false))
    }

    /// Removes several blocks in one transaction, each independently: the result per CID is
    /// `Ok(true)` (removed), `Ok(false)` (not stored) or [`StoreError::Pinned`]. Finding
    /// indirect pins walks the pinned DAGs once for all of them.
    ///
    /// # Errors
    /// A database error, in which case nothing was removed.
    pub fn delete_many(&self, cids: &[Cid]) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let (results, blocks, bytes) = self.write(|txn| {
            let pins = all_pins(&open_write(txn, PINS)?)?;
            let mut tables = write_tables(txn)?;
            let mut stored = Vec::new();
            for cid in cids {
                let mh = cid.hash().to_bytes();
                if Block::from_identity(cid).is_none() && tables.entry(&mh)?.is_some() {
                    stored.push(mh);
                }
            }
            let pinned = tables.pinned_how(&pins, &stored)?;
            let (mut blocks, mut bytes) = (0, 0);
            let mut results = Vec::with_capacity(cids.len());
            for cid in cids {
                let mh = cid.hash().to_bytes();
                let result = if let Some(how) = pinned.get(&mh) {
                    Err(StoreError::Pinned {
                        cid: cid.to_string(),
                        how: describe(how),
                    })
                } else if Block::from_identity(cid).is_some() {
                    Ok(false)
                } else if let Some(entry) = tables.remove(&mh)? {
                    blocks += 1;
                    bytes += u64::from(entry.len);
                    Ok(true)
                } else {
                    Ok(false)
                };
                results.push(result);
            }
            Ok((results, blocks, bytes))
        })?;
        self.forget_cached(
            cids.iter()
                .zip(&results)
                .filter(|(_, r)| matches!(r, Ok(true)))
                .map(|(cid, _)| cid.hash()),
        );
        self.counters().removed(blocks, bytes);
        for _ in results.iter().filter(|r| r.is_err()) {
            self.counters().reject();
        }
        Ok(results)
    }

    /// Removes every block that no pin protects: marks by walking from every pin, then sweeps
    /// the rest in batches. Writers and pins wait while it runs (and it waits for those in
    /// progress), so it never removes a block of a DAG that is being added. Plain
    /// [`Store::put`]s go on meanwhile; what they store is unpinned and may be removed.
    ///
    /// Must not be called by a thread that holds a [`BlockWriter`](crate::BlockWriter).
    ///
    /// # Errors
    /// A database error; batches swept before it stay removed.
    pub fn gc(&self) -> Result<GcSummary, StoreError> {
        self.gc_with(|_| ())
    }

    /// [`Store::gc`], telling `removed` each removed block's multihash once its removal has
    /// committed (Kubo's `repo gc` lists them). GC holds writers off until it returns, so
    /// `removed` should not wait long.
    ///
    /// # Errors
    /// As [`Store::gc`].
    pub fn gc_with(&self, mut removed: impl FnMut(&Multihash)) -> Result<GcSummary, StoreError> {
        let _exclusive = self.gc_exclusive();
        let live = self.read(|txn| {
            let pins = all_pins(&open_read(txn, PINS)?)?;
            read_tables(txn)?.live_set(&pins)
        })?;
        let mut summary = GcSummary::default();
        let mut after: Option<Vec<u8>> = None;
        loop {
            // Each page comes from a fresh snapshot so the sweep's own commits free pages.
            let (doomed, last, kept) = self.read(|txn| {
                let tables = read_tables(txn)?;
                let (mut doomed, mut last, mut kept) = (Vec::new(), None, 0u64);
                for item in tables.index_from(after.as_deref())? {
                    let (mh, _) = item?;
                    if live.contains(&mh) {
                        kept += 1;
                    } else {
                        doomed.push(mh.clone());
                    }
                    last = Some(mh);
                    if doomed.len() >= GC_BATCH {
                        break;
                    }
                }
                Ok((doomed, last, kept))
            })?;
            summary.blocks_kept += kept;
            let full_page = doomed.len() >= GC_BATCH;
            if !doomed.is_empty() {
                let (blocks, bytes, gone) = self.write(|txn| {
                    let mut tables = write_tables(txn)?;
                    let (mut blocks, mut bytes) = (0u64, 0u64);
                    let mut gone = Vec::new();
                    for mh in &doomed {
                        if let Some(entry) = tables.remove(mh)? {
                            blocks += 1;
                            bytes += u64::from(entry.len);
                            // Keys are multihashes written by the store; one that no longer
                            // parses cannot be in the cache either.
                            gone.extend(Multihash::from_bytes(mh).ok());
                        }
                    }
                    Ok((blocks, bytes, gone))
                })?;
                self.forget_cached(&gone);
                gone.iter().for_each(&mut removed);
                self.counters().removed(blocks, bytes);
                summary.blocks_removed += blocks;
                summary.bytes_freed += bytes;
            }
            match last {
                Some(last) if full_page => after = Some(last),
                _ => break,
            }
        }
        tracing::info!(
            removed = summary.blocks_removed,
            bytes = summary.bytes_freed,
            kept = summary.blocks_kept,
            "garbage collection done"
        );
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{node, open, open_with, raw};
    use crate::{PinMode, StoreOptions};
    use std::time::Duration;

    #[test]
    fn gc_keeps_pinned_dags_and_removes_the_rest() {
        let (_dir, store) = open();
        let (a, b, c, d) = (
            raw(vec![1u8; 100]),
            raw(vec![2u8; 200]),
            raw(vec![3u8; 300]),
            raw(vec![4u8; 400]),
        );
        let root = node(&[&a, &b], b"root");
        store
            .put_many([a.clone(), b.clone(), c.clone(), d.clone(), root.clone()])
            .unwrap();
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        store.pin(c.cid(), PinMode::Direct).unwrap();
        let summary = store.gc().unwrap();
        assert_eq!(summary.blocks_removed, 1);
        assert_eq!(summary.bytes_freed, 400);
        assert_eq!(summary.blocks_kept, 4);
        assert!(!store.has(d.cid()).unwrap());
        for kept in [&a, &b, &c, &root] {
            assert!(store.has(kept.cid()).unwrap());
        }
        store.unpin(root.cid()).unwrap();
        let summary = store.gc().unwrap();
        assert_eq!(summary.blocks_removed, 3);
        assert_eq!(store.stat().unwrap().blocks, 1);
        assert_eq!(store.metrics().blocks_removed, 4);
    }

    #[test]
    fn gc_sweeps_in_several_batches() {
        let (_dir, store) = open();
        let n = GC_BATCH * 2 + 17;
        store
            .put_many((0..n as u32).map(|i| raw(i.to_le_bytes().to_vec())))
            .unwrap();
        let keep = raw(&b"keep"[..]);
        store.put(keep.clone()).unwrap();
        store.pin(keep.cid(), PinMode::Direct).unwrap();
        let mut told = std::collections::HashSet::new();
        let summary = store.gc_with(|mh| assert!(told.insert(*mh))).unwrap();
        assert_eq!(summary.blocks_removed, n as u64);
        assert_eq!(summary.blocks_kept, 1);
        assert_eq!(store.stat().unwrap().blocks, 1);
        // Every removed block is named once, and only those.
        assert_eq!(told.len(), n);
        assert!(!told.contains(keep.cid().hash()));
        assert!(told.contains(raw(0u32.to_le_bytes().to_vec()).cid().hash()));
    }

    #[test]
    fn gc_waits_for_an_add_in_progress() {
        let (_dir, store) = open_with(StoreOptions {
            batch_bytes: 1,
            ..StoreOptions::default()
        });
        let leaves: Vec<_> = (0..5u8).map(|i| raw(vec![i; 1000])).collect();
        let root = node(&leaves.iter().collect::<Vec<_>>(), b"root");
        let mut writer = store.writer();
        // Each put is its own batch, committed (unpinned) while the add goes on.
        for leaf in &leaves {
            writer.put(leaf.clone()).unwrap();
        }
        let (done, finished) = std::sync::mpsc::channel();
        let gc_store = store.clone();
        let gc = std::thread::spawn(move || {
            let summary = gc_store.gc();
            done.send(()).unwrap();
            summary
        });
        assert!(
            finished.recv_timeout(Duration::from_millis(300)).is_err(),
            "GC ran while an add was in progress"
        );
        writer.put(root.clone()).unwrap();
        writer
            .finish(Some((*root.cid(), PinMode::Recursive)))
            .unwrap();
        let summary = gc.join().unwrap().unwrap();
        assert_eq!(summary.blocks_removed, 0);
        assert_eq!(summary.blocks_kept, 6);
    }

    #[test]
    fn a_thread_holding_a_writer_can_pin_while_a_gc_waits() {
        let (_dir, store) = open();
        let block = raw(&b"pinned while GC waits"[..]);
        let mut writer = store.writer();
        writer.put(block.clone()).unwrap();
        let gc_store = store.clone();
        let gc = std::thread::spawn(move || gc_store.gc());
        // Let the GC start waiting for the writer.
        std::thread::sleep(Duration::from_millis(100));
        store.put(raw(&b"plain put"[..])).unwrap();
        let other = raw(&b"second writer"[..]);
        let mut second = store.writer();
        second.put(other.clone()).unwrap();
        second
            .finish(Some((*other.cid(), PinMode::Direct)))
            .unwrap();
        writer
            .finish(Some((*block.cid(), PinMode::Direct)))
            .unwrap();
        let summary = gc.join().unwrap().unwrap();
        assert_eq!(summary.blocks_kept, 2);
        assert!(store.has(block.cid()).unwrap() && store.has(other.cid()).unwrap());
    }

    #[test]
    fn delete_refuses_pinned_blocks_and_says_why() {
        let (_dir, store) = open();
        let (a, b, loose) = (raw(&b"a"[..]), raw(&b"b"[..]), raw(&b"loose"[..]));
        let root = node(&[&a], b"root");
        store
            .put_many([a.clone(), b.clone(), loose.clone(), root.clone()])
            .unwrap();
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        store.pin(b.cid(), PinMode::Direct).unwrap();
        let results = store
            .delete_many(&[*root.cid(), *a.cid(), *b.cid(), *loose.cid(), *loose.cid()])
            .unwrap();
        let how = |r: &Result<bool, StoreError>| match r {
            Err(StoreError::Pinned { how, .. }) => how.clone(),
            other => panic!("expected a pinned error, got {other:?}"),
        };
        assert_eq!(how(&results[0]), "recursively");
        assert_eq!(
            how(&results[1]),
            format!("indirectly through {}", root.cid())
        );
        assert_eq!(how(&results[2]), "directly");
        assert_eq!(results[3], Ok(true));
        assert_eq!(results[4], Ok(false));
        assert!(store.has(a.cid()).unwrap());
        assert!(!store.has(loose.cid()).unwrap());
        // The same bytes under another CID are protected too.
        let a_as_v1_dagpb = Cid::new_v1(0x70, *a.cid().hash());
        assert!(matches!(
            store.delete(&a_as_v1_dagpb),
            Err(StoreError::Pinned { .. })
        ));
        assert_eq!(store.metrics().rejected_writes, 4);
        store.unpin(root.cid()).unwrap();
        assert_eq!(store.delete(a.cid()), Ok(true));
    }
}

//! `repo verify`: re-hash every stored block on all cores.

use std::sync::mpsc::sync_channel;

use rayon::prelude::*;
use redb::{ReadableDatabase, ReadableTableMetadata};
use stargate_protocol::{Bytes, Cid, Multihash};

use crate::blocks::{IndexEntry, display_mh, hash_matches};
use crate::error::db_err;
use crate::tables::{BLOCK_INDEX, open_read, read_tables};
use crate::{Store, StoreError};

/// Bytes read ahead of the hashing threads (two such batches are in memory at most).
const BATCH_BYTES: usize = 32 << 20;

/// How far a verification has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyProgress {
    /// Blocks hashed so far.
    pub blocks_checked: u64,
    /// Blocks in the snapshot being verified.
    pub blocks_total: u64,
    /// Bytes hashed so far.
    pub bytes_checked: u64,
}

/// A block that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorruptBlock {
    /// The multihash it is stored under (raw bytes: a damaged key may not even parse).
    pub key: Vec<u8>,
    /// The codec it was stored under.
    pub codec: u64,
    /// What is wrong.
    pub problem: String,
}

impl CorruptBlock {
    /// A CIDv1 for it, if its key is a valid multihash.
    pub fn cid(&self) -> Option<Cid> {
        Multihash::from_bytes(&self.key)
            .ok()
            .map(|mh| Cid::new_v1(self.codec, mh))
    }
}

impl std::fmt::Display for CorruptBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cid() {
            Some(cid) => write!(f, "block {cid} was corrupt ({})", self.problem),
            None => write!(
                f,
                "block {} was corrupt ({})",
                display_mh(&self.key),
                self.problem
            ),
        }
    }
}

/// The outcome of [`Store::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Blocks checked.
    pub blocks_checked: u64,
    /// Their bytes.
    pub bytes_checked: u64,
    /// The blocks whose bytes are missing or do not hash to their key.
    pub corrupt: Vec<CorruptBlock>,
}

/// A block as read for verification: its bytes, or why they could not be read.
type Item = (Vec<u8>, IndexEntry, Result<Bytes, String>);

fn check((key, entry, data): &Item) -> Option<CorruptBlock> {
    let problem = match data {
        Err(reason) => reason.clone(),
        Ok(data) => match Multihash::from_bytes(key) {
            Err(e) => format!("its key is not a multihash: {e}"),
            Ok(mh) if hash_matches(&mh, data) => return None,
            Ok(_) => "its bytes do not match its hash".to_owned(),
        },
    };
    Some(CorruptBlock {
        key: key.clone(),
        codec: entry.codec,
        problem,
    })
}

impl Store {
    /// Re-hashes every block of one consistent snapshot: one thread reads, all cores hash
    /// (rayon's global pool). Calls `progress` after each batch of about 32 MiB.
    ///
    /// # Errors
    /// A database error that stops the reading (damaged single blocks are reported in the
    /// result instead).
    pub fn verify(
        &self,
        mut progress: impl FnMut(VerifyProgress),
    ) -> Result<VerifyReport, StoreError> {
        let txn = self
            .db()
            .begin_read()
            .map_err(db_err("starting verification"))?;
        let mut state = VerifyProgress {
            blocks_total: open_read(&txn, BLOCK_INDEX)?
                .len()
                .map_err(db_err("counting blocks"))?,
            ..VerifyProgress::default()
        };
        let mut corrupt = Vec::new();
        let (batches, incoming) = sync_channel::<Vec<Item>>(1);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> Result<(), StoreError> {
                let tables = read_tables(&txn)?;
                let (mut batch, mut bytes) = (Vec::new(), 0);
                for item in tables.index_from(None)? {
                    let (key, entry) = item?;
                    let data = match tables.data(&key, entry) {
                        Ok(data) => Ok(data),
                        Err(StoreError::Corrupt { reason }) => Err(reason),
                        Err(e) => return Err(e),
                    };
                    bytes += entry.len as usize;
                    batch.push((key, entry, data));
                    if bytes >= BATCH_BYTES {
                        bytes = 0;
                        if batches.send(std::mem::take(&mut batch)).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = batches.send(batch);
                }
                Ok(())
            });
            for batch in incoming {
                corrupt.extend(batch.par_iter().filter_map(check).collect::<Vec<_>>());
                state.blocks_checked += batch.len() as u64;
                state.bytes_checked += batch.iter().map(|(_, e, _)| u64::from(e.len)).sum::<u64>();
                progress(state);
            }
            reader.join().unwrap_or_else(|_| {
                Err(StoreError::Database {
                    context: "verifying",
                    reason: "the reading thread panicked".to_owned(),
                })
            })
        })?;
        self.counters().verify_failures(corrupt.len() as u64);
        for block in &corrupt {
            tracing::error!(%block, "verification failed");
        }
        Ok(VerifyReport {
            blocks_checked: state.blocks_checked,
            bytes_checked: state.bytes_checked,
            corrupt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::tests::{drop_last_chunk, flip_a_byte};
    use crate::testutil::{open, raw};

    #[test]
    fn a_clean_store_verifies_with_progress() {
        let (_dir, store) = open();
        let blocks: Vec<_> = (0..300u32).map(|i| raw(vec![i as u8; 200_000])).collect();
        let total: u64 = blocks.iter().map(|b| b.data().len() as u64).sum();
        store.put_many(blocks).unwrap();
        let mut calls = Vec::new();
        let report = store.verify(|p| calls.push(p)).unwrap();
        assert!(report.corrupt.is_empty());
        assert_eq!(report.blocks_checked, 256);
        assert_eq!(report.bytes_checked, total / 300 * 256);
        assert!(calls.len() >= 2, "{calls:?}");
        let last = calls.last().unwrap();
        assert_eq!((last.blocks_checked, last.blocks_total), (256, 256));
    }

    #[test]
    fn damaged_blocks_are_reported_by_cid() {
        let (_dir, store) = open();
        let (good, flipped, truncated) = (
            raw(vec![1u8; 10]),
            raw(vec![2u8; 70_000]),
            raw(vec![3u8; 140_000]),
        );
        store
            .put_many([good.clone(), flipped.clone(), truncated.clone()])
            .unwrap();
        flip_a_byte(&store, flipped.cid());
        drop_last_chunk(&store, truncated.cid());
        let report = store.verify(|_| {}).unwrap();
        assert_eq!(report.blocks_checked, 3);
        let mut bad: Vec<(Cid, String)> = report
            .corrupt
            .iter()
            .map(|c| (c.cid().unwrap(), c.to_string()))
            .collect();
        bad.sort();
        let mut want = vec![*flipped.cid(), *truncated.cid()];
        want.sort();
        assert_eq!(bad.iter().map(|(c, _)| *c).collect::<Vec<_>>(), want);
        assert!(bad.iter().all(|(c, s)| s.contains(&c.to_string())));
        assert_eq!(store.metrics().verify_failures, 2);
    }
}

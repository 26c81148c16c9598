//! Bitcoin anchoring state: the queue of CIDs waiting for a transaction, the batches (one anchor
//! transaction and its fee bumps each), where every CID stands, and the wallet's change sets.
//!
//! Everything that must change together changes in one transaction: a batch is recorded with
//! its signed transaction, its members leave the queue and the wallet learns what it spent, all
//! before the transaction is broadcast — so a crash at any point neither loses a queued CID nor
//! lets the wallet spend the same output twice.
//!
//! Records are JSON with plain fields (hex for hashes and transactions): the `chain` crate maps
//! them to Bitcoin types, and the layout is this module's to keep stable.

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use stargate_protocol::Cid;
use stargate_protocol::anchor::anchor_cid;

use crate::error::db_err;
use crate::tables::{
    ANCHOR_BATCH_MEMBERS, ANCHOR_BATCHES, ANCHOR_CIDS, ANCHOR_META, ANCHOR_QUEUE,
    WALLET_CHANGESETS, open_read, open_write,
};
use crate::{Store, StoreError};

const NEXT_SEQ: &str = "next_queue_seq";
const NEXT_BATCH: &str = "next_batch_id";
const NEXT_CHANGESET: &str = "next_wallet_changeset";

/// Where one CID stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AnchorState {
    /// Waiting for the next batch.
    Queued {
        /// Position in the queue.
        seq: u64,
        /// When it was queued (Unix seconds).
        queued_at: u64,
    },
    /// Member `index` of batch `batch`; the batch record tells whether it is confirmed.
    Batched {
        /// The batch id.
        batch: u64,
        /// Its index in the batch's Merkle tree.
        index: u32,
    },
    /// Its batch failed; anchoring it again queues it again.
    Failed {
        /// Why.
        reason: String,
    },
}

/// What [`Store::anchor_enqueue`] did with one CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The CID as given.
    pub cid: Cid,
    /// Its state after the call.
    pub state: AnchorState,
    /// Whether this call queued it (false: it was already queued or batched).
    pub newly_queued: bool,
}

/// One signed transaction of a batch (the first, or a fee bump replacing it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchTx {
    /// Transaction id, hex as Bitcoin displays it.
    pub txid: String,
    /// The signed transaction, consensus-encoded, hex.
    pub raw: String,
    /// Fee paid, in satoshis.
    pub fee_sat: u64,
    /// Virtual size in vbytes.
    pub vsize: u64,
    /// When it was first handed to the backend (Unix seconds).
    pub broadcast_at: u64,
}

/// Where a batch's transaction was confirmed, with what a proof needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The transaction that confirmed (any of the batch's `txs`).
    pub txid: String,
    /// The block's hash, hex as Bitcoin displays it.
    pub block_hash: String,
    /// The block's height.
    pub height: u32,
    /// The block header, hex.
    pub header: String,
    /// The transaction's position in the block.
    pub tx_index: u32,
    /// The transaction's Merkle branch, hex of concatenated 32-byte hashes.
    pub branch: String,
}

/// Where a batch stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BatchState {
    /// Signed and handed to the backend, not (or no longer) in a block of the best chain.
    Broadcast,
    /// In a block of the best chain as far as the watcher last saw.
    Confirmed(Confirmation),
    /// Given up: the backend rejected the transaction for good.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One anchor transaction and its fee bumps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Assigned by [`Store::anchor_create_batch`].
    pub id: u64,
    /// When it was built (Unix seconds).
    pub created_at: u64,
    /// The 40-byte OP_RETURN payload, hex.
    pub payload: String,
    /// Number of CIDs it commits.
    pub size: u32,
    /// Every signed version, oldest first; the last is the one to rebroadcast.
    pub txs: Vec<BatchTx>,
    /// Where it stands.
    pub state: BatchState,
    /// The last problem seen while broadcasting or bumping, if any.
    pub last_error: Option<String>,
}

/// CIDs counted by state, for `anchor status` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnchorCounts {
    /// Waiting for a batch.
    pub queued: u64,
    /// In a batch whose transaction is not confirmed.
    pub broadcast: u64,
    /// In a batch whose transaction is confirmed.
    pub confirmed: u64,
    /// In a failed batch.
    pub failed: u64,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain structs of strings and integers: serialising them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        reason: format!("undecodable {what} record: {e}"),
    })
}

fn cid_from(bytes: &[u8]) -> Result<Cid, StoreError> {
    Cid::try_from(bytes).map_err(|e| StoreError::Corrupt {
        reason: format!("undecodable CID in the anchor tables: {e}"),
    })
}

fn next_id(meta: &mut redb::Table<'_, &str, u64>, key: &'static str) -> Result<u64, StoreError> {
    let ctx = "allocating an anchor id";
    let id = meta.get(key).map_err(db_err(ctx))?.map_or(0, |v| v.value());
    meta.insert(key, id + 1).map_err(db_err(ctx))?;
    Ok(id)
}

fn append_changeset(txn: &redb::WriteTransaction, changeset: &[u8]) -> Result<(), StoreError> {
    let ctx = "recording the wallet's changes";
    let mut meta = open_write(txn, ANCHOR_META)?;
    let seq = next_id(&mut meta, NEXT_CHANGESET)?;
    let mut sets = open_write(txn, WALLET_CHANGESETS)?;
    sets.insert(seq, changeset).map_err(db_err(ctx))?;
    Ok(())
}

impl Store {
    /// Queues CIDs for anchoring. A CID already queued or batched (under its v0 or v1 form)
    /// keeps its state; a failed one is queued again.
    ///
    /// # Errors
    /// A database error; then nothing was queued.
    pub fn anchor_enqueue(&self, cids: &[Cid], now: u64) -> Result<Vec<Enqueued>, StoreError> {
        let ctx = "queueing CIDs to anchor";
        self.write(|txn| {
            let mut meta = open_write(txn, ANCHOR_META)?;
            let mut queue = open_write(txn, ANCHOR_QUEUE)?;
            let mut states = open_write(txn, ANCHOR_CIDS)?;
            let mut out = Vec::with_capacity(cids.len());
            for cid in cids {
                let key = anchor_cid(cid).to_bytes();
                let existing = states
                    .get(key.as_slice())
                    .map_err(db_err(ctx))?
                    .map(|v| decode::<AnchorState>(v.value(), "anchor state"))
                    .transpose()?;
                match existing {
                    Some(state @ (AnchorState::Queued { .. } | AnchorState::Batched { .. })) => {
                        out.push(Enqueued {
                            cid: *cid,
                            state,
                            newly_queued: false,
                        });
                    }
                    _ => {
                        let seq = next_id(&mut meta, NEXT_SEQ)?;
                        queue
                            .insert(seq, cid.to_bytes().as_slice())
                            .map_err(db_err(ctx))?;
                        let state = AnchorState::Queued {
                            seq,
                            queued_at: now,
                        };
                        states
                            .insert(key.as_slice(), encode(&state).as_slice())
                            .map_err(db_err(ctx))?;
                        out.push(Enqueued {
                            cid: *cid,
                            state,
                            newly_queued: true,
                        });
                    }
                }
            }
            Ok(out)
        })
    }

    /// The oldest `limit` queued CIDs, oldest first, with the time the oldest was queued.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn anchor_queue(&self, limit: usize) -> Result<(Vec<Cid>, Option<u64>), StoreError> {
        let ctx = "reading the anchor queue";
        self.read(|txn| {
            let queue = open_read(txn, ANCHOR_QUEUE)?;
            let states = open_read(txn, ANCHOR_CIDS)?;
            let mut cids = Vec::new();
            for entry in queue.iter().map_err(db_err(ctx))?.take(limit) {
                let (_, cid) = entry.map_err(db_err(ctx))?;
                cids.push(cid_from(cid.value())?);
            }
            let oldest = match cids.first() {
                Some(cid) => match states
                    .get(anchor_cid(cid).to_bytes().as_slice())
                    .map_err(db_err(ctx))?
                {
                    Some(v) => match decode::<AnchorState>(v.value(), "anchor state")? {
                        AnchorState::Queued { queued_at, .. } => Some(queued_at),
                        _ => None,
                    },
                    None => None,
                },
                None => None,
            };
            Ok((cids, oldest))
        })
    }

    /// Where `cid` (v0 or v1 form) stands, if it was ever queued.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn anchor_state(&self, cid: &Cid) -> Result<Option<AnchorState>, StoreError> {
        let ctx = "reading an anchor state";
        self.read(|txn| {
            let states = open_read(txn, ANCHOR_CIDS)?;
            states
                .get(anchor_cid(cid).to_bytes().as_slice())
                .map_err(db_err(ctx))?
                .map(|v| decode(v.value(), "anchor state"))
                .transpose()
        })
    }

    /// Records a new batch — its first signed transaction, its members (taken off the queue,
    /// in tree order) and the wallet changes that spent its inputs — in one transaction, and
    /// returns its id. Call it before broadcasting.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn anchor_create_batch(
        &self,
        members: &[Cid],
        mut record: BatchRecord,
        wallet_changeset: Option<&[u8]>,
    ) -> Result<BatchRecord, StoreError> {
        let ctx = "recording an anchor batch";
        self.write(|txn| {
            let mut meta = open_write(txn, ANCHOR_META)?;
            record.id = next_id(&mut meta, NEXT_BATCH)?;
            drop(meta);
            let mut queue = open_write(txn, ANCHOR_QUEUE)?;
            let mut states = open_write(txn, ANCHOR_CIDS)?;
            let mut member_table = open_write(txn, ANCHOR_BATCH_MEMBERS)?;
            for (index, cid) in members.iter().enumerate() {
                let index = u32::try_from(index).map_err(|_| StoreError::Database {
                    context: ctx,
                    reason: "more than 2^32 members".to_owned(),
                })?;
                let key = anchor_cid(cid).to_bytes();
                if let Some(v) = states.get(key.as_slice()).map_err(db_err(ctx))?
                    && let AnchorState::Queued { seq, .. } =
                        decode::<AnchorState>(v.value(), "anchor state")?
                {
                    drop(v);
                    queue.remove(seq).map_err(db_err(ctx))?;
                }
                let state = AnchorState::Batched {
                    batch: record.id,
                    index,
                };
                states
                    .insert(key.as_slice(), encode(&state).as_slice())
                    .map_err(db_err(ctx))?;
                member_table
                    .insert((record.id, index), key.as_slice())
                    .map_err(db_err(ctx))?;
            }
            let mut batches = open_write(txn, ANCHOR_BATCHES)?;
            batches
                .insert(record.id, encode(&record).as_slice())
                .map_err(db_err(ctx))?;
            if let Some(changeset) = wallet_changeset {
                append_changeset(txn, changeset)?;
            }
            Ok(record)
        })
    }

    /// Replaces a batch's record (a fee bump, a confirmation, a reorg, an error), with the
    /// wallet changes that go with it. A batch that becomes failed marks its members failed.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn anchor_update_batch(
        &self,
        record: &BatchRecord,
        wallet_changeset: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let ctx = "updating an anchor batch";
        self.write(|txn| {
            let mut batches = open_write(txn, ANCHOR_BATCHES)?;
            batches
                .insert(record.id, encode(record).as_slice())
                .map_err(db_err(ctx))?;
            if let BatchState::Failed { reason } = &record.state {
                let members = open_read_members(txn, record.id)?;
                let mut states = open_write(txn, ANCHOR_CIDS)?;
                let failed = encode(&AnchorState::Failed {
                    reason: reason.clone(),
                });
                for key in members {
                    states
                        .insert(key.as_slice(), failed.as_slice())
                        .map_err(db_err(ctx))?;
                }
            }
            if let Some(changeset) = wallet_changeset {
                append_changeset(txn, changeset)?;
            }
            Ok(())
        })
    }

    /// Appends wallet changes on their own (a sync, a new address).
    ///
    /// # Errors
    /// A database error.
    pub fn wallet_append_changeset(&self, changeset: &[u8]) -> Result<(), StoreError> {
        self.write(|txn| append_changeset(txn, changeset))
    }

    /// Every wallet change set recorded, oldest first, to be merged into the wallet's state.
    ///
    /// # Errors
    /// A database error.
    pub fn wallet_changesets(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let ctx = "reading the wallet's changes";
        self.read(|txn| {
            let sets = open_read(txn, WALLET_CHANGESETS)?;
            sets.iter()
                .map_err(db_err(ctx))?
                .map(|e| e.map(|(_, v)| v.value().to_vec()).map_err(db_err(ctx)))
                .collect()
        })
    }

    /// A batch by id.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn anchor_batch(&self, id: u64) -> Result<Option<BatchRecord>, StoreError> {
        let ctx = "reading an anchor batch";
        self.read(|txn| {
            let batches = open_read(txn, ANCHOR_BATCHES)?;
            batches
                .get(id)
                .map_err(db_err(ctx))?
                .map(|v| decode(v.value(), "anchor batch"))
                .transpose()
        })
    }

    /// Every batch not yet confirmed or failed, plus every confirmed batch whose block is at
    /// or above `confirmed_since` (those a reorg could still undo), oldest first.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn anchor_open_batches(
        &self,
        confirmed_since: u32,
    ) -> Result<Vec<BatchRecord>, StoreError> {
        let ctx = "listing anchor batches";
        self.read(|txn| {
            let batches = open_read(txn, ANCHOR_BATCHES)?;
            let mut out = Vec::new();
            for entry in batches.iter().map_err(db_err(ctx))? {
                let (_, v) = entry.map_err(db_err(ctx))?;
                let record: BatchRecord = decode(v.value(), "anchor batch")?;
                let keep = match &record.state {
                    BatchState::Broadcast => true,
                    BatchState::Confirmed(c) => c.height >= confirmed_since,
                    BatchState::Failed { .. } => false,
                };
                if keep {
                    out.push(record);
                }
            }
            Ok(out)
        })
    }

    /// The `limit` newest batches, newest first, each with its first `members` members (as
    /// CIDv1, in tree order): what a status page lists.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn anchor_recent_batches(
        &self,
        limit: usize,
        members: usize,
    ) -> Result<Vec<(BatchRecord, Vec<Cid>)>, StoreError> {
        let ctx = "listing recent anchor batches";
        self.read(|txn| {
            let batches = open_read(txn, ANCHOR_BATCHES)?;
            let table = open_read(txn, ANCHOR_BATCH_MEMBERS)?;
            let mut out = Vec::new();
            for entry in batches.iter().map_err(db_err(ctx))?.rev().take(limit) {
                let (id, v) = entry.map_err(db_err(ctx))?;
                let record: BatchRecord = decode(v.value(), "anchor batch")?;
                let id = id.value();
                let cids = table
                    .range((id, 0)..=(id, u32::MAX))
                    .map_err(db_err(ctx))?
                    .take(members)
                    .map(|e| cid_from(e.map_err(db_err(ctx))?.1.value()))
                    .collect::<Result<_, _>>()?;
                out.push((record, cids));
            }
            Ok(out)
        })
    }

    /// The members of a batch (as CIDv1), in tree order.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn anchor_batch_members(&self, id: u64) -> Result<Vec<Cid>, StoreError> {
        self.read(|txn| {
            open_read_members_ro(txn, id)?
                .iter()
                .map(|k| cid_from(k))
                .collect()
        })
    }

    /// CIDs counted by state.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn anchor_counts(&self) -> Result<AnchorCounts, StoreError> {
        let ctx = "counting anchors";
        self.read(|txn| {
            let states = open_read(txn, ANCHOR_CIDS)?;
            let batches = open_read(txn, ANCHOR_BATCHES)?;
            let mut counts = AnchorCounts {
                queued: open_read(txn, ANCHOR_QUEUE)?.len().map_err(db_err(ctx))?,
                ..AnchorCounts::default()
            };
            let mut confirmed_batches = std::collections::HashMap::new();
            for entry in batches.iter().map_err(db_err(ctx))? {
                let (id, v) = entry.map_err(db_err(ctx))?;
                let record: BatchRecord = decode(v.value(), "anchor batch")?;
                confirmed_batches
                    .insert(id.value(), matches!(record.state, BatchState::Confirmed(_)));
            }
            for entry in states.iter().map_err(db_err(ctx))? {
                let (_, v) = entry.map_err(db_err(ctx))?;
                match decode::<AnchorState>(v.value(), "anchor state")? {
                    AnchorState::Queued { .. } => {}
                    AnchorState::Batched { batch, .. } => {
                        if confirmed_batches.get(&batch).copied().unwrap_or(false) {
                            counts.confirmed += 1;
                        } else {
                            counts.broadcast += 1;
                        }
                    }
                    AnchorState::Failed { .. } => counts.failed += 1,
                }
            }
            Ok(counts)
        })
    }
}

fn open_read_members(txn: &redb::WriteTransaction, id: u64) -> Result<Vec<Vec<u8>>, StoreError> {
    let ctx = "reading a batch's members";
    let table = open_write(txn, ANCHOR_BATCH_MEMBERS)?;
    table
        .range((id, 0)..=(id, u32::MAX))
        .map_err(db_err(ctx))?
        .map(|e| e.map(|(_, v)| v.value().to_vec()).map_err(db_err(ctx)))
        .collect()
}

fn open_read_members_ro(txn: &redb::ReadTransaction, id: u64) -> Result<Vec<Vec<u8>>, StoreError> {
    let ctx = "reading a batch's members";
    let table = open_read(txn, ANCHOR_BATCH_MEMBERS)?;
    table
        .range((id, 0)..=(id, u32::MAX))
        .map_err(db_err(ctx))?
        .map(|e| e.map(|(_, v)| v.value().to_vec()).map_err(db_err(ctx)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{open, raw};

    fn record() -> BatchRecord {
        BatchRecord {
            id: 0,
            created_at: 5,
            payload: "00".repeat(40),
            size: 2,
            txs: vec![BatchTx {
                txid: "11".repeat(32),
                raw: "00".to_owned(),
                fee_sat: 300,
                vsize: 150,
                broadcast_at: 6,
            }],
            state: BatchState::Broadcast,
            last_error: None,
        }
    }

    #[test]
    fn queue_batch_confirm_and_fail() {
        let (_dir, store) = open();
        let a = *raw(&b"a"[..]).cid();
        let b = *raw(&b"b"[..]).cid();
        let c = *raw(&b"c"[..]).cid();
        let queued = store.anchor_enqueue(&[a, b, c], 1).unwrap();
        assert!(queued.iter().all(|q| q.newly_queued));
        // Queueing again changes nothing.
        assert!(!store.anchor_enqueue(&[a], 2).unwrap()[0].newly_queued);
        let (head, oldest) = store.anchor_queue(2).unwrap();
        assert_eq!(head, vec![a, b]);
        assert_eq!(oldest, Some(1));

        let batch = store
            .anchor_create_batch(&head, record(), Some(b"{\"x\":1}"))
            .unwrap();
        assert_eq!(store.anchor_queue(10).unwrap().0, vec![c]);
        assert_eq!(
            store.anchor_state(&b).unwrap(),
            Some(AnchorState::Batched {
                batch: batch.id,
                index: 1
            })
        );
        assert_eq!(store.anchor_batch_members(batch.id).unwrap(), vec![a, b]);
        assert_eq!(
            store.anchor_counts().unwrap(),
            AnchorCounts {
                queued: 1,
                broadcast: 2,
                ..AnchorCounts::default()
            }
        );
        assert_eq!(
            store.wallet_changesets().unwrap(),
            vec![b"{\"x\":1}".to_vec()]
        );

        let mut confirmed = batch.clone();
        confirmed.state = BatchState::Confirmed(Confirmation {
            txid: "11".repeat(32),
            block_hash: "22".repeat(32),
            height: 100,
            header: String::new(),
            tx_index: 1,
            branch: String::new(),
        });
        store.anchor_update_batch(&confirmed, None).unwrap();
        assert_eq!(store.anchor_counts().unwrap().confirmed, 2);
        assert_eq!(store.anchor_open_batches(101).unwrap(), vec![]);
        assert_eq!(store.anchor_open_batches(100).unwrap(), vec![confirmed]);

        let mut failed = batch;
        failed.state = BatchState::Failed {
            reason: "rejected".to_owned(),
        };
        store.anchor_update_batch(&failed, None).unwrap();
        assert_eq!(store.anchor_counts().unwrap().failed, 2);
        // A failed CID can be queued again.
        assert!(store.anchor_enqueue(&[a], 9).unwrap()[0].newly_queued);
    }

    #[test]
    fn recent_batches_newest_first_with_their_first_members() {
        let (_dir, store) = open();
        let a = *raw(&b"a"[..]).cid();
        let b = *raw(&b"b"[..]).cid();
        let c = *raw(&b"c"[..]).cid();
        store.anchor_enqueue(&[a, b, c], 1).unwrap();
        let first = store.anchor_create_batch(&[a, b], record(), None).unwrap();
        let second = store.anchor_create_batch(&[c], record(), None).unwrap();
        let listed: Vec<(u64, Vec<Cid>)> = store
            .anchor_recent_batches(5, 1)
            .unwrap()
            .into_iter()
            .map(|(r, m)| (r.id, m))
            .collect();
        assert_eq!(listed, vec![(second.id, vec![c]), (first.id, vec![a])]);
        assert_eq!(store.anchor_recent_batches(1, 9).unwrap().len(), 1);
    }

    #[test]
    fn state_survives_reopen_and_v0_finds_v1() {
        let dir = tempfile::tempdir().unwrap();
        let block = crate::testutil::raw(&b"x"[..]);
        let v1 = Cid::new_v1(0x70, *block.cid().hash());
        let v0 = Cid::new_v0(*block.cid().hash()).unwrap();
        {
            let store = Store::open(dir.path(), crate::StoreOptions::default()).unwrap();
            store.anchor_enqueue(&[v0], 3).unwrap();
        }
        let store = Store::open(dir.path(), crate::StoreOptions::default()).unwrap();
        assert!(matches!(
            store.anchor_state(&v1).unwrap(),
            Some(AnchorState::Queued { queued_at: 3, .. })
        ));
        assert_eq!(store.anchor_queue(5).unwrap().0, vec![v0]);
    }
}

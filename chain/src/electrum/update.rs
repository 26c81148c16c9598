//! From the histories of the scripts that changed to bdk's wallet update: the transactions the
//! wallet lacks, the confirmations (each checked against its block header's Merkle root, as
//! bdk_electrum does), mempool sightings and evictions, and the chain up to the tip. All of it
//! is asked in one go; headers come as ranges.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bdk_wallet::chain::{BlockId, CheckPoint, ConfirmationBlockTime, TxUpdate};
use bdk_wallet::{Update, Wallet};
use bitcoin::block::Header;
use bitcoin::{BlockHash, ScriptBuf, Txid};
use electrum_client::{Client, Error, GetHistoryRes};

use super::requests::{Answer, Pacer, Request, proof_parts};
use crate::backend::{ProofParts, SyncEvents, Tip};
use crate::progress::{SyncProgress, SyncStage};

/// The latest blocks asked at each sync, to find where the wallet's chain meets the server's.
const CHAIN_SUFFIX: u32 = 8;
/// The wallet's latest checkpoints whose blocks are asked at each sync: one of them is almost
/// always where its chain meets the server's.
const LOCAL_CHECKPOINTS: usize = 4;
/// Checkpoints whose headers are asked at once while looking for where a reorged chain meets
/// the server's.
const AGREEMENT_BATCH: usize = 32;
/// The most headers e-x gives for one `blockchain.block.headers` request.
const MAX_HEADERS: u32 = 2016;
/// Needed heights at most this far apart share one range request (a header in a range costs
/// e-x 1/50, alone 1/4).
const RANGE_GAP: u32 = 12;
/// Confirmations deeper than this are not checked again for a reorg.
const REORG_DEPTH: u32 = 100;

/// Scripts and their histories as the server gave them.
pub(crate) type Histories = BTreeMap<ScriptBuf, Vec<GetHistoryRes>>;
/// Checked confirmations: each transaction's height and place in its block.
pub(crate) type Proofs = HashMap<Txid, (u32, ProofParts)>;

/// What a sync asks beyond the histories, and how it turns the answers into an update.
pub(crate) struct Fetch {
    started: u64,
    tip: Tip,
    /// Transactions in the histories that the wallet lacks.
    txs: Vec<Txid>,
    /// Confirmed entries that need a Merkle proof: not anchored at that height yet.
    proofs: Vec<(Txid, u32)>,
    /// Confirmed entries the wallet has anchored at that height, recently enough to be
    /// checked for a reorg, with the anchor's block hash.
    anchored: Vec<(Txid, u32, BlockHash)>,
    /// Unconfirmed entries.
    unconfirmed: Vec<Txid>,
    /// Unconfirmed transactions the wallet expected in these histories that are gone.
    evicted: Vec<Txid>,
    /// Heights whose headers are needed: confirmations, the chain suffix and the wallet's
    /// latest checkpoints.
    heights: BTreeSet<u32>,
}

impl Fetch {
    /// What bringing `wallet` up to `tip` with `histories` needs; `started` (Unix seconds) is
    /// when the mempool entries were seen.
    pub(crate) fn plan(wallet: &Wallet, histories: &Histories, tip: Tip, started: u64) -> Self {
        let graph = wallet.tx_graph();
        let mut plan = Self {
            started,
            tip,
            txs: Vec::new(),
            proofs: Vec::new(),
            anchored: Vec::new(),
            unconfirmed: Vec::new(),
            evicted: Vec::new(),
            heights: BTreeSet::new(),
        };
        let mut seen = HashSet::new();
        for entry in histories.values().flatten() {
            let txid = entry.tx_hash;
            if !seen.insert((txid, entry.height)) {
                continue;
            }
            if graph.get_tx(txid).is_none() {
                plan.txs.push(txid);
            }
            let height = match u32::try_from(entry.height) {
                Ok(height) if height > 0 && height <= tip.height => height,
                // 0 and -1: in the mempool (-1: with unconfirmed parents).
                _ => {
                    plan.unconfirmed.push(txid);
                    continue;
                }
            };
            let anchor = graph
                .all_anchors()
                .get(&txid)
                .and_then(|anchors| anchors.iter().find(|a| a.block_id.height == height));
            match anchor {
                None => plan.proofs.push((txid, height)),
                Some(a) if height + REORG_DEPTH > tip.height => {
                    plan.anchored.push((txid, height, a.block_id.hash));
                }
                Some(_) => continue,
            }
            plan.heights.insert(height);
        }
        plan.txs.sort();
        plan.txs.dedup();
        plan.evicted = graph
            .list_expected_spk_txids(
                wallet.local_chain(),
                wallet.latest_checkpoint().block_id(),
                wallet.spk_index(),
                ..,
            )
            .filter(|(spk, txid)| {
                histories
                    .get(spk)
                    .is_some_and(|h| h.iter().all(|e| e.tx_hash != *txid))
            })
            .map(|(_, txid)| txid)
            .collect();
        plan.heights
            .extend(tip.height.saturating_sub(CHAIN_SUFFIX - 1)..=tip.height);
        plan.heights.extend(
            wallet
                .latest_checkpoint()
                .iter()
                .take(LOCAL_CHECKPOINTS)
                .map(|cp| cp.height())
                .filter(|h| *h <= tip.height),
        );
        plan
    }

    /// Asks everything (a second, small round after a reorg), checks the proofs and builds the
    /// wallet's update; also returns each new confirmation's proof parts, which the worker asks
    /// for its own transactions right after.
    ///
    /// # Errors
    /// When a request fails or the server's chain does not connect to the wallet's.
    pub(crate) fn run(
        self,
        client: &Client,
        pacer: &mut Pacer,
        wallet: &Wallet,
        events: &mut dyn SyncEvents,
    ) -> Result<(Update, Proofs), Error> {
        let mut requests: Vec<Request> = self.txs.iter().map(|t| Request::Tx(*t)).collect();
        requests.extend(self.proofs.iter().map(|(t, h)| Request::Proof(*t, *h)));
        requests.extend(ranges(&self.heights).map(|(start, n)| Request::Headers(start, n)));
        let total = Some(requests.len() as u64);
        let stage = if self.txs.is_empty() {
            SyncStage::Confirmations
        } else {
            SyncStage::Transactions
        };
        let answers = pacer.call(client, &requests, |done| {
            events.progress(SyncProgress { stage, done, total });
        })?;
        let mut update = TxUpdate::default();
        let mut proofs = Vec::new();
        let mut headers = HashMap::new();
        for (request, answer) in requests.iter().zip(answers) {
            match (request, answer) {
                (_, Answer::Tx(tx)) => update.txs.push(tx),
                (Request::Proof(txid, height), Answer::Proof(proof)) => {
                    proofs.push((*txid, *height, proof));
                }
                (_, Answer::Headers(start, list)) => headers.extend((start..).zip(list)),
                _ => {}
            }
        }
        // A block that changed under a recent anchor: its transaction needs a new proof.
        let moved: Vec<Request> = self
            .anchored
            .iter()
            .filter(|(_, height, hash)| headers.get(height).map(Header::block_hash) != Some(*hash))
            .map(|(txid, height, _)| Request::Proof(*txid, *height))
            .collect();
        for (request, answer) in moved.iter().zip(pacer.call(client, &moved, |_| {})?) {
            if let (Request::Proof(txid, height), Answer::Proof(proof)) = (request, answer) {
                proofs.push((*txid, *height, proof));
            }
        }
        let mut checked = Proofs::new();
        for (txid, height, proof) in proofs {
            let Some(header) = headers.get(&height).copied() else {
                continue;
            };
            if !electrum_client::utils::validate_merkle_proof(&txid, &header.merkle_root, &proof) {
                tracing::warn!(%txid, height, "the Electrum server's Merkle proof does not match the block; the transaction stays unconfirmed");
                continue;
            }
            let anchor = ConfirmationBlockTime {
                block_id: BlockId {
                    height,
                    hash: header.block_hash(),
                },
                confirmation_time: u64::from(header.time),
            };
            update.anchors.insert((anchor, txid));
            checked.insert(txid, (height, proof_parts(proof, header)));
        }
        update.seen_ats = self
            .unconfirmed
            .iter()
            .map(|txid| (*txid, self.started))
            .collect();
        update.evicted_ats = self
            .evicted
            .iter()
            .map(|txid| (*txid, self.started))
            .collect();
        let chain = chain_update(
            client,
            pacer,
            wallet.latest_checkpoint(),
            self.tip,
            &mut headers,
        )?;
        // As bdk_electrum does: a checkpoint for each anchor's block, so the wallet can place it.
        let chain = update.anchors.iter().fold(chain, |cp, (anchor, _)| {
            let height = anchor.block_id.height;
            if cp.get(height).is_none() && height <= cp.height() {
                cp.insert(anchor.block_id)
            } else {
                cp
            }
        });
        let update = Update {
            last_active_indices: BTreeMap::new(),
            tx_update: update,
            chain: Some(chain),
        };
        Ok((update, checked))
    }
}

/// The wallet's chain brought to `tip`: from the highest checkpoint whose block the server
/// still has, extended by the blocks read above it. Headers not fetched yet (only after a
/// reorg deeper than the wallet's latest checkpoints) are asked [`AGREEMENT_BATCH`] checkpoints
/// at a time.
fn chain_update(
    client: &Client,
    pacer: &mut Pacer,
    local: CheckPoint,
    tip: Tip,
    headers: &mut HashMap<u32, Header>,
) -> Result<CheckPoint, Error> {
    // A server behind the wallet has nothing to add to its chain.
    if tip.height < local.height() {
        return Ok(local);
    }
    let mut agreement = None;
    for cp in local.iter() {
        let height = cp.height();
        if !headers.contains_key(&height) {
            let missing: Vec<Request> = cp
                .iter()
                .map(|below| below.height())
                .filter(|h| !headers.contains_key(h))
                .take(AGREEMENT_BATCH)
                .map(|h| Request::Headers(h, 1))
                .collect();
            for answer in pacer.call(client, &missing, |_| {})? {
                if let Answer::Headers(start, list) = answer {
                    headers.extend((start..).zip(list));
                }
            }
        }
        if headers.get(&height).map(Header::block_hash) == Some(cp.hash()) {
            agreement = Some(cp);
            break;
        }
    }
    let agreement = agreement.ok_or_else(|| {
        Error::Message("no block of the wallet's chain is on the server's chain".to_owned())
    })?;
    // Every block read above the agreement goes in: a reorg replaces the wallet's blocks only
    // when the update names the heights it replaces.
    let above = agreement.height();
    let mut newer: Vec<BlockId> = headers
        .iter()
        .filter(|(height, _)| **height > above && **height <= tip.height)
        .map(|(height, header)| BlockId {
            height: *height,
            hash: header.block_hash(),
        })
        .collect();
    newer.sort_by_key(|block| block.height);
    agreement
        .extend(newer)
        .map_err(|_| Error::Message("the server's headers do not follow each other".to_owned()))
}

/// Ranges `(start, count)` that cover `heights`, merging heights close enough that the range
/// costs the server less than asking them one by one.
fn ranges(heights: &BTreeSet<u32>) -> impl Iterator<Item = (u32, u32)> + '_ {
    let mut heights = heights.iter().copied().peekable();
    std::iter::from_fn(move || {
        let start = heights.next()?;
        let mut end = start;
        while let Some(&next) = heights.peek() {
            if next - end > RANGE_GAP || next - start >= MAX_HEADERS {
                break;
            }
            end = next;
            heights.next();
        }
        Some((start, end - start + 1))
    })
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash as _;
    use stargate_protocol::anchor::Network;
    use stargate_storage::{Store, StoreOptions};

    use super::*;
    use crate::wallet::{WalletKey, open_wallet};

    #[test]
    fn the_plan_asks_only_what_the_wallet_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let key = WalletKey::load_or_create(Network::Regtest, None, dir.path(), || None).unwrap();
        let wallet = open_wallet(&store, &key, Network::Regtest).unwrap();
        let txid = |n: u8| Txid::from_byte_array([n; 32]);
        let entry = |n: u8, height: i32| GetHistoryRes {
            height,
            tx_hash: txid(n),
            fee: None,
        };
        let spk = ScriptBuf::new_op_return([1u8; 4]);
        let histories: Histories = [(spk, vec![entry(1, 300), entry(2, 0), entry(3, -1)])]
            .into_iter()
            .collect();
        let tip = Tip {
            height: 310,
            hash: BlockHash::all_zeros(),
        };
        let plan = Fetch::plan(&wallet, &histories, tip, 7);
        assert_eq!(plan.txs, vec![txid(1), txid(2), txid(3)]);
        assert_eq!(plan.proofs, vec![(txid(1), 300)]);
        assert_eq!(plan.unconfirmed, vec![txid(2), txid(3)]);
        assert!(plan.anchored.is_empty() && plan.evicted.is_empty());
        // The confirmation's block, the chain's last eight and the wallet's genesis checkpoint.
        let heights: Vec<u32> = plan.heights.iter().copied().collect();
        assert_eq!(
            heights,
            vec![0, 300, 303, 304, 305, 306, 307, 308, 309, 310]
        );
        let requested: Vec<(u32, u32)> = ranges(&plan.heights).collect();
        assert_eq!(requested, vec![(0, 1), (300, 11)]);
    }

    #[test]
    fn close_heights_share_a_range_and_far_ones_do_not() {
        let heights: BTreeSet<u32> = [5, 6, 10, 30, 31, 2000].into_iter().collect();
        let got: Vec<(u32, u32)> = ranges(&heights).collect();
        assert_eq!(got, vec![(5, 6), (30, 2), (2000, 1)]);
        let dense: BTreeSet<u32> = (0..5000).collect();
        let got: Vec<(u32, u32)> = ranges(&dense).collect();
        assert_eq!(got, vec![(0, 2016), (2016, 2016), (4032, 968)]);
        assert!(ranges(&BTreeSet::new()).next().is_none());
    }
}

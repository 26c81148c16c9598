//! The wallet's sync over Electrum, shaped for a public server.
//!
//! Such a server charges every request against the session and delays, then drops, a client
//! whose cost grows faster than it decays (e-x: one unit a second, delays past 1,000, drops at
//! 10,000; a transaction costs 1, a header 0.25 alone or 0.02 in a range). e-x also holds back
//! an answer smaller than 1 KB for up to a second so that packets all look alike: every round
//! trip costs about a second. bdk_electrum's sync asks for each transaction in a request of its
//! own, each block header alone, and every history again at each sync; through e-x, 500
//! coinbase outputs took 8 min 35 s that way. So this module makes the requests itself, into
//! bdk's own update types, in as few round trips as it can:
//! - a new connection reads the histories of each keychain's scripts from index 0 up to a gap
//!   of [`STOP_GAP`] unused ones; the transactions the wallet lacks, the Merkle proofs of new
//!   confirmations and the block headers (as ranges) then go out together in pipelined batches
//!   of up to [`MAX_BATCH`], fewer when the server slows the session down;
//! - the revealed scripts are subscribed at the next round, once the wallet is up to date; a
//!   status that differs from the history the wallet took marks the script to be read again.
//!   Afterwards only the scripts whose status the server reports as changed are read again,
//!   and a round with no change and no new block asks nothing;
//! - every confirmation is checked against its block header's Merkle root before the wallet
//!   takes it, as bdk_electrum does.
//!
//! electrum-client's calls run on one thread: its reader hand-over between threads can leave a
//! batch waiting forever.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bdk_wallet::chain::{BlockId, CheckPoint, ConfirmationBlockTime, TxUpdate};
use bdk_wallet::{KeychainKind, Update, Wallet};
use bitcoin::block::Header;
use bitcoin::consensus::encode::{deserialize, deserialize_hex};
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::{BlockHash, ScriptBuf, Transaction, Txid};
use electrum_client::{Batch, Client, ElectrumApi, Error, GetHistoryRes, GetMerkleRes, Param};
use serde_json::Value;

use crate::ChainError;
use crate::backend::{SyncEvents, Tip};
use crate::progress::{SyncProgress, SyncStage};

/// Consecutive unused addresses after which the address scan stops (the usual gap limit).
const STOP_GAP: u32 = 20;
/// Scripts of each keychain read per round of the address scan.
const SCAN_CHUNK: usize = 50;
/// Requests per pipelined batch, at most and at least. A server counts its per-request timeout
/// (e-x: 30 s) from when a request arrives, and past its soft cost limit it delays each one
/// (up to 2.5 s) with fewer at once: the batch size halves when a batch was slow and doubles
/// back when it was quick.
const MAX_BATCH: usize = 1000;
const MIN_BATCH: usize = 25;
/// A batch slower than this halves the next one; one quicker than [`QUICK_BATCH`] doubles it.
const SLOW_BATCH: Duration = Duration::from_secs(8);
const QUICK_BATCH: Duration = Duration::from_secs(3);
/// The latest blocks asked at each sync, to find where the wallet's chain meets the server's.
const CHAIN_SUFFIX: u32 = 8;
/// The wallet's latest checkpoints whose blocks are asked at each sync: one of them is almost
/// always where its chain meets the server's.
const LOCAL_CHECKPOINTS: usize = 4;
/// The most headers e-x gives for one `blockchain.block.headers` request.
const MAX_HEADERS: u32 = 2016;
/// Needed heights at most this far apart share one range request (a header in a range costs
/// 1/50, alone 1/4).
const RANGE_GAP: u32 = 12;
/// Confirmations deeper than this are not checked again for a reorg.
const REORG_DEPTH: u32 = 100;

/// A script's Electrum status: the hash of its history, `None` when it has none.
type Status = Option<[u8; 32]>;
/// Scripts and their histories as the server gave them.
type Histories = BTreeMap<ScriptBuf, Vec<GetHistoryRes>>;

/// What one connection knows of the wallet's scripts.
#[derive(Debug, Default)]
pub(crate) struct ScriptWatch {
    /// Scripts subscribed on this connection, with the status of the history the wallet last
    /// took from them.
    statuses: HashMap<ScriptBuf, Status>,
    /// The status of histories the wallet took from scripts not subscribed yet.
    taken: HashMap<ScriptBuf, Status>,
    /// Scripts to read again.
    dirty: BTreeSet<ScriptBuf>,
    /// Whether the keychains were scanned for used addresses on this connection.
    scanned: bool,
    pacer: Pacer,
}

impl ScriptWatch {
    /// Brings `wallet` up to `tip` from the scripts that changed since the last round (all used
    /// ones on a new connection). Takes the notifications that the backend's last request (the
    /// tip's ping) brought in.
    ///
    /// # Errors
    /// When a request fails, the server answers something malformed, or the update does not
    /// connect to the wallet's chain.
    pub(crate) fn sync(
        &mut self,
        backend: &str,
        client: &Client,
        wallet: &mut Wallet,
        tip: Tip,
        events: &mut dyn SyncEvents,
    ) -> Result<(), ChainError> {
        let err = |context: &'static str| {
            move |e: Error| ChainError::Backend {
                backend: backend.to_owned(),
                context,
                reason: e.to_string(),
            }
        };
        let started = now_secs();
        let mut histories = Histories::new();
        if self.scanned {
            self.subscribe_revealed(client, wallet)
                .map_err(err("subscribing to the wallet's addresses"))?;
            self.take_notifications(client)
                .map_err(err("reading notifications"))?;
            let stale: Vec<ScriptBuf> = std::mem::take(&mut self.dirty).into_iter().collect();
            let read =
                histories_of(client, &mut self.pacer, &stale).map_err(err("reading histories"))?;
            histories.extend(stale.into_iter().zip(read));
        } else {
            // Subscriptions wait for the next round: the wallet is up to date one round trip
            // sooner, and a change in between shows as a status that differs from the one taken.
            scan(client, &mut self.pacer, wallet, &mut histories, events)
                .map_err(err("scanning the wallet's addresses"))?;
            self.scanned = true;
        }
        if !histories.is_empty() || wallet.latest_checkpoint().hash() != tip.hash {
            let update = Fetch::plan(wallet, &histories, tip, started)
                .run(client, &mut self.pacer, wallet, events)
                .map_err(err("fetching the wallet's transactions"))?;
            wallet
                .apply_update(update)
                .map_err(|e| ChainError::Wallet {
                    reason: format!("applying an Electrum update: {e}"),
                })?;
        }
        for (spk, history) in histories {
            let status = status_of(&history);
            match self.statuses.get_mut(&spk) {
                Some(watched) => *watched = status,
                None => {
                    self.taken.insert(spk, status);
                }
            }
        }
        Ok(())
    }

    /// Marks the scripts whose status the server reported as changed.
    fn take_notifications(&mut self, client: &Client) -> Result<(), Error> {
        for (spk, status) in &self.statuses {
            let mut latest = None;
            while let Some(next) = client.script_pop(spk)? {
                latest = Some(*next);
            }
            if latest.is_some() && latest != *status {
                self.dirty.insert(spk.clone());
            }
        }
        Ok(())
    }

    /// Subscribes the revealed scripts not watched yet; one whose status differs from the
    /// history the wallet took from it (none, if it never did) is read again.
    fn subscribe_revealed(&mut self, client: &Client, wallet: &Wallet) -> Result<(), Error> {
        let fresh: Vec<ScriptBuf> = wallet
            .spk_index()
            .revealed_spks(..)
            .map(|(_, spk)| spk)
            .filter(|spk| !self.statuses.contains_key(spk))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let statuses = client.batch_script_subscribe(fresh.iter().map(ScriptBuf::as_script))?;
        for (spk, status) in fresh.into_iter().zip(statuses) {
            let taken = self.taken.remove(&spk).flatten();
            if status.map(|s| *s) != taken {
                self.dirty.insert(spk.clone());
            }
            self.statuses.insert(spk, taken);
        }
        Ok(())
    }
}

/// Reads each keychain's histories from index 0 until [`STOP_GAP`] unused scripts follow the
/// last used one (and the last revealed one), both keychains in the same round trip, and
/// reveals up to the last used one.
fn scan(
    client: &Client,
    pacer: &mut Pacer,
    wallet: &mut Wallet,
    histories: &mut Histories,
    events: &mut dyn SyncEvents,
) -> Result<(), Error> {
    struct Keychain<I> {
        keychain: KeychainKind,
        spks: I,
        last_revealed: Option<u32>,
        last_used: Option<u32>,
        gap: u32,
    }
    let index = wallet.spk_index();
    let mut keychains: Vec<_> = [KeychainKind::External, KeychainKind::Internal]
        .into_iter()
        .filter_map(|keychain| {
            Some(Keychain {
                keychain,
                spks: index.unbounded_spk_iter(keychain)?,
                last_revealed: index.last_revealed_index(keychain),
                last_used: None,
                gap: 0,
            })
        })
        .collect();
    let mut checked = 0u64;
    loop {
        let mut round: Vec<(usize, u32, ScriptBuf)> = Vec::new();
        for (k, chain) in keychains.iter_mut().enumerate() {
            if chain.gap < STOP_GAP {
                round.extend(
                    chain
                        .spks
                        .by_ref()
                        .take(SCAN_CHUNK)
                        .map(|(i, spk)| (k, i, spk)),
                );
            }
        }
        if round.is_empty() {
            break;
        }
        let scripts: Vec<ScriptBuf> = round.iter().map(|(_, _, spk)| spk.clone()).collect();
        let read = histories_of(client, pacer, &scripts)?;
        for ((k, i, spk), history) in round.into_iter().zip(read) {
            let chain = &mut keychains[k];
            if !history.is_empty() {
                (chain.last_used, chain.gap) = (Some(i), 0);
            } else if chain.last_revealed.is_none_or(|r| i > r) {
                chain.gap += 1;
            }
            histories.insert(spk, history);
        }
        checked += scripts.len() as u64;
        events.progress(SyncProgress {
            stage: SyncStage::Addresses,
            done: checked,
            total: None,
        });
    }
    for chain in keychains {
        if let Some(i) = chain.last_used {
            wallet.reveal_addresses_to(chain.keychain, i).for_each(drop);
        }
    }
    Ok(())
}

/// The Electrum status of a history: the SHA-256 of `txid:height:` for each entry, in the
/// server's order.
fn status_of(history: &[GetHistoryRes]) -> Status {
    if history.is_empty() {
        return None;
    }
    let text: String = history
        .iter()
        .map(|entry| format!("{}:{}:", entry.tx_hash, entry.height))
        .collect();
    Some(sha256::Hash::hash(text.as_bytes()).to_byte_array())
}

/// What one sync asks beyond the histories, and how it turns the answers into an update.
struct Fetch {
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
    fn plan(wallet: &Wallet, histories: &Histories, tip: Tip, started: u64) -> Self {
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
    /// wallet's update.
    fn run(
        self,
        client: &Client,
        pacer: &mut Pacer,
        wallet: &Wallet,
        events: &mut dyn SyncEvents,
    ) -> Result<Update, Error> {
        let mut requests: Vec<Request> = self.txs.iter().map(|t| Request::Tx(*t)).collect();
        requests.extend(self.proofs.iter().map(|(t, h)| Request::Proof(*t, *h)));
        requests.extend(ranges(&self.heights).map(|(start, n)| Request::Headers(start, n)));
        let total = Some(requests.len() as u64);
        let stage = if self.txs.is_empty() {
            SyncStage::Confirmations
        } else {
            SyncStage::Transactions
        };
        let answers = call_all(client, pacer, &requests, |done| {
            events.progress(SyncProgress { stage, done, total });
        })?;
        let mut txs = Vec::new();
        let mut proofs = Vec::new();
        let mut headers = HashMap::new();
        for (request, answer) in requests.iter().zip(answers) {
            match request {
                Request::Tx(txid) => txs.push(transaction(*txid, answer)?),
                Request::Proof(txid, height) => proofs.push((*txid, *height, merkle(answer)?)),
                Request::Headers(start, _) => {
                    headers.extend((*start..).zip(header_range(answer)?));
                }
            }
        }
        // A block that changed under a recent anchor: its transaction needs a new proof.
        let moved: Vec<Request> = self
            .anchored
            .iter()
            .filter(|(_, height, hash)| headers.get(height).map(Header::block_hash) != Some(*hash))
            .map(|(txid, height, _)| Request::Proof(*txid, *height))
            .collect();
        for (request, answer) in moved.iter().zip(call_all(client, pacer, &moved, |_| {})?) {
            if let Request::Proof(txid, height) = request {
                proofs.push((*txid, *height, merkle(answer)?));
            }
        }
        let mut update = TxUpdate::default();
        update.txs = txs;
        for (txid, height, proof) in proofs {
            let Some(header) = headers.get(&height) else {
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
        let chain = chain_update(client, wallet.latest_checkpoint(), self.tip, &mut headers)?;
        // As bdk_electrum does: a checkpoint for each anchor's block, so the wallet can place it.
        let chain = update.anchors.iter().fold(chain, |cp, (anchor, _)| {
            let height = anchor.block_id.height;
            if cp.get(height).is_none() && height <= cp.height() {
                cp.insert(anchor.block_id)
            } else {
                cp
            }
        });
        Ok(Update {
            last_active_indices: BTreeMap::new(),
            tx_update: update,
            chain: Some(chain),
        })
    }
}

/// The wallet's chain brought to `tip`: from the highest checkpoint whose block the server
/// still has, extended by the latest blocks. A header not fetched yet is asked alone (only
/// after a reorg deeper than the wallet's latest checkpoints).
fn chain_update(
    client: &Client,
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
        let hash = match headers.get(&height) {
            Some(header) => header.block_hash(),
            None => {
                let header = client.block_header(height as usize)?;
                headers.insert(height, header);
                header.block_hash()
            }
        };
        if hash == cp.hash() {
            agreement = Some(cp);
            break;
        }
    }
    let agreement = agreement.ok_or_else(|| {
        Error::Message("no block of the wallet's chain is on the server's chain".to_owned())
    })?;
    let above = agreement.height();
    let newer: Vec<BlockId> = (tip.height.saturating_sub(CHAIN_SUFFIX - 1)..=tip.height)
        .filter(|h| *h > above)
        .filter_map(|height| {
            headers.get(&height).map(|header| BlockId {
                height,
                hash: header.block_hash(),
            })
        })
        .collect();
    agreement
        .extend(newer)
        .map_err(|_| Error::Message("the server's headers do not follow each other".to_owned()))
}

/// One request of a sync's batch.
enum Request {
    Tx(Txid),
    Proof(Txid, u32),
    /// `blockchain.block.headers` from a height, for a count.
    Headers(u32, u32),
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

/// Sizes the pipelined batches to the server's pace.
#[derive(Debug)]
struct Pacer {
    size: usize,
}

impl Default for Pacer {
    fn default() -> Self {
        Self { size: MAX_BATCH }
    }
}

impl Pacer {
    /// Asks the server about each of `items` (`add` puts its request in a batch), in
    /// successive batches, and returns the answers in order; `progress` hears how many are in
    /// after each batch.
    fn call<T>(
        &mut self,
        client: &Client,
        items: &[T],
        add: impl Fn(&mut Batch, &T),
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<Value>, Error> {
        let mut answers = Vec::with_capacity(items.len());
        let mut rest = items;
        while !rest.is_empty() {
            let (chunk, later) = rest.split_at(self.size.min(rest.len()));
            let mut batch = Batch::default();
            for item in chunk {
                add(&mut batch, item);
            }
            let started = Instant::now();
            let got = client.batch_call(&batch)?;
            if got.len() != chunk.len() {
                return Err(Error::Message(format!(
                    "{} answers to a batch of {} requests",
                    got.len(),
                    chunk.len()
                )));
            }
            let took = started.elapsed();
            if took > SLOW_BATCH {
                self.size = (self.size / 2).max(MIN_BATCH);
                tracing::info!(
                    took_ms = took.as_millis() as u64,
                    next = self.size,
                    "the Electrum server is slowing this session down; asking less at once"
                );
            } else if took < QUICK_BATCH {
                self.size = (self.size * 2).min(MAX_BATCH);
            }
            answers.extend(got);
            progress(answers.len() as u64);
            rest = later;
        }
        Ok(answers)
    }
}

/// Sends `requests` and returns the answers in order.
fn call_all(
    client: &Client,
    pacer: &mut Pacer,
    requests: &[Request],
    progress: impl FnMut(u64),
) -> Result<Vec<Value>, Error> {
    let add = |batch: &mut Batch, request: &Request| match request {
        Request::Tx(txid) => batch.transaction_get(txid),
        Request::Proof(txid, height) => batch.transaction_get_merkle(&(*txid, *height as usize)),
        Request::Headers(start, count) => batch.raw(
            "blockchain.block.headers".to_owned(),
            vec![Param::U32(*start), Param::U32(*count)],
        ),
    };
    pacer.call(client, requests, add, progress)
}

/// The histories of `spks`, in their order.
fn histories_of(
    client: &Client,
    pacer: &mut Pacer,
    spks: &[ScriptBuf],
) -> Result<Vec<Vec<GetHistoryRes>>, Error> {
    let add = |batch: &mut Batch, spk: &ScriptBuf| batch.script_get_history(spk);
    pacer
        .call(client, spks, add, |_| {})?
        .into_iter()
        .map(|answer| Ok(serde_json::from_value(answer)?))
        .collect()
}

fn transaction(txid: Txid, answer: Value) -> Result<Arc<Transaction>, Error> {
    let hex = answer
        .as_str()
        .ok_or_else(|| Error::InvalidResponse(answer.clone()))?;
    let tx: Transaction = deserialize_hex(hex).map_err(|e| Error::Message(e.to_string()))?;
    if tx.compute_txid() != txid {
        return Err(Error::Message(format!(
            "the server answered {} when asked for transaction {txid}",
            tx.compute_txid()
        )));
    }
    Ok(Arc::new(tx))
}

fn merkle(answer: Value) -> Result<GetMerkleRes, Error> {
    Ok(serde_json::from_value(answer)?)
}

/// The headers of a `blockchain.block.headers` answer: concatenated in `hex` (protocol 1.4)
/// or listed in `headers` (1.6).
fn header_range(answer: Value) -> Result<Vec<Header>, Error> {
    let bad = |e: hex::FromHexError| Error::Message(e.to_string());
    let bytes: Vec<u8> = match (answer.get("hex"), answer.get("headers")) {
        (Some(Value::String(hex)), _) => hex::decode(hex).map_err(bad)?,
        (_, Some(Value::Array(list))) => {
            let mut bytes = Vec::with_capacity(list.len() * 80);
            for item in list {
                let hex = item
                    .as_str()
                    .ok_or_else(|| Error::InvalidResponse(answer.clone()))?;
                bytes.extend(hex::decode(hex).map_err(bad)?);
            }
            bytes
        }
        _ => return Err(Error::InvalidResponse(answer)),
    };
    bytes
        .chunks(80)
        .map(|raw| deserialize(raw).map_err(|e| Error::Message(e.to_string())))
        .collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn header_ranges_read_both_protocol_shapes() {
        let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
        let hex = bitcoin::consensus::encode::serialize_hex(&genesis);
        let legacy = serde_json::json!({"hex": format!("{hex}{hex}"), "count": 2, "max": 2016});
        assert_eq!(header_range(legacy).unwrap(), vec![genesis, genesis]);
        let listed = serde_json::json!({"headers": [hex], "count": 1, "max": 2016});
        assert_eq!(header_range(listed).unwrap(), vec![genesis]);
        assert!(header_range(serde_json::json!({"count": 1})).is_err());
    }

    #[test]
    fn a_transaction_must_hash_to_the_id_asked() {
        let coinbase =
            bitcoin::constants::genesis_block(bitcoin::Network::Regtest).txdata[0].clone();
        let hex = Value::String(bitcoin::consensus::encode::serialize_hex(&coinbase));
        assert!(transaction(coinbase.compute_txid(), hex.clone()).is_ok());
        let other = Txid::from_byte_array([7; 32]);
        assert!(transaction(other, hex).is_err());
    }

    #[test]
    fn status_is_the_protocols_history_hash() {
        assert_eq!(status_of(&[]), None);
        let txid: Txid = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
            .parse()
            .unwrap();
        let history = [
            GetHistoryRes {
                height: 7,
                tx_hash: txid,
                fee: None,
            },
            GetHistoryRes {
                height: 0,
                tx_hash: txid,
                fee: None,
            },
        ];
        let text = format!("{txid}:7:{txid}:0:");
        assert_eq!(
            status_of(&history),
            Some(sha256::Hash::hash(text.as_bytes()).to_byte_array())
        );
    }
}

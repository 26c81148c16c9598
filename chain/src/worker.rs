//! The one thread that owns the backend connection and the wallet: it follows the tip, syncs
//! the wallet, watches batches (confirmation, reorg, rebroadcast, fee bump) and builds new
//! batches from the queue. Everything it does blocks, so it runs on its own OS thread. It
//! publishes what queries need in a [`Snapshot`] after every step, and callers wake it with
//! `unpark` when there is work (new CIDs in the queue, shutdown).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bdk_wallet::{KeychainKind, SignOptions, Wallet};
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::hashes::Hash as _;
use bitcoin::{Amount, Block, FeeRate, Transaction, Txid};
use stargate_protocol::anchor::{AnchorPayload, AnchorProof, Batch, Network};
use stargate_storage::{BatchRecord, BatchState, BatchTx, Confirmation, Store};
use tokio::sync::{mpsc, watch};

use crate::ChainError;
use crate::backend::{ChainBackend, SyncEvents, Tip};
use crate::config::ChainConfig;
use crate::connect::connect;
use crate::discovery::{DiscoveredAnchor, scan_block};
use crate::progress::{SyncProgress, SyncStage};
use crate::snapshot::{Snapshot, WalletView};
use crate::wallet::{WalletKey, open_wallet, take_changes};

/// A batch whose confirmation is this deep is no longer watched for reorgs.
const REORG_WINDOW: u32 = 100;
/// Consecutive rejections (not connection failures) after which a batch is given up.
const MAX_REJECTIONS: u32 = 3;
/// A sync that runs longer than this logs its progress at info level, at most this often.
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(5);

/// What the handle and the worker share.
#[derive(Debug)]
pub(crate) struct Signals {
    /// Set by shutdown (or the last handle going away): the worker returns after its round.
    pub(crate) stop: AtomicBool,
    /// Set when CIDs were queued: the worker runs a round at once instead of at its next tick.
    pub(crate) work: AtomicBool,
}

pub(crate) struct Worker {
    config: ChainConfig,
    store: Store,
    signals: Arc<Signals>,
    snapshot: watch::Sender<Snapshot>,
    discovered: Option<mpsc::Sender<DiscoveredAnchor>>,
    backend: Option<Box<dyn ChainBackend>>,
    /// Whether the wallet was synced through the current connection: until then, the
    /// snapshot says a sync is running from its start.
    caught_up: bool,
    wallet: Option<(Wallet, WalletKey)>,
    /// When each transaction was last handed to the backend by this process.
    last_sent: HashMap<Txid, Instant>,
    rejections: HashMap<u64, u32>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fee_rate(sat_per_vb: f64) -> FeeRate {
    // 1 sat/vB is 250 sat per 1000 weight units.
    FeeRate::from_sat_per_kwu((sat_per_vb * 250.0).ceil() as u64)
}

impl Worker {
    pub(crate) fn new(
        config: ChainConfig,
        store: Store,
        signals: Arc<Signals>,
        snapshot: watch::Sender<Snapshot>,
        discovered: Option<mpsc::Sender<DiscoveredAnchor>>,
    ) -> Self {
        Self {
            config,
            store,
            signals,
            snapshot,
            discovered,
            backend: None,
            caught_up: false,
            wallet: None,
            last_sent: HashMap::new(),
            rejections: HashMap::new(),
        }
    }

    pub(crate) fn run(mut self) {
        // The wallet first, so that queries have a state to answer from while the first sync
        // runs.
        if let Err(e) = self.wallet() {
            self.failed(&e);
        }
        self.publish_wallet();
        let mut next_tick = Instant::now();
        while !self.signals.stop.load(Ordering::Acquire) {
            let asked = self.signals.work.swap(false, Ordering::AcqRel);
            if asked || Instant::now() >= next_tick {
                match self.tick() {
                    Ok(()) => self.snapshot.send_modify(|s| s.last_error = None),
                    Err(e) => self.failed(&e),
                }
                self.publish_wallet();
                next_tick = Instant::now() + self.config.poll_interval;
            }
            std::thread::park_timeout(next_tick.saturating_duration_since(Instant::now()));
        }
    }

    fn failed(&mut self, e: &ChainError) {
        tracing::warn!(error = %e, "chain watcher");
        if matches!(e, ChainError::Backend { .. }) {
            // Reconnect on the next tick.
            self.backend = None;
            self.caught_up = false;
        }
        let error = e.to_string();
        self.snapshot.send_modify(|s| {
            s.last_error = Some(error);
            s.syncing = None;
        });
    }

    /// Publishes the open wallet's balance, receiving address and synced height. The address
    /// is revealed (and recorded) here, so that `wallet address` never waits for the worker.
    fn publish_wallet(&mut self) {
        let store = self.store.clone();
        let Some((wallet, _)) = self.wallet.as_mut() else {
            return;
        };
        let address = wallet.next_unused_address(KeychainKind::External).address;
        if let Some(changes) = take_changes(wallet)
            && let Err(e) = store.wallet_append_changeset(&changes)
        {
            // Memory must not keep a revealed index the database does not have.
            self.reload_wallet();
            self.failed(&e.into());
            return;
        }
        let b = wallet.balance();
        let view = WalletView {
            confirmed_sat: b.confirmed.to_sat(),
            pending_sat: (b.trusted_pending + b.untrusted_pending).to_sat(),
            immature_sat: b.immature.to_sat(),
            address,
            synced_height: wallet.latest_checkpoint().height(),
        };
        self.snapshot.send_modify(|s| s.wallet = Some(view));
    }

    fn backend(&mut self) -> Result<&mut Box<dyn ChainBackend>, ChainError> {
        if self.backend.is_none() {
            let backend = connect(&self.config.backend, self.config.network)?;
            tracing::info!(backend = %backend.describe(), network = %self.config.network, "chain backend connected");
            self.backend = Some(backend);
        }
        self.backend.as_mut().ok_or(ChainError::Stopped)
    }

    /// The wallet, opened (and its key created) on first use. A new key takes the backend's
    /// tip as its birthday when the backend can be reached.
    fn wallet(&mut self) -> Result<&mut (Wallet, WalletKey), ChainError> {
        if self.wallet.is_none() {
            let network = self.config.network;
            let configured = self.config.wallet_key.clone();
            let data_dir = self.config.data_dir.clone();
            let key = WalletKey::load_or_create(network, configured.as_deref(), &data_dir, || {
                self.backend().and_then(|b| b.tip()).ok().map(|t| t.height)
            })?;
            let wallet = open_wallet(&self.store, &key, network)?;
            self.wallet = Some((wallet, key));
        }
        self.wallet.as_mut().ok_or(ChainError::Stopped)
    }

    /// Drops the in-memory wallet so the next use rebuilds it from the database (after a
    /// failed write, memory must not keep what the database does not have).
    fn reload_wallet(&mut self) {
        self.wallet = None;
    }

    fn tick(&mut self) -> Result<(), ChainError> {
        let tip = self.sync()?;
        // The new balance is visible before the batches are looked at.
        self.publish_wallet();
        self.watch_batches(tip)?;
        self.maybe_build_batch()?;
        Ok(())
    }

    /// Syncs the wallet and returns the tip it reached.
    fn sync(&mut self) -> Result<Tip, ChainError> {
        let own: Vec<Txid> = if self.config.scan_anchors {
            self.store
                .anchor_open_batches(0)?
                .iter()
                .flat_map(|b| b.txs.iter().filter_map(|t| t.txid.parse().ok()))
                .collect()
        } else {
            Vec::new()
        };
        self.wallet()?;
        if !self.caught_up {
            let waiting = SyncProgress {
                stage: SyncStage::Waiting,
                done: 0,
                total: None,
            };
            self.snapshot.send_modify(|s| s.syncing = Some(waiting));
        }
        self.backend()?;
        let (Some(backend), Some((wallet, key))) = (self.backend.as_mut(), self.wallet.as_mut())
        else {
            return Err(ChainError::Stopped);
        };
        let before = wallet.tx_graph().full_txs().count();
        let mut events = Events {
            snapshot: &self.snapshot,
            discovered: self
                .discovered
                .as_ref()
                .filter(|_| self.config.scan_anchors),
            own,
            started: Instant::now(),
            last_log: None,
        };
        let synced = backend.sync_wallet(wallet, key.birthday_height, &mut events);
        self.snapshot.send_modify(|s| {
            s.syncing = None;
            if let Ok(tip) = &synced {
                s.tip = Some(*tip);
            }
        });
        let tip = synced?;
        self.caught_up = true;
        let height = wallet.latest_checkpoint().height();
        let new = wallet.tx_graph().full_txs().count().saturating_sub(before);
        if let Some(changes) = take_changes(wallet) {
            self.store.wallet_append_changeset(&changes)?;
        }
        let took = events.started.elapsed();
        if events.last_log.is_some() || new > 0 {
            tracing::info!(
                height,
                new_transactions = new,
                took_ms = took.as_millis() as u64,
                "wallet synced"
            );
        } else {
            tracing::debug!(height, took_ms = took.as_millis() as u64, "wallet synced");
        }
        Ok(tip)
    }

    fn watch_batches(&mut self, tip: Tip) -> Result<(), ChainError> {
        let since = tip.height.saturating_sub(REORG_WINDOW);
        for mut record in self.store.anchor_open_batches(since)? {
            let confirmed = self.confirmed_position(&record)?;
            match (&record.state, confirmed) {
                (BatchState::Confirmed(c), Some((txid, height, hash)))
                    if c.block_hash == hash.to_string() && c.txid == txid.to_string() =>
                {
                    let _ = height;
                }
                (BatchState::Confirmed(c), found) => {
                    tracing::warn!(batch = record.id, block = %c.block_hash, "anchor block left the best chain; dropping its proof");
                    record.state = BatchState::Broadcast;
                    if let Some((txid, height, _)) = found {
                        self.confirm(&mut record, txid, height)?;
                    }
                    self.store.anchor_update_batch(&record, None)?;
                }
                (BatchState::Broadcast, Some((txid, height, _))) => {
                    self.confirm(&mut record, txid, height)?;
                    self.store.anchor_update_batch(&record, None)?;
                }
                (BatchState::Broadcast, None) => self.nudge_unconfirmed(record)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Which of the batch's transactions the wallet sees confirmed, and where.
    fn confirmed_position(
        &mut self,
        record: &BatchRecord,
    ) -> Result<Option<(Txid, u32, bitcoin::BlockHash)>, ChainError> {
        let (wallet, _) = self.wallet()?;
        for tx in &record.txs {
            let Ok(txid) = tx.txid.parse::<Txid>() else {
                continue;
            };
            if let Some(wtx) = wallet.get_tx(txid)
                && let bdk_wallet::chain::ChainPosition::Confirmed { anchor, .. } =
                    wtx.chain_position
            {
                return Ok(Some((txid, anchor.block_id.height, anchor.block_id.hash)));
            }
        }
        Ok(None)
    }

    /// Fetches the proof parts of `txid` at `height` and, once they check out, records the
    /// batch as confirmed.
    fn confirm(
        &mut self,
        record: &mut BatchRecord,
        txid: Txid,
        height: u32,
    ) -> Result<(), ChainError> {
        let parts = self.backend()?.proof_parts(txid, height)?;
        let Some(tx_hex) = record.txs.iter().find(|t| t.txid == txid.to_string()) else {
            return Ok(());
        };
        let tx: Transaction = deserialize_hex(&tx_hex.raw).map_err(|e| ChainError::Wallet {
            reason: format!("batch {} holds an undecodable transaction: {e}", record.id),
        })?;
        // Checked as a proof before it is recorded: the payload's first member stands in.
        let members = self.store.anchor_batch_members(record.id)?;
        let payload = payload_of(record)?;
        let first = members.first().copied().ok_or_else(|| ChainError::Wallet {
            reason: format!("batch {} has no members", record.id),
        })?;
        let batch_path = match payload {
            AnchorPayload::Cid(_) => None,
            _ => Some(Batch::new(members)?.path(0)?),
        };
        let proof = AnchorProof {
            network: self.config.network,
            cid: first,
            batch: batch_path,
            tx,
            tx_index: parts.tx_index,
            tx_branch: parts.branch.clone(),
            header: parts.header,
            height,
        };
        proof.verify(None)?;
        tracing::info!(batch = record.id, %txid, height, "anchor confirmed");
        record.state = BatchState::Confirmed(Confirmation {
            txid: txid.to_string(),
            block_hash: parts.header.block_hash().to_string(),
            height,
            header: serialize_hex(&parts.header),
            tx_index: parts.tx_index,
            branch: hex_branch(&parts.branch),
        });
        record.last_error = None;
        Ok(())
    }

    /// An unconfirmed batch: bump its fee once it has waited long enough, otherwise hand it to
    /// the backend again when this process has not done so recently (after a restart, at once).
    fn nudge_unconfirmed(&mut self, mut record: BatchRecord) -> Result<(), ChainError> {
        let Some(last) = record.txs.last().cloned() else {
            return Ok(());
        };
        let waited = Duration::from_secs(now_secs().saturating_sub(last.broadcast_at));
        if waited >= self.config.rbf_after {
            match self.bump(&mut record, &last) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e @ ChainError::InsufficientFunds { .. }) => {
                    record.last_error = Some(e.to_string());
                    self.store.anchor_update_batch(&record, None)?;
                }
                Err(e) => return Err(e),
            }
        }
        let txid: Txid = last.txid.parse().map_err(|_| ChainError::Wallet {
            reason: format!("batch {} holds an invalid txid", record.id),
        })?;
        let due = self
            .last_sent
            .get(&txid)
            .is_none_or(|t| t.elapsed() >= self.config.rebroadcast_after);
        if due {
            let tx: Transaction = deserialize_hex(&last.raw).map_err(|e| ChainError::Wallet {
                reason: format!("batch {} holds an undecodable transaction: {e}", record.id),
            })?;
            self.send(&mut record, &tx)?;
        }
        Ok(())
    }

    /// Replaces the batch's last transaction by one paying more (BIP 125). Returns whether a
    /// replacement was made (not when the fee is already at the ceiling).
    fn bump(&mut self, record: &mut BatchRecord, last: &BatchTx) -> Result<bool, ChainError> {
        let old_rate = last.fee_sat as f64 / last.vsize.max(1) as f64;
        let fees = self.config.fees;
        let estimate = self.backend()?.fee_estimate(fees.target_blocks)?;
        let new_rate = (old_rate * 1.5)
            .max(old_rate + 1.0)
            .max(fees.rate(estimate))
            .min(fees.ceiling);
        if new_rate <= old_rate + 0.5 {
            return Ok(false);
        }
        let txid: Txid = last.txid.parse().map_err(|_| ChainError::Wallet {
            reason: format!("batch {} holds an invalid txid", record.id),
        })?;
        let network = self.config.network;
        let (wallet, key) = self.wallet()?;
        let mut builder = wallet
            .build_fee_bump(txid)
            .map_err(|e| ChainError::Wallet {
                reason: format!("cannot bump the fee of {txid}: {e}"),
            })?;
        builder.fee_rate(fee_rate(new_rate));
        let psbt = builder.finish().map_err(|e| tx_error(e, wallet, network))?;
        let tx = sign(wallet, key, psbt)?;
        let fee = wallet.calculate_fee(&tx).map_or(0, Amount::to_sat);
        wallet.apply_unconfirmed_txs([(tx.clone(), now_secs())]);
        let changes = take_changes(wallet);
        tracing::info!(batch = record.id, old = %txid, new = %tx.compute_txid(), rate = new_rate, "bumping an anchor's fee");
        record.txs.push(BatchTx {
            txid: tx.compute_txid().to_string(),
            raw: serialize_hex(&tx),
            fee_sat: fee,
            vsize: tx.vsize() as u64,
            broadcast_at: now_secs(),
        });
        if let Err(e) = self.store.anchor_update_batch(record, changes.as_deref()) {
            self.reload_wallet();
            return Err(e.into());
        }
        self.send(record, &tx)?;
        Ok(true)
    }

    /// Hands `tx` to the backend; a rejection is recorded on the batch, and after
    /// [`MAX_REJECTIONS`] the batch fails and its transactions leave the wallet.
    fn send(&mut self, record: &mut BatchRecord, tx: &Transaction) -> Result<(), ChainError> {
        let txid = tx.compute_txid();
        self.last_sent.insert(txid, Instant::now());
        match self.backend()?.broadcast(tx) {
            Ok(()) => {
                self.rejections.remove(&record.id);
                if record.last_error.take().is_some() {
                    self.store.anchor_update_batch(record, None)?;
                }
                Ok(())
            }
            Err(e) => {
                let rejected = matches!(&e, ChainError::Backend { reason, .. } if !reason.contains("connect") && !reason.contains("timed out"));
                let count = self.rejections.entry(record.id).or_insert(0);
                *count += u32::from(rejected);
                record.last_error = Some(e.to_string());
                if *count >= MAX_REJECTIONS {
                    tracing::error!(batch = record.id, error = %e, "giving up an anchor batch");
                    record.state = BatchState::Failed {
                        reason: e.to_string(),
                    };
                    let evicted: Vec<(Txid, u64)> = record
                        .txs
                        .iter()
                        .filter_map(|t| t.txid.parse().ok())
                        .map(|t| (t, now_secs()))
                        .collect();
                    let (wallet, _) = self.wallet()?;
                    wallet.apply_evicted_txs(evicted);
                    let changes = take_changes(wallet);
                    self.store.anchor_update_batch(record, changes.as_deref())?;
                    return Ok(());
                }
                self.store.anchor_update_batch(record, None)?;
                Err(e)
            }
        }
    }

    fn maybe_build_batch(&mut self) -> Result<(), ChainError> {
        let (queued, oldest) = self.store.anchor_queue(self.config.batch_max)?;
        let Some(oldest) = oldest else {
            return Ok(());
        };
        let waited = Duration::from_secs(now_secs().saturating_sub(oldest));
        if queued.len() < self.config.batch_max && waited < self.config.batch_interval {
            return Ok(());
        }
        let batch = Batch::new(queued)?;
        let payload = match batch.cids() {
            [only] => AnchorPayload::for_cid(only).unwrap_or_else(|_| batch.payload()),
            _ => batch.payload(),
        };
        let target = self.config.fees.target_blocks;
        let estimate = self.backend()?.fee_estimate(target)?;
        let rate = self.config.fees.rate(estimate);
        let network = self.config.network;
        let (wallet, key) = self.wallet()?;
        let mut builder = wallet.build_tx();
        builder
            .add_recipient(payload.script_pubkey(), Amount::ZERO)
            .fee_rate(fee_rate(rate));
        let psbt = builder.finish().map_err(|e| tx_error(e, wallet, network))?;
        let tx = sign(wallet, key, psbt)?;
        let fee = wallet.calculate_fee(&tx).map_or(0, Amount::to_sat);
        let now = now_secs();
        wallet.apply_unconfirmed_txs([(tx.clone(), now)]);
        let changes = take_changes(wallet);
        let record = BatchRecord {
            id: 0,
            created_at: now,
            payload: hex::encode(payload.to_bytes()),
            size: u32::try_from(batch.len()).unwrap_or(u32::MAX),
            txs: vec![BatchTx {
                txid: tx.compute_txid().to_string(),
                raw: serialize_hex(&tx),
                fee_sat: fee,
                vsize: tx.vsize() as u64,
                broadcast_at: now,
            }],
            state: BatchState::Broadcast,
            last_error: None,
        };
        let mut record =
            match self
                .store
                .anchor_create_batch(batch.cids(), record, changes.as_deref())
            {
                Ok(record) => record,
                Err(e) => {
                    self.reload_wallet();
                    return Err(e.into());
                }
            };
        tracing::info!(
            batch = record.id,
            cids = batch.len(),
            txid = %tx.compute_txid(),
            fee_sat = fee,
            vsize = tx.vsize(),
            "anchor transaction built"
        );
        self.send(&mut record, &tx)
    }
}

fn payload_of(record: &BatchRecord) -> Result<AnchorPayload, ChainError> {
    let bytes = hex::decode(&record.payload).map_err(|e| ChainError::Wallet {
        reason: format!("batch {} holds an undecodable payload: {e}", record.id),
    })?;
    Ok(AnchorPayload::from_bytes(&bytes)?)
}

pub(crate) fn hex_branch(branch: &[bitcoin::TxMerkleNode]) -> String {
    branch
        .iter()
        .map(|h| hex::encode(h.to_byte_array()))
        .collect()
}

fn sign(
    wallet: &Wallet,
    key: &WalletKey,
    mut psbt: bitcoin::Psbt,
) -> Result<Transaction, ChainError> {
    psbt.sign(key.xprv(), wallet.secp_ctx())
        .map_err(|(_, errors)| ChainError::Wallet {
            reason: format!("cannot sign the anchor transaction: {errors:?}"),
        })?;
    let finalized = wallet
        .finalize_psbt(&mut psbt, SignOptions::default())
        .map_err(|e| ChainError::Wallet {
            reason: format!("cannot finalize the anchor transaction: {e}"),
        })?;
    if !finalized {
        return Err(ChainError::Wallet {
            reason: "the anchor transaction could not be fully signed".to_owned(),
        });
    }
    psbt.extract_tx().map_err(|e| ChainError::Wallet {
        reason: format!("cannot extract the signed transaction: {e}"),
    })
}

fn tx_error(e: bdk_wallet::error::CreateTxError, wallet: &Wallet, _network: Network) -> ChainError {
    match e {
        bdk_wallet::error::CreateTxError::CoinSelection(funds) => ChainError::InsufficientFunds {
            available_sat: funds.available.to_sat(),
            needed_sat: funds.needed.to_sat(),
            address: wallet
                .peek_address(KeychainKind::External, 0)
                .address
                .to_string(),
        },
        other => ChainError::Wallet {
            reason: format!("cannot build the anchor transaction: {other}"),
        },
    }
}

/// The worker's side of a running sync: progress goes to the snapshot (and, for a long sync,
/// to the log), downloaded blocks to the anchor scan.
struct Events<'a> {
    snapshot: &'a watch::Sender<Snapshot>,
    discovered: Option<&'a mpsc::Sender<DiscoveredAnchor>>,
    own: Vec<Txid>,
    started: Instant,
    last_log: Option<Instant>,
}

impl SyncEvents for Events<'_> {
    fn block(&mut self, block: &Block, height: u32) {
        if let Some(channel) = self.discovered {
            scan_block(block, height, &self.own, channel);
        }
    }

    fn progress(&mut self, progress: SyncProgress) {
        self.snapshot.send_modify(|s| s.syncing = Some(progress));
        let due = self
            .last_log
            .map_or(self.started.elapsed(), |at| at.elapsed());
        if due >= PROGRESS_LOG_EVERY {
            tracing::info!(%progress, "wallet sync");
            self.last_log = Some(Instant::now());
        }
    }
}

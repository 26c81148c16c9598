//! The handle the node uses: queue CIDs, read their state and proofs, ask the wallet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::hashes::Hash as _;
use bitcoin::{Address, Transaction, TxMerkleNode, Txid};
use stargate_protocol::Cid;
use stargate_protocol::anchor::{AnchorPayload, AnchorProof, Batch, Network};
use stargate_storage::{AnchorCounts, AnchorState, BatchState, Store};
use tokio::sync::{mpsc, oneshot};

use crate::ChainError;
use crate::config::ChainConfig;
use crate::worker::{Command, WatchState, Worker};

/// Capacity of the command channel to the worker.
const COMMANDS: usize = 64;
/// Capacity of the discovered-anchor channel; further finds are dropped with a warning.
const DISCOVERED: usize = 1024;

/// Where one CID's anchor stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidAnchorState {
    /// Waiting for the next batch since `queued_at` (Unix seconds).
    Queued {
        /// When it was queued.
        queued_at: u64,
    },
    /// In a transaction that is not confirmed yet.
    Broadcast {
        /// The latest version of the transaction.
        txid: Txid,
    },
    /// In a block of the best chain.
    Confirmed {
        /// The transaction.
        txid: Txid,
        /// The block's height.
        height: u32,
        /// Blocks on top of it, itself included (0 if the watcher has no tip yet).
        depth: u32,
    },
    /// Its transaction was given up; anchoring it again queues it again.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One CID and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorStatus {
    /// The CID as asked.
    pub cid: Cid,
    /// Its state.
    pub state: CidAnchorState,
}

/// The wallet's balance in satoshis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletBalance {
    /// Confirmed and spendable.
    pub confirmed_sat: u64,
    /// Unconfirmed.
    pub pending_sat: u64,
    /// Coinbase outputs not yet mature.
    pub immature_sat: u64,
}

/// The watcher and the queue at a glance, for `anchor status` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStatus {
    /// The configured network.
    pub network: Network,
    /// The backend, e.g. `electrum tcp://…`.
    pub backend: String,
    /// The backend's tip height when last seen.
    pub tip_height: Option<u32>,
    /// Height the wallet is synced to.
    pub synced_height: Option<u32>,
    /// `block_sync_lag_blocks`: how far the wallet is behind the backend's tip.
    pub lag_blocks: Option<u32>,
    /// CIDs by state.
    pub counts: AnchorCounts,
    /// The watcher's last error, cleared by the next good round.
    pub last_error: Option<String>,
}

/// An anchor with Stargate's tag found in a block that this node did not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredAnchor {
    /// The transaction carrying it.
    pub txid: Txid,
    /// Height of its block.
    pub height: u32,
    /// The payload: a CID to mirror, or a batch root (whose members only its maker knows).
    pub payload: AnchorPayload,
}

/// The chain service: a cheap-to-clone handle on the worker thread that owns the backend
/// connection and the wallet. Dropping every handle does not stop the worker; call
/// [`AnchorService::shutdown`].
#[derive(Debug, Clone)]
pub struct AnchorService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    network: Network,
    backend: String,
    commands: mpsc::Sender<Command>,
    stop: Arc<AtomicBool>,
    watch: Arc<Mutex<WatchState>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl AnchorService {
    /// Starts the worker. It connects to the backend on its own and keeps retrying while the
    /// backend is down; queued CIDs wait in the database meanwhile. With `scan_anchors`, the
    /// returned receiver gets the anchors other instances put in new blocks.
    ///
    /// # Errors
    /// [`ChainError::Config`] for an unusable configuration.
    pub fn start(
        store: Store,
        config: ChainConfig,
    ) -> Result<(Self, Option<mpsc::Receiver<DiscoveredAnchor>>), ChainError> {
        config.validate()?;
        let (commands, rx) = mpsc::channel(COMMANDS);
        let (discovered_tx, discovered_rx) = if config.scan_anchors {
            let (tx, rx) = mpsc::channel(DISCOVERED);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let watch = Arc::new(Mutex::new(WatchState::default()));
        let network = config.network;
        let backend = config.backend.describe();
        let worker = Worker::new(
            config,
            store.clone(),
            rx,
            stop.clone(),
            watch.clone(),
            discovered_tx,
        );
        let thread = std::thread::Builder::new()
            .name("stargate-chain".to_owned())
            .spawn(move || worker.run())
            .map_err(|e| ChainError::Config {
                reason: format!("cannot start the chain thread: {e}"),
            })?;
        Ok((
            Self {
                inner: Arc::new(Inner {
                    store,
                    network,
                    backend,
                    commands,
                    stop,
                    watch,
                    thread: Mutex::new(Some(thread)),
                }),
            },
            discovered_rx,
        ))
    }

    fn wake(&self) {
        if let Ok(thread) = self.inner.thread.lock()
            && let Some(handle) = thread.as_ref()
        {
            handle.thread().unpark();
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, ChainError> + Send + 'static,
    ) -> Result<T, ChainError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| ChainError::Stopped)?
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ChainError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(make(reply))
            .await
            .map_err(|_| ChainError::Stopped)?;
        self.wake();
        answer.await.map_err(|_| ChainError::Stopped)
    }

    /// Queues CIDs for anchoring (a CID already queued or anchored keeps its state) and
    /// returns where each stands.
    ///
    /// # Errors
    /// A database error; then nothing was queued.
    pub async fn anchor(&self, cids: Vec<Cid>) -> Result<Vec<AnchorStatus>, ChainError> {
        let enqueued = self
            .blocking(move |store| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                Ok(store.anchor_enqueue(&cids, now)?)
            })
            .await?;
        self.wake();
        let mut out = Vec::with_capacity(enqueued.len());
        for e in enqueued {
            out.push(AnchorStatus {
                cid: e.cid,
                state: self.describe(e.state).await?,
            });
        }
        Ok(out)
    }

    /// Where `cid` stands, or `None` if it was never queued.
    ///
    /// # Errors
    /// A database error.
    pub async fn status(&self, cid: Cid) -> Result<Option<AnchorStatus>, ChainError> {
        let state = self
            .blocking(move |store| Ok(store.anchor_state(&cid)?))
            .await?;
        match state {
            None => Ok(None),
            Some(state) => Ok(Some(AnchorStatus {
                cid,
                state: self.describe(state).await?,
            })),
        }
    }

    async fn describe(&self, state: AnchorState) -> Result<CidAnchorState, ChainError> {
        Ok(match state {
            AnchorState::Queued { queued_at, .. } => CidAnchorState::Queued { queued_at },
            AnchorState::Failed { reason } => CidAnchorState::Failed { reason },
            AnchorState::Batched { batch, .. } => {
                let record = self
                    .blocking(move |store| Ok(store.anchor_batch(batch)?))
                    .await?
                    .ok_or_else(|| ChainError::Wallet {
                        reason: format!("batch {batch} is missing from the database"),
                    })?;
                let last = record
                    .txs
                    .last()
                    .and_then(|t| t.txid.parse().ok())
                    .unwrap_or_else(Txid::all_zeros);
                match record.state {
                    BatchState::Confirmed(c) => {
                        let tip = self.watch().tip.map_or(0, |t| t.height);
                        CidAnchorState::Confirmed {
                            txid: c.txid.parse().unwrap_or(last),
                            height: c.height,
                            depth: (tip + 1).saturating_sub(c.height),
                        }
                    }
                    BatchState::Failed { reason } => CidAnchorState::Failed { reason },
                    _ => CidAnchorState::Broadcast { txid: last },
                }
            }
            _ => CidAnchorState::Failed {
                reason: "unknown state".to_owned(),
            },
        })
    }

    fn watch(&self) -> WatchState {
        self.inner
            .watch
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    /// The self-contained proof for `cid`, checked before it is returned.
    ///
    /// # Errors
    /// [`ChainError::NotAnchored`] / [`ChainError::NotConfirmed`] when there is none yet.
    pub async fn proof(&self, cid: Cid) -> Result<AnchorProof, ChainError> {
        let network = self.inner.network;
        self.blocking(move |store| proof_for(store, network, cid))
            .await
    }

    /// Counts, tip and lag.
    ///
    /// # Errors
    /// A database error.
    pub async fn summary(&self) -> Result<ChainStatus, ChainError> {
        let counts = self.blocking(|store| Ok(store.anchor_counts()?)).await?;
        let watch = self.watch();
        let tip_height = watch.tip.map(|t| t.height);
        Ok(ChainStatus {
            network: self.inner.network,
            backend: self.inner.backend.clone(),
            tip_height,
            synced_height: watch.synced_height,
            lag_blocks: tip_height
                .zip(watch.synced_height)
                .map(|(tip, synced)| tip.saturating_sub(synced)),
            counts,
            last_error: watch.last_error,
        })
    }

    /// A fresh receiving address of the anchoring wallet.
    ///
    /// # Errors
    /// When the wallet cannot be opened or created.
    pub async fn wallet_address(&self) -> Result<Address, ChainError> {
        self.ask(Command::Address).await?
    }

    /// The anchoring wallet's balance as of its last sync.
    ///
    /// # Errors
    /// When the wallet cannot be opened or created.
    pub async fn wallet_balance(&self) -> Result<WalletBalance, ChainError> {
        self.ask(Command::Balance).await?
    }

    /// Stops the worker after its current round and waits for it.
    pub async fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.wake();
        let handle = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn proof_for(store: &Store, network: Network, cid: Cid) -> Result<AnchorProof, ChainError> {
    let not_confirmed = |state: &str| ChainError::NotConfirmed {
        cid: cid.to_string(),
        state: state.to_owned(),
    };
    let (batch_id, index) = match store.anchor_state(&cid)? {
        None => {
            return Err(ChainError::NotAnchored {
                cid: cid.to_string(),
            });
        }
        Some(AnchorState::Batched { batch, index }) => (batch, index),
        Some(AnchorState::Queued { .. }) => return Err(not_confirmed("queued")),
        Some(AnchorState::Failed { reason }) => {
            return Err(not_confirmed(&format!("failed: {reason}")));
        }
        Some(_) => return Err(not_confirmed("in an unknown state")),
    };
    let corrupt = |what: String| ChainError::Wallet {
        reason: format!("batch {batch_id}: {what}"),
    };
    let record = store
        .anchor_batch(batch_id)?
        .ok_or_else(|| corrupt("missing".to_owned()))?;
    let BatchState::Confirmed(c) = &record.state else {
        return Err(not_confirmed("broadcast, not yet confirmed"));
    };
    let raw = record
        .txs
        .iter()
        .find(|t| t.txid == c.txid)
        .ok_or_else(|| corrupt(format!("confirmed transaction {} is not recorded", c.txid)))?;
    let tx: Transaction =
        deserialize_hex(&raw.raw).map_err(|e| corrupt(format!("undecodable transaction: {e}")))?;
    let header =
        deserialize_hex(&c.header).map_err(|e| corrupt(format!("undecodable header: {e}")))?;
    let branch_bytes =
        hex::decode(&c.branch).map_err(|e| corrupt(format!("undecodable branch: {e}")))?;
    let tx_branch = branch_bytes
        .chunks_exact(32)
        .map(|chunk| {
            let mut h = [0u8; 32];
            h.copy_from_slice(chunk);
            TxMerkleNode::from_byte_array(h)
        })
        .collect();
    let payload_bytes =
        hex::decode(&record.payload).map_err(|e| corrupt(format!("undecodable payload: {e}")))?;
    let batch = match AnchorPayload::from_bytes(&payload_bytes)? {
        AnchorPayload::Cid(_) => None,
        _ => {
            let members = store.anchor_batch_members(batch_id)?;
            Some(Batch::new(members)?.path(index as usize)?)
        }
    };
    let proof = AnchorProof {
        network,
        cid,
        batch,
        tx,
        tx_index: c.tx_index,
        tx_branch,
        header,
        height: c.height,
    };
    proof.verify(None)?;
    Ok(proof)
}

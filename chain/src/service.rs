//! The handle the node uses: queue CIDs, read their state and proofs, ask the wallet. Wallet
//! and status questions are answered from the worker's last [`Snapshot`], never by waiting for
//! the worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::hashes::Hash as _;
use bitcoin::{Address, Transaction, TxMerkleNode, Txid};
use stargate_protocol::Cid;
use stargate_protocol::anchor::{AnchorPayload, AnchorProof, Batch, Network};
use stargate_storage::{AnchorCounts, AnchorState, BatchState, Store};
use tokio::sync::{mpsc, watch};

use crate::config::ChainConfig;
use crate::discovery::DiscoveredAnchor;
use crate::progress::SyncProgress;
use crate::snapshot::{Snapshot, WalletBalance};
use crate::thread::WorkerThread;
use crate::worker::{Signals, Worker};
use crate::{ChainError, ChainStopError};

/// Capacity of the discovered-anchor channel; further finds are dropped with a warning.
const DISCOVERED: usize = 1024;
/// How long a wallet question waits for the worker to open the wallet at start-up (creating
/// a key asks the backend for its tip, which may take its connection timeout).
const WALLET_OPEN_WAIT: Duration = Duration::from_secs(30);

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
    /// Set while the wallet syncs: how far it got.
    pub syncing: Option<SyncProgress>,
    /// The watcher's last error, cleared by the next good round.
    pub last_error: Option<String>,
}

/// The chain service: a cheap-to-clone handle on the worker thread that owns the backend
/// connection and the wallet. Dropping every handle stops the worker after its current step
/// without waiting for it; [`AnchorService::shutdown`] waits (within a limit) and says how it
/// ended.
#[derive(Debug, Clone)]
pub struct AnchorService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    network: Network,
    backend: String,
    signals: Arc<Signals>,
    snapshot: watch::Receiver<Snapshot>,
    thread: WorkerThread,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: nobody can ask for a shutdown any more.
        self.signals.stop.store(true, Ordering::Release);
        self.thread.wake();
    }
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
        let (discovered_tx, discovered_rx) = if config.scan_anchors {
            let (tx, rx) = mpsc::channel(DISCOVERED);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let signals = Arc::new(Signals {
            stop: AtomicBool::new(false),
            work: AtomicBool::new(false),
        });
        let (snapshot_tx, snapshot) = watch::channel(Snapshot::default());
        let network = config.network;
        let backend = config.backend.describe();
        let on_panic = snapshot_tx.clone();
        let worker = Worker::new(
            config,
            store.clone(),
            signals.clone(),
            snapshot_tx,
            discovered_tx,
        );
        let thread = WorkerThread::spawn(
            "stargate-chain",
            move || worker.run(),
            move |message| {
                tracing::error!(
                    panic = message,
                    "the chain worker thread panicked; anchoring has stopped"
                );
                on_panic.send_modify(|s| {
                    s.last_error = Some(format!(
                        "the chain worker stopped after a panic ({message}); restart the node"
                    ));
                    s.syncing = None;
                });
            },
        )
        .map_err(|e| ChainError::Config {
            reason: format!("cannot start the chain thread: {e}"),
        })?;
        Ok((
            Self {
                inner: Arc::new(Inner {
                    store,
                    network,
                    backend,
                    signals,
                    snapshot,
                    thread,
                }),
            },
            discovered_rx,
        ))
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
        self.inner.signals.work.store(true, Ordering::Release);
        self.inner.thread.wake();
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
                        let tip = self.inner.snapshot.borrow().tip.map_or(0, |t| t.height);
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

    /// The self-contained proof for `cid`, checked before it is returned.
    ///
    /// # Errors
    /// [`ChainError::NotAnchored`] / [`ChainError::NotConfirmed`] when there is none yet.
    pub async fn proof(&self, cid: Cid) -> Result<AnchorProof, ChainError> {
        let network = self.inner.network;
        self.blocking(move |store| proof_for(store, network, cid))
            .await
    }

    /// Counts, tip, lag and how far a running sync got.
    ///
    /// # Errors
    /// A database error.
    pub async fn summary(&self) -> Result<ChainStatus, ChainError> {
        let counts = self.blocking(|store| Ok(store.anchor_counts()?)).await?;
        let snapshot = self.inner.snapshot.borrow().clone();
        let tip_height = snapshot.tip.map(|t| t.height);
        let synced_height = snapshot.wallet.as_ref().map(|w| w.synced_height);
        Ok(ChainStatus {
            network: self.inner.network,
            backend: self.inner.backend.clone(),
            tip_height,
            synced_height,
            lag_blocks: tip_height
                .zip(synced_height)
                .map(|(tip, synced)| tip.saturating_sub(synced)),
            counts,
            syncing: snapshot.syncing,
            last_error: snapshot.last_error,
        })
    }

    /// The wallet as of its last sync; at start-up, waits (boundedly) for the worker to open it.
    async fn wallet(&self) -> Result<Snapshot, ChainError> {
        let mut snapshot = self.inner.snapshot.clone();
        let waited = tokio::time::timeout(
            WALLET_OPEN_WAIT,
            snapshot.wait_for(|s| s.wallet.is_some() || s.last_error.is_some()),
        )
        .await
        .map(|seen| seen.is_ok());
        let current = snapshot.borrow().clone();
        if current.wallet.is_some() {
            return Ok(current);
        }
        Err(ChainError::Wallet {
            reason: match (current.last_error, waited) {
                (Some(e), _) => format!("the wallet could not be opened: {e}"),
                (None, Err(_)) => format!(
                    "the wallet is not open yet after {}s; see the node's log",
                    WALLET_OPEN_WAIT.as_secs()
                ),
                (None, Ok(_)) => "the chain service has stopped".to_owned(),
            },
        })
    }

    /// The first receiving address of the anchoring wallet that has not been paid yet.
    ///
    /// # Errors
    /// When the wallet cannot be opened or created.
    pub async fn wallet_address(&self) -> Result<Address, ChainError> {
        self.wallet()
            .await?
            .wallet
            .map(|w| w.address)
            .ok_or(ChainError::Stopped)
    }

    /// The anchoring wallet's balance as of its last sync, and whether a sync is running.
    ///
    /// # Errors
    /// When the wallet cannot be opened or created.
    pub async fn wallet_balance(&self) -> Result<WalletBalance, ChainError> {
        self.wallet().await?.balance().ok_or(ChainError::Stopped)
    }

    /// Stops the worker after its current step and waits up to `limit` for it.
    ///
    /// # Errors
    /// [`ChainStopError::Panicked`] when the worker panicked (now or earlier),
    /// [`ChainStopError::TimedOut`] when it is still busy after `limit` (a backend call can
    /// block up to its 20 s timeout).
    pub async fn shutdown(&self, limit: Duration) -> Result<(), ChainStopError> {
        self.inner.signals.stop.store(true, Ordering::Release);
        self.inner.thread.wake();
        self.inner.thread.join(limit).await
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

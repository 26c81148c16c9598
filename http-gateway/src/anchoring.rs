//! The node's Bitcoin anchoring as the HTTP surface sees it: a narrow trait the node implements,
//! so that this crate never depends on the chain crate or on the node. Transaction ids and
//! addresses cross it as text, exactly as the API shows them.

use futures::future::BoxFuture;
use serde::Serialize;
use stargate_protocol::Cid;
use stargate_protocol::anchor::AnchorProof;

/// What anchoring requests answer when this process has no chain service.
pub(crate) const ANCHORING_OFF: &str = "anchoring is off: it needs a running daemon (`stargate daemon`) with a chain backend ([chain] electrum_url or rpc_url; STARGATE_CHAIN_ELECTRUM_URL or STARGATE_CHAIN_RPC_URL)";

/// Where one CID's anchor stands. Serialised with a `status` tag: `queued`, `broadcast`,
/// `confirmed` or `failed`, and that state's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
#[non_exhaustive]
pub enum AnchorState {
    /// Waiting for the next batch since `queued_at` (Unix seconds).
    Queued {
        /// When it was queued.
        queued_at: u64,
    },
    /// In a transaction that is not confirmed yet.
    Broadcast {
        /// The latest version of the transaction.
        txid: String,
    },
    /// In a block of the best chain.
    Confirmed {
        /// The transaction.
        txid: String,
        /// The block's height.
        height: u32,
        /// Blocks on top of it, itself included.
        depth: u32,
    },
    /// Its transaction was given up; anchoring the CID again queues it again.
    Failed {
        /// Why.
        reason: String,
    },
}

impl AnchorState {
    /// The state's name, as the `status` field and the metrics label show it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Broadcast { .. } => "broadcast",
            Self::Confirmed { .. } => "confirmed",
            Self::Failed { .. } => "failed",
        }
    }
}

/// One CID and where its anchor stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorEntry {
    /// The CID as asked.
    pub cid: Cid,
    /// Its state.
    pub state: AnchorState,
}

impl AnchorEntry {
    /// `{"cid": "...", "status": "...", ...the state's fields}`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.state).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("cid".to_owned(), self.cid.to_string().into());
        }
        value
    }
}

/// The watcher and the queue at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AnchoringSummary {
    /// `mainnet`, `testnet`, `signet`, `regtest`...
    pub network: String,
    /// The backend, e.g. `electrum tcp://…` (never with credentials).
    pub backend: String,
    /// The backend's tip height when last seen.
    pub tip_height: Option<u32>,
    /// Height the wallet is synced to.
    pub synced_height: Option<u32>,
    /// `block_sync_lag_blocks`: how far the wallet is behind the backend's tip.
    pub lag_blocks: Option<u32>,
    /// CIDs waiting for a batch.
    pub queued: u64,
    /// CIDs in an unconfirmed transaction.
    pub broadcast: u64,
    /// CIDs in a confirmed transaction.
    pub confirmed: u64,
    /// CIDs whose transaction was given up.
    pub failed: u64,
    /// Set while the wallet syncs: how far it got.
    pub syncing: Option<SyncProgress>,
    /// The watcher's last error, cleared by its next good round.
    pub last_error: Option<String>,
}

/// How far a running wallet sync has got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SyncProgress {
    /// What it is doing: `scanning addresses`, `fetching transactions`, `checking
    /// confirmations` or `reading blocks`.
    pub stage: String,
    /// Items of the stage done (for `reading blocks`, the height reached).
    pub done: u64,
    /// Items of the stage in all (for `reading blocks`, the tip's height), when known.
    pub total: Option<u64>,
    /// All of it in words, e.g. `fetching transactions 200 of 500`.
    pub text: String,
}

impl SyncProgress {
    /// Progress through `stage`, and how the node says it.
    pub fn new(stage: String, done: u64, total: Option<u64>, text: String) -> Self {
        Self {
            stage,
            done,
            total,
            text,
        }
    }
}

/// The anchoring wallet's balance in satoshis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WalletBalance {
    /// Confirmed and spendable.
    pub confirmed_sat: u64,
    /// Unconfirmed.
    pub pending_sat: u64,
    /// Coinbase outputs not yet mature.
    pub immature_sat: u64,
    /// Height of the block the balance reflects.
    pub synced_height: Option<u32>,
    /// Set while the wallet syncs: the balance may still change.
    pub syncing: Option<SyncProgress>,
}

impl WalletBalance {
    /// A balance, not saying as of when.
    pub fn new(confirmed_sat: u64, pending_sat: u64, immature_sat: u64) -> Self {
        Self {
            confirmed_sat,
            pending_sat,
            immature_sat,
            synced_height: None,
            syncing: None,
        }
    }
}

/// Why an anchoring operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AnchoringError {
    /// The CID was never queued.
    #[error("{cid} has not been anchored; queue it with `stargate anchor {cid}` first")]
    NotAnchored {
        /// The CID.
        cid: String,
    },
    /// The CID's transaction is not confirmed yet (or failed): there is no proof.
    #[error("{message}")]
    NotConfirmed {
        /// The CID.
        cid: String,
        /// What the chain service said.
        message: String,
    },
    /// The operation was tried and failed (backend down, wallet error, database error).
    #[error("{0}")]
    Failed(String),
    /// The chain service has stopped (the node is shutting down).
    #[error("the chain service has stopped")]
    Stopped,
}

/// The anchoring operations behind `POST /api/v1/anchors`, `GET /api/v1/anchors/<cid>` and the
/// CLI's `anchor` and `wallet` commands.
pub trait Anchoring: Send + Sync {
    /// Queues CIDs (a CID already queued or anchored keeps its state) and says where each
    /// stands. Either every CID is queued or none is.
    fn anchor(&self, cids: Vec<Cid>) -> BoxFuture<'_, Result<Vec<AnchorEntry>, AnchoringError>>;
    /// Where `cid` stands, or `None` if it was never queued.
    fn status(&self, cid: Cid) -> BoxFuture<'_, Result<Option<AnchorEntry>, AnchoringError>>;
    /// The self-contained proof for `cid`, once its transaction is confirmed.
    fn proof(&self, cid: Cid) -> BoxFuture<'_, Result<AnchorProof, AnchoringError>>;
    /// Counts, tip and lag.
    fn summary(&self) -> BoxFuture<'_, Result<AnchoringSummary, AnchoringError>>;
    /// A fresh receiving address of the anchoring wallet.
    fn wallet_address(&self) -> BoxFuture<'_, Result<String, AnchoringError>>;
    /// The anchoring wallet's balance as of its last sync.
    fn wallet_balance(&self) -> BoxFuture<'_, Result<WalletBalance, AnchoringError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_serialise_with_a_status_tag() {
        let cid = stargate_protocol::parse_cid("bafkqaaa").unwrap();
        let entry = AnchorEntry {
            cid,
            state: AnchorState::Confirmed {
                txid: "ab".into(),
                height: 7,
                depth: 2,
            },
        };
        let json = entry.to_json();
        assert_eq!(json["cid"], "bafkqaaa");
        assert_eq!(json["status"], "confirmed");
        assert_eq!(json["height"], 7);
        assert_eq!(json["depth"], 2);
        assert_eq!(entry.state.name(), "confirmed");
    }
}

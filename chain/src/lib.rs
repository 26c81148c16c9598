//! Bitcoin proof of commitment for Stargate Node: a wallet that pays for anchor transactions,
//! a queue and batcher that commits CIDs in 40-byte OP_RETURN payloads, and a watcher that
//! follows the chain and keeps a proof for every anchored CID.
//!
//! Layout:
//! - [`AnchorService`] — the handle the node holds: [`AnchorService::anchor`] queues CIDs,
//!   [`AnchorService::proof`] returns a proof ([`stargate_protocol::anchor::AnchorProof`]),
//!   [`AnchorService::summary`] gives counts and `block_sync_lag_blocks`.
//! - One worker thread owns the backend connection (Electrum via electrum-client/bdk_electrum,
//!   or Bitcoin Core JSON-RPC via bitcoincore-rpc/bdk_bitcoind_rpc) and the BDK wallet; every
//!   blocking call happens there.
//! - All state (queue, batches, proofs' data, wallet change sets) is in the node's redb
//!   database through `stargate-storage`; a batch and the wallet's spend are recorded in one
//!   transaction before anything is broadcast.
//!
//! Non-goals: no mirroring of discovered anchors (they are handed out on a bounded channel),
//! no wallet features beyond paying for anchors.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod backend;
mod config;
mod connect;
mod discovery;
mod electrum;
mod error;
mod progress;
mod rpc;
mod service;
mod snapshot;
mod thread;
mod wallet;
mod worker;

pub use config::{BackendConfig, ChainConfig, FeePolicy, RpcAuth};
pub use discovery::DiscoveredAnchor;
pub use error::{ChainError, ChainStopError};
pub use progress::{SyncProgress, SyncStage};
pub use service::{AnchorService, AnchorStatus, ChainStatus, CidAnchorState};
pub use snapshot::WalletBalance;
pub use wallet::WALLET_KEY_FILE;

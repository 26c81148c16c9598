//! Bitcoin proof of commitment for Stargate Node: a wallet that pays for anchor transactions,
//! a queue and batcher that commits CIDs in 40-byte OP_RETURN payloads, and a watcher that
//! follows the chain and keeps a proof for every anchored CID.
//!
//! Layout:
//! - [`AnchorService`] — the handle the node holds: [`AnchorService::anchor`] queues CIDs,
//!   [`AnchorService::proof`] returns a proof ([`stargate_protocol::anchor::AnchorProof`]),
//!   [`AnchorService::summary`] gives counts, `block_sync_lag_blocks` and how far a running
//!   sync got, [`AnchorService::wallet_balance`] and [`AnchorService::wallet_address`] answer
//!   from the worker's last published state (`snapshot`), never by waiting for it;
//!   [`AnchorService::shutdown`] stops the worker within a time limit.
//! - One worker thread (`worker`, started by `thread`) owns the backend connection and the BDK
//!   wallet (`wallet`); every blocking call happens there. Backends (`backend` is the trait,
//!   `connect` picks one): Electrum through electrum-client with its own batched,
//!   subscription-driven sync (`electrum`: public servers charge every request and e-x holds
//!   small answers for a second, so requests and round trips are what it saves), or Bitcoin
//!   Core JSON-RPC through bitcoincore-rpc and bdk_bitcoind_rpc's block emitter (`rpc`).
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

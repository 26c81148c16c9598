//! The chain crate's errors: [`ChainError`] for what its operations return, [`ChainStopError`]
//! for a worker that did not stop cleanly.

use std::time::Duration;

use thiserror::Error;

/// Everything that can go wrong in the chain subsystem. Messages say what to do next.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The configuration cannot work.
    #[error("invalid chain configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The chain backend could not be reached or answered with an error.
    #[error("chain backend {backend} failed while {context}: {reason}")]
    Backend {
        /// `electrum` or `rpc`, with its URL.
        backend: String,
        /// What we were doing.
        context: &'static str,
        /// What it said.
        reason: String,
    },
    /// The backend follows another network than the one configured.
    #[error(
        "chain backend {backend} is on another network: its genesis block is {found}, {network}'s is {expected}; fix bitcoin_network or the backend URL"
    )]
    WrongNetwork {
        /// The backend.
        backend: String,
        /// The configured network.
        network: String,
        /// Its genesis hash.
        expected: String,
        /// The backend's genesis hash.
        found: String,
    },
    /// The wallet cannot pay for an anchor transaction.
    #[error(
        "not enough funds to anchor: the wallet has {available_sat} sat spendable, the transaction needs {needed_sat} sat; send bitcoin to {address}"
    )]
    InsufficientFunds {
        /// What the wallet can spend.
        available_sat: u64,
        /// What the transaction needs.
        needed_sat: u64,
        /// A wallet address to fund.
        address: String,
    },
    /// The wallet's key or state could not be read, created or used.
    #[error("wallet error: {reason}")]
    Wallet {
        /// What went wrong.
        reason: String,
    },
    /// The node's database failed.
    #[error(transparent)]
    Store(#[from] stargate_storage::StoreError),
    /// A CID that was never queued for anchoring.
    #[error("{cid} has not been anchored; run `stargate anchor {cid}` first")]
    NotAnchored {
        /// The CID.
        cid: String,
    },
    /// A CID whose anchor transaction is not confirmed yet.
    #[error("{cid} is {state}; its proof exists once its transaction is confirmed")]
    NotConfirmed {
        /// The CID.
        cid: String,
        /// `queued`, `broadcast` or `failed: …`.
        state: String,
    },
    /// A proof or payload could not be built.
    #[error(transparent)]
    Anchor(#[from] stargate_protocol::anchor::AnchorError),
    /// The chain service has stopped.
    #[error("the chain service has stopped (the node is shutting down or it crashed)")]
    Stopped,
}

/// Why the chain service did not stop cleanly; the daemon logs it and exits non-zero.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChainStopError {
    /// The worker thread panicked (earlier, or while stopping).
    #[error("the chain worker thread panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The worker was still busy when the time limit ran out (it is left behind).
    #[error("the chain worker did not stop within {}s", limit.as_secs_f64())]
    TimedOut {
        /// The limit that ran out.
        limit: Duration,
    },
}

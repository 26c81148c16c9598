//! The narrow interface the worker needs from a chain source, and the two implementations'
//! shared pieces. Every method blocks; the worker calls them on its own thread.

use std::time::{Duration, Instant};

use bdk_wallet::Wallet;
use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Transaction, TxMerkleNode, Txid};

use stargate_protocol::anchor::Network;

use crate::ChainError;
use crate::progress::SyncProgress;

/// How long a broadcast transaction may take to show up at the backend (bcoin answers
/// `sendrawtransaction` before it has validated the transaction).
pub(crate) const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
const ACCEPT_POLL: Duration = Duration::from_millis(200);

/// The best block as the backend sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tip {
    pub(crate) height: u32,
    pub(crate) hash: BlockHash,
}

/// What a proof needs from the block holding a transaction.
#[derive(Debug, Clone)]
pub(crate) struct ProofParts {
    pub(crate) header: Header,
    pub(crate) tx_index: u32,
    pub(crate) branch: Vec<TxMerkleNode>,
}

/// What a running sync reports.
pub(crate) trait SyncEvents {
    /// A block the sync downloaded (the RPC backend downloads each new block; Electrum none).
    fn block(&mut self, block: &Block, height: u32);
    /// How far it got.
    fn progress(&mut self, progress: SyncProgress);
}

/// A chain source: Electrum or Bitcoin Core RPC.
pub(crate) trait ChainBackend: Send {
    /// `electrum tcp://…` / `rpc http://…`, for messages.
    fn describe(&self) -> String;
    /// The backend's best block.
    fn tip(&mut self) -> Result<Tip, ChainError>;
    /// Brings the wallet up to the backend's tip (blocks, reorgs, mempool), starting no lower
    /// than `start_height` (the wallet's birthday), tells `events` how far it got, and returns
    /// the tip it synced to.
    fn sync_wallet(
        &mut self,
        wallet: &mut Wallet,
        start_height: u32,
        events: &mut dyn SyncEvents,
    ) -> Result<Tip, ChainError>;
    /// Hands a signed transaction to the network. Succeeds once the backend knows it, or
    /// when it already knew it.
    fn broadcast(&mut self, tx: &Transaction) -> Result<(), ChainError>;
    /// Fee estimate in sat/vB for confirmation within `target` blocks, if the backend has one.
    fn fee_estimate(&mut self, target: u16) -> Result<Option<f64>, ChainError>;
    /// Header, position and Merkle branch of `txid` in the best-chain block at `height`.
    fn proof_parts(&mut self, txid: Txid, height: u32) -> Result<ProofParts, ChainError>;
}

/// Turns a backend library's error into [`ChainError::Backend`], naming the backend (its
/// `describe`) and what it was doing.
pub(crate) fn backend_error<E: std::fmt::Display>(
    backend: String,
    context: &'static str,
) -> impl Fn(E) -> ChainError {
    move |e| ChainError::Backend {
        backend: backend.clone(),
        context,
        reason: e.to_string(),
    }
}

/// Checks that `found`, the backend's genesis block hash, is `network`'s.
///
/// # Errors
/// [`ChainError::WrongNetwork`] otherwise.
pub(crate) fn check_network(
    backend: &str,
    network: Network,
    found: BlockHash,
) -> Result<(), ChainError> {
    let expected = bitcoin::constants::genesis_block(network.to_bitcoin()).block_hash();
    if found != expected {
        return Err(ChainError::WrongNetwork {
            backend: backend.to_owned(),
            network: network.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        });
    }
    Ok(())
}

/// Converts a BTC-per-kvB estimate into sat/vB; `None` for "no estimate" (-1 and the like).
pub(crate) fn btc_per_kvb_to_sat_per_vb(btc_per_kvb: f64) -> Option<f64> {
    (btc_per_kvb.is_finite() && btc_per_kvb > 0.0).then(|| btc_per_kvb * 100_000_000.0 / 1000.0)
}

/// Whether a broadcast error only says the backend already has the transaction.
pub(crate) fn already_known(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "already in block chain",
        "already known",
        "already in the mempool",
        "txn-already",
        "already have transaction",
        "-27",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Polls `known` until it says the backend has the transaction, or gives up.
pub(crate) fn wait_until_accepted(
    backend: &str,
    txid: Txid,
    mut known: impl FnMut() -> Result<bool, ChainError>,
) -> Result<(), ChainError> {
    let deadline = Instant::now() + ACCEPT_TIMEOUT;
    loop {
        if known()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ChainError::Backend {
                backend: backend.to_owned(),
                context: "broadcasting an anchor transaction",
                reason: format!(
                    "transaction {txid} was sent but did not reach the mempool within {}s; the node rejected it (see its log)",
                    ACCEPT_TIMEOUT.as_secs()
                ),
            });
        }
        std::thread::sleep(ACCEPT_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_convert_and_minus_one_is_none() {
        assert_eq!(btc_per_kvb_to_sat_per_vb(-1.0), None);
        assert_eq!(btc_per_kvb_to_sat_per_vb(0.0), None);
        let rate = btc_per_kvb_to_sat_per_vb(0.00002).unwrap();
        assert!((rate - 2.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn already_known_errors_are_recognised() {
        assert!(already_known(
            "RPC error -27: transaction already in block chain"
        ));
        assert!(already_known("txn-already-in-mempool"));
        assert!(!already_known("bad-txns-inputs-missingorspent"));
    }
}

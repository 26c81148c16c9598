//! What the worker publishes after each step for the handle to answer from: the tip, the
//! wallet's balance and receiving address as of its last sync, how far a running sync has got
//! and the last error. Queries read it and never wait for the worker, whatever it is doing.

use bitcoin::Address;

use crate::backend::Tip;
use crate::progress::SyncProgress;

/// The wallet's balance in satoshis, as of the block it is synced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalletBalance {
    /// Confirmed and spendable.
    pub confirmed_sat: u64,
    /// Unconfirmed.
    pub pending_sat: u64,
    /// Coinbase outputs not yet mature.
    pub immature_sat: u64,
    /// Height of the block the wallet's state reflects.
    pub synced_height: u32,
    /// Set while a sync runs: the balance may still grow.
    pub syncing: Option<SyncProgress>,
}

/// The open wallet as of its last sync.
#[derive(Debug, Clone)]
pub(crate) struct WalletView {
    pub(crate) confirmed_sat: u64,
    pub(crate) pending_sat: u64,
    pub(crate) immature_sat: u64,
    /// The first receiving address that has not been paid yet.
    pub(crate) address: Address,
    pub(crate) synced_height: u32,
}

/// Everything the worker publishes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// The backend's tip when last seen.
    pub(crate) tip: Option<Tip>,
    /// `None` until the wallet is open.
    pub(crate) wallet: Option<WalletView>,
    pub(crate) syncing: Option<SyncProgress>,
    /// The worker's last error, cleared by its next good round.
    pub(crate) last_error: Option<String>,
}

impl Snapshot {
    /// The balance, when the wallet is open.
    pub(crate) fn balance(&self) -> Option<WalletBalance> {
        self.wallet.as_ref().map(|w| WalletBalance {
            confirmed_sat: w.confirmed_sat,
            pending_sat: w.pending_sat,
            immature_sat: w.immature_sat,
            synced_height: w.synced_height,
            syncing: self.syncing,
        })
    }
}

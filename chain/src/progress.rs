//! How far a running wallet sync has got, for the answers and the log lines given meanwhile.

use std::fmt;

/// What a running sync is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncStage {
    /// Connecting, or waiting for the backend's first answers.
    Waiting,
    /// Looking for the wallet's used addresses (Electrum).
    Addresses,
    /// Downloading the wallet's transactions (Electrum).
    Transactions,
    /// Checking where the transactions are confirmed (Electrum).
    Confirmations,
    /// Reading the blocks since the wallet's last sync (RPC).
    Blocks,
}

impl fmt::Display for SyncStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Waiting => "waiting for the backend",
            Self::Addresses => "scanning addresses",
            Self::Transactions => "fetching transactions",
            Self::Confirmations => "checking confirmations",
            Self::Blocks => "reading blocks",
        })
    }
}

/// How far a running sync has got: `done` of `total` items of its current stage (for
/// [`SyncStage::Blocks`], the height reached and the tip's height).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncProgress {
    /// The current stage.
    pub stage: SyncStage,
    /// Items done.
    pub done: u64,
    /// Items in all; `None` while unknown (the address scan ends at the first unused gap).
    pub total: Option<u64>,
}

impl fmt::Display for SyncProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.total {
            Some(total) => write!(f, "{} {} of {total}", self.stage, self.done),
            None if self.done > 0 => write!(f, "{} ({} so far)", self.stage, self.done),
            None => write!(f, "{}", self.stage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_a_sentence() {
        let known = SyncProgress {
            stage: SyncStage::Transactions,
            done: 200,
            total: Some(500),
        };
        assert_eq!(known.to_string(), "fetching transactions 200 of 500");
        let open = SyncProgress {
            stage: SyncStage::Addresses,
            done: 40,
            total: None,
        };
        assert_eq!(open.to_string(), "scanning addresses (40 so far)");
        let waiting = SyncProgress {
            stage: SyncStage::Waiting,
            done: 0,
            total: None,
        };
        assert_eq!(waiting.to_string(), "waiting for the backend");
    }
}

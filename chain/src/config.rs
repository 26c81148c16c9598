//! The chain service's configuration: the backend and how to reach it, fee policy, batching
//! and polling intervals, the wallet key's source.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use stargate_protocol::anchor::Network;

use crate::ChainError;

/// Where the chain data comes from.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendConfig {
    /// An Electrum server: `tcp://host:port` or `ssl://host:port`.
    Electrum {
        /// The server URL.
        url: String,
        /// Check the TLS certificate's name (turn off only for self-signed test servers).
        validate_domain: bool,
    },
    /// A Bitcoin Core-compatible JSON-RPC node.
    Rpc {
        /// `http://host:port`.
        url: String,
        /// How to authenticate.
        auth: RpcAuth,
    },
}

/// Bitcoin Core RPC credentials.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RpcAuth {
    /// Read `user:password` from Bitcoin Core's `.cookie` file at every connection.
    Cookie(PathBuf),
    /// A fixed user and password.
    UserPass {
        /// The RPC user.
        user: String,
        /// The RPC password (never logged).
        password: String,
    },
}

impl fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cookie(path) => f.debug_tuple("Cookie").field(path).finish(),
            Self::UserPass { user, .. } => f
                .debug_struct("UserPass")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl BackendConfig {
    /// A short name for messages: `electrum tcp://…` or `rpc http://…`.
    pub fn describe(&self) -> String {
        match self {
            Self::Electrum { url, .. } => format!("electrum {url}"),
            Self::Rpc { url, .. } => format!("rpc {url}"),
        }
    }
}

/// Fee rates in satoshis per virtual byte.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeePolicy {
    /// Never pay less than this (also the rate when the estimate is below it).
    pub floor: f64,
    /// Never pay more than this, estimate or bump.
    pub ceiling: f64,
    /// Used when the backend has no estimate (bcoin on regtest always answers -1).
    pub fallback: f64,
    /// Confirmation target, in blocks, asked of the estimator.
    pub target_blocks: u16,
}

impl Default for FeePolicy {
    fn default() -> Self {
        Self {
            floor: 1.0,
            ceiling: 50.0,
            fallback: 2.0,
            target_blocks: 6,
        }
    }
}

impl FeePolicy {
    /// The rate to use given the backend's estimate, within floor and ceiling.
    pub fn rate(&self, estimate: Option<f64>) -> f64 {
        estimate
            .filter(|r| r.is_finite() && *r > 0.0)
            .unwrap_or(self.fallback)
            .clamp(self.floor, self.ceiling)
    }
}

/// Everything the chain service needs to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChainConfig {
    /// The network; the backend must be on it.
    pub network: Network,
    /// The backend.
    pub backend: BackendConfig,
    /// Build a batch once the oldest queued CID has waited this long.
    pub batch_interval: Duration,
    /// Or as soon as this many CIDs wait.
    pub batch_max: usize,
    /// Fee rates.
    pub fees: FeePolicy,
    /// Bump the fee (RBF) of a transaction unconfirmed for this long.
    pub rbf_after: Duration,
    /// Hand an unconfirmed transaction to the backend again after this long.
    pub rebroadcast_after: Duration,
    /// How often to look for a new tip (RPC) or header notifications (Electrum).
    pub poll_interval: Duration,
    /// Scan new blocks for other instances' anchors and hand them to the channel (RPC only).
    pub scan_anchors: bool,
    /// Extended private key (xprv/tprv) of the wallet; `None` creates one in the data dir.
    pub wallet_key: Option<String>,
    /// Directory for the wallet key file (the node's data dir).
    pub data_dir: PathBuf,
}

impl ChainConfig {
    /// A configuration with the guide's defaults for everything but the backend.
    pub fn new(network: Network, backend: BackendConfig, data_dir: PathBuf) -> Self {
        Self {
            network,
            backend,
            batch_interval: Duration::from_secs(600),
            batch_max: 1000,
            fees: FeePolicy::default(),
            rbf_after: Duration::from_secs(3600),
            rebroadcast_after: Duration::from_secs(600),
            poll_interval: Duration::from_secs(10),
            scan_anchors: false,
            wallet_key: None,
            data_dir,
        }
    }

    /// Checks values that would make the service misbehave.
    ///
    /// # Errors
    /// [`ChainError::Config`] naming the bad value.
    pub fn validate(&self) -> Result<(), ChainError> {
        let bad = |reason: String| Err(ChainError::Config { reason });
        if self.batch_max == 0 || self.batch_max > stargate_protocol::anchor::MAX_BATCH_SIZE {
            return bad(format!(
                "anchor_batch_max must be between 1 and {}, not {}",
                stargate_protocol::anchor::MAX_BATCH_SIZE,
                self.batch_max
            ));
        }
        let f = &self.fees;
        if !(f.floor > 0.0 && f.floor <= f.ceiling && f.fallback > 0.0) {
            return bad(format!(
                "fee rates need 0 < floor ({}) <= ceiling ({}) and a positive fallback ({})",
                f.floor, f.ceiling, f.fallback
            ));
        }
        if self.scan_anchors && matches!(self.backend, BackendConfig::Electrum { .. }) {
            return bad("scanning blocks for anchors needs the RPC backend".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_rate_stays_within_bounds() {
        let fees = FeePolicy {
            floor: 2.0,
            ceiling: 10.0,
            fallback: 3.0,
            target_blocks: 6,
        };
        assert_eq!(fees.rate(None), 3.0);
        assert_eq!(fees.rate(Some(-1.0)), 3.0);
        assert_eq!(fees.rate(Some(1.0)), 2.0);
        assert_eq!(fees.rate(Some(50.0)), 10.0);
        assert_eq!(fees.rate(Some(4.5)), 4.5);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let auth = RpcAuth::UserPass {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}

//! The Bitcoin networks a proof can name, and their names on the command line and in JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::AnchorError;

/// The Bitcoin network an anchor lives on, named as in Stargate's configuration
/// (`bitcoin_network`; the guide's default is `mainnet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Bitcoin mainnet.
    #[default]
    Mainnet,
    /// Testnet3.
    Testnet,
    /// Testnet4.
    Testnet4,
    /// The default signet.
    Signet,
    /// A local regtest chain.
    Regtest,
}

impl Network {
    /// Every network, in the order the documentation names them.
    pub const ALL: [Self; 5] = [
        Self::Mainnet,
        Self::Testnet,
        Self::Testnet4,
        Self::Signet,
        Self::Regtest,
    ];

    /// The name used in configuration and proofs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mainnet => "mainnet",
            Self::Testnet => "testnet",
            Self::Testnet4 => "testnet4",
            Self::Signet => "signet",
            Self::Regtest => "regtest",
        }
    }

    /// The same network as rust-bitcoin names it.
    pub const fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Self::Mainnet => bitcoin::Network::Bitcoin,
            Self::Testnet => bitcoin::Network::Testnet,
            Self::Testnet4 => bitcoin::Network::Testnet4,
            Self::Signet => bitcoin::Network::Signet,
            Self::Regtest => bitcoin::Network::Regtest,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = AnchorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| AnchorError::UnknownNetwork { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for network in Network::ALL {
            assert_eq!(network.as_str().parse::<Network>(), Ok(network));
            let json = serde_json::to_string(&network).unwrap();
            assert_eq!(json, format!("\"{network}\""));
        }
        assert!(matches!(
            "bitcoin".parse::<Network>(),
            Err(AnchorError::UnknownNetwork { .. })
        ));
    }
}

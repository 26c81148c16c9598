//! The anchoring wallet: a BDK descriptor wallet (segwit v0, BIP84 paths) whose key lives in
//! the data dir (created on first use, mode 0600) or comes from the configuration, and whose
//! state is rebuilt from the change sets recorded in the node's database.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use bdk_wallet::chain::Merge as _;
use bdk_wallet::{ChangeSet, KeychainKind, Wallet};
use bitcoin::bip32::Xpriv;
use serde::{Deserialize, Serialize};
use stargate_protocol::anchor::Network;
use stargate_storage::Store;

use crate::ChainError;

/// Name of the key file inside the data dir.
pub const WALLET_KEY_FILE: &str = "wallet-key.json";

#[derive(Serialize, Deserialize)]
struct KeyFile {
    network: Network,
    xprv: String,
    /// Height of the backend's tip when the key was made: no transaction of this wallet can be
    /// in an earlier block, so the RPC backend starts scanning there.
    birthday_height: Option<u32>,
}

/// The wallet's key and where its history starts.
pub(crate) struct WalletKey {
    xprv: Xpriv,
    pub(crate) birthday_height: u32,
}

impl WalletKey {
    /// The key from `configured` (an xprv/tprv), else from the key file, else a new one written
    /// to the key file with the height `tip` gives as its birthday (asked only then: it may
    /// have to reach the backend).
    pub(crate) fn load_or_create(
        network: Network,
        configured: Option<&str>,
        data_dir: &Path,
        tip: impl FnOnce() -> Option<u32>,
    ) -> Result<Self, ChainError> {
        let bad = |reason: String| ChainError::Wallet { reason };
        if let Some(text) = configured {
            let xprv = Xpriv::from_str(text.trim()).map_err(|e| {
                bad(format!(
                    "the configured wallet key is not an xprv/tprv: {e}"
                ))
            })?;
            check_network(&xprv, network)?;
            // An imported key may have history anywhere.
            return Ok(Self {
                xprv,
                birthday_height: 0,
            });
        }
        let path = data_dir.join(WALLET_KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
                    bad(format!("{} is not a wallet key file: {e}", path.display()))
                })?;
                if file.network != network {
                    return Err(bad(format!(
                        "{} holds a {} key but bitcoin_network is {network}; use another data dir",
                        path.display(),
                        file.network
                    )));
                }
                let xprv = Xpriv::from_str(&file.xprv)
                    .map_err(|e| bad(format!("{} holds no valid key: {e}", path.display())))?;
                Ok(Self {
                    xprv,
                    birthday_height: file.birthday_height.unwrap_or(0),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let seed: [u8; 32] = rand::random();
                let xprv = Xpriv::new_master(network.to_bitcoin(), &seed)
                    .map_err(|e| bad(format!("cannot derive a wallet key: {e}")))?;
                let birthday_height = tip().map(|t| t.saturating_sub(1));
                write_key_file(
                    &path,
                    &KeyFile {
                        network,
                        xprv: xprv.to_string(),
                        birthday_height,
                    },
                )?;
                tracing::info!(path = %path.display(), "created a new anchoring wallet key");
                Ok(Self {
                    xprv,
                    birthday_height: birthday_height.unwrap_or(0),
                })
            }
            Err(e) => Err(bad(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// The master key, for signing.
    pub(crate) fn xprv(&self) -> &Xpriv {
        &self.xprv
    }

    fn descriptors(&self, network: Network) -> (String, String) {
        let coin = u32::from(network != Network::Mainnet);
        let xprv = &self.xprv;
        (
            format!("wpkh({xprv}/84'/{coin}'/0'/0/*)"),
            format!("wpkh({xprv}/84'/{coin}'/0'/1/*)"),
        )
    }
}

fn check_network(xprv: &Xpriv, network: Network) -> Result<(), ChainError> {
    if xprv.network != network.to_bitcoin().into() {
        return Err(ChainError::Wallet {
            reason: format!("the configured wallet key is for another network than {network}"),
        });
    }
    Ok(())
}

fn write_key_file(path: &PathBuf, file: &KeyFile) -> Result<(), ChainError> {
    let bad = |e: std::io::Error| ChainError::Wallet {
        reason: format!("cannot write the wallet key to {}: {e}", path.display()),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bad)?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(bad)?;
    let json = serde_json::to_vec_pretty(file).unwrap_or_default();
    f.write_all(&json).map_err(bad)?;
    f.sync_all().map_err(bad)
}

/// Builds the wallet from the change sets in the store (or creates it and records its first).
pub(crate) fn open_wallet(
    store: &Store,
    key: &WalletKey,
    network: Network,
) -> Result<Wallet, ChainError> {
    let bad = |reason: String| ChainError::Wallet { reason };
    let (external, internal) = key.descriptors(network);
    let mut merged = ChangeSet::default();
    for bytes in store.wallet_changesets()? {
        let set: ChangeSet = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("a recorded wallet change set does not decode: {e}")))?;
        merged.merge(set);
    }
    if merged.is_empty() {
        let mut wallet = Wallet::create(external, internal)
            .network(network.to_bitcoin())
            .create_wallet_no_persist()
            .map_err(|e| bad(format!("cannot create the wallet: {e}")))?;
        if let Some(bytes) = take_changes(&mut wallet) {
            store.wallet_append_changeset(&bytes)?;
        }
        return Ok(wallet);
    }
    Wallet::load()
        .descriptor(KeychainKind::External, Some(external))
        .descriptor(KeychainKind::Internal, Some(internal))
        .check_network(network.to_bitcoin())
        .load_wallet_no_persist(merged)
        .map_err(|e| {
            bad(format!(
                "the wallet recorded in the database does not match its key or network: {e}"
            ))
        })?
        .ok_or_else(|| bad("the recorded wallet state is empty".to_owned()))
}

/// The wallet's staged changes, serialised for the store; `None` when nothing changed.
pub(crate) fn take_changes(wallet: &mut Wallet) -> Option<Vec<u8>> {
    let staged = wallet.take_staged()?;
    if staged.is_empty() {
        return None;
    }
    Some(serde_json::to_vec(&staged).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = WalletKey::load_or_create(Network::Regtest, None, dir.path(), || Some(10)).unwrap();
        assert_eq!(a.birthday_height, 9);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(WALLET_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = WalletKey::load_or_create(Network::Regtest, None, dir.path(), || {
            unreachable!("an existing key file needs no tip")
        })
        .unwrap();
        assert_eq!(a.xprv, b.xprv);
        assert_eq!(b.birthday_height, 9);
        assert!(WalletKey::load_or_create(Network::Mainnet, None, dir.path(), || None).is_err());
    }

    #[test]
    fn wallet_survives_reopen_with_the_same_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), stargate_storage::StoreOptions::default()).unwrap();
        let key = WalletKey::load_or_create(Network::Regtest, None, dir.path(), || None).unwrap();
        let first = {
            let mut wallet = open_wallet(&store, &key, Network::Regtest).unwrap();
            let address = wallet.reveal_next_address(KeychainKind::External).address;
            store
                .wallet_append_changeset(&take_changes(&mut wallet).unwrap())
                .unwrap();
            address
        };
        let mut wallet = open_wallet(&store, &key, Network::Regtest).unwrap();
        assert_eq!(
            wallet.peek_address(KeychainKind::External, 0).address,
            first
        );
        assert_eq!(wallet.reveal_next_address(KeychainKind::External).index, 1);
        assert!(first.to_string().starts_with("bcrt1q"));
    }

    #[test]
    fn configured_keys_must_match_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let xprv = Xpriv::new_master(bitcoin::Network::Bitcoin, &[7; 32]).unwrap();
        assert!(
            WalletKey::load_or_create(
                Network::Regtest,
                Some(&xprv.to_string()),
                dir.path(),
                || None
            )
            .is_err()
        );
        assert!(
            WalletKey::load_or_create(
                Network::Mainnet,
                Some(&xprv.to_string()),
                dir.path(),
                || None
            )
            .is_ok()
        );
        assert!(
            WalletKey::load_or_create(Network::Mainnet, Some("nope"), dir.path(), || None).is_err()
        );
    }
}

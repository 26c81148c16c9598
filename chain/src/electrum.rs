//! The Electrum backend: electrum-client over TCP or TLS, wallet sync through bdk_electrum.

use std::time::Duration;

use bdk_electrum::BdkElectrumClient;
use bdk_electrum::electrum_client::{self, ElectrumApi};
use bdk_wallet::Wallet;
use bitcoin::hashes::Hash as _;
use bitcoin::{Block, BlockHash, Transaction, TxMerkleNode, Txid};

use crate::ChainError;
use crate::backend::{
    ChainBackend, ProofParts, Tip, already_known, btc_per_kvb_to_sat_per_vb, wait_until_accepted,
};

const TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GAP: usize = 20;
const BATCH_SIZE: usize = 10;

pub(crate) struct ElectrumBackend {
    url: String,
    client: BdkElectrumClient<electrum_client::Client>,
    scanned: bool,
}

impl ElectrumBackend {
    pub(crate) fn connect(url: &str, validate_domain: bool) -> Result<Self, ChainError> {
        let config = electrum_client::ConfigBuilder::new()
            .timeout(Some(TIMEOUT))
            .retry(0)
            .validate_domain(validate_domain)
            .build();
        let client =
            electrum_client::Client::from_config(url, config).map_err(|e| ChainError::Backend {
                backend: format!("electrum {url}"),
                context: "connecting",
                reason: e.to_string(),
            })?;
        Ok(Self {
            url: url.to_owned(),
            client: BdkElectrumClient::new(client),
            scanned: false,
        })
    }

    fn err(&self, context: &'static str) -> impl Fn(electrum_client::Error) -> ChainError + '_ {
        move |e| ChainError::Backend {
            backend: self.describe(),
            context,
            reason: e.to_string(),
        }
    }
}

impl ChainBackend for ElectrumBackend {
    fn describe(&self) -> String {
        format!("electrum {}", self.url)
    }

    fn genesis_hash(&mut self) -> Result<BlockHash, ChainError> {
        let header = self
            .client
            .inner
            .block_header(0)
            .map_err(self.err("reading the genesis block"))?;
        Ok(header.block_hash())
    }

    fn tip(&mut self) -> Result<Tip, ChainError> {
        // Subscribing answers with the current tip; later notifications queue up behind it.
        let mut tip = self
            .client
            .inner
            .block_headers_subscribe()
            .map_err(self.err("subscribing to headers"))?;
        while let Some(newer) = self
            .client
            .inner
            .block_headers_pop()
            .map_err(self.err("reading header notifications"))?
        {
            if newer.height >= tip.height {
                tip = newer;
            }
        }
        Ok(Tip {
            height: u32::try_from(tip.height).unwrap_or(u32::MAX),
            hash: tip.header.block_hash(),
        })
    }

    fn sync_wallet(
        &mut self,
        wallet: &mut Wallet,
        _start_height: u32,
        _on_block: &mut dyn FnMut(&Block, u32),
    ) -> Result<(), ChainError> {
        if self.scanned {
            let request = wallet.start_sync_with_revealed_spks();
            let update = self
                .client
                .sync(request, BATCH_SIZE, true)
                .map_err(self.err("syncing the wallet"))?;
            wallet
                .apply_update(update)
                .map_err(|e| ChainError::Wallet {
                    reason: format!("applying an Electrum update: {e}"),
                })?;
        } else {
            let request = wallet.start_full_scan();
            let update = self
                .client
                .full_scan(request, STOP_GAP, BATCH_SIZE, true)
                .map_err(self.err("scanning the wallet"))?;
            wallet
                .apply_update(update)
                .map_err(|e| ChainError::Wallet {
                    reason: format!("applying an Electrum update: {e}"),
                })?;
            self.scanned = true;
        }
        Ok(())
    }

    fn broadcast(&mut self, tx: &Transaction) -> Result<(), ChainError> {
        let txid = tx.compute_txid();
        if let Err(e) = self.client.transaction_broadcast(tx) {
            let message = e.to_string();
            if !already_known(&message) {
                return Err(self.err("broadcasting an anchor transaction")(e));
            }
        }
        let backend = self.describe();
        let inner = &self.client.inner;
        wait_until_accepted(&backend, txid, || {
            Ok(inner.transaction_get_raw(&txid).is_ok())
        })
    }

    fn fee_estimate(&mut self, target: u16) -> Result<Option<f64>, ChainError> {
        let btc_per_kb = self
            .client
            .inner
            .estimate_fee(usize::from(target), None)
            .map_err(self.err("estimating the fee"))?;
        Ok(btc_per_kvb_to_sat_per_vb(btc_per_kb))
    }

    fn proof_parts(&mut self, txid: Txid, height: u32) -> Result<ProofParts, ChainError> {
        let merkle = self
            .client
            .inner
            .transaction_get_merkle(&txid, height as usize)
            .map_err(self.err("fetching a Merkle branch"))?;
        let header = self
            .client
            .inner
            .block_header(height as usize)
            .map_err(self.err("fetching a block header"))?;
        Ok(ProofParts {
            header,
            tx_index: u32::try_from(merkle.pos).unwrap_or(u32::MAX),
            // Electrum sends hashes in display (reversed) byte order.
            branch: merkle
                .merkle
                .into_iter()
                .map(|mut h| {
                    h.reverse();
                    TxMerkleNode::from_byte_array(h)
                })
                .collect(),
        })
    }
}

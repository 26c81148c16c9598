//! The Electrum backend: electrum-client over TCP or TLS. The tip follows the server's header
//! notifications and the wallet syncs through [`ScriptWatch`]. Requests that do not depend on
//! each other go out in one batch: e-x holds back a small answer for up to a second, so each
//! round trip counts.

use std::time::Duration;

use bdk_wallet::Wallet;
use bitcoin::block::Header;
use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::hashes::Hash as _;
use bitcoin::{BlockHash, Transaction, TxMerkleNode, Txid};
use electrum_client::{
    Batch, Client, ElectrumApi, GetMerkleRes, HeaderNotification, RawHeaderNotification,
};
use serde_json::Value;

use crate::ChainError;
use crate::backend::{
    ChainBackend, ProofParts, SyncEvents, Tip, already_known, btc_per_kvb_to_sat_per_vb,
    wait_until_accepted,
};
use crate::electrum_sync::ScriptWatch;

const TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) struct ElectrumBackend {
    url: String,
    client: Client,
    genesis: BlockHash,
    /// The tip as of the last header notification.
    tip: Tip,
    /// The tip was read when connecting, moments ago: the first round need not ping.
    fresh_tip: bool,
    scripts: ScriptWatch,
}

fn tip_of(notification: &HeaderNotification) -> Tip {
    Tip {
        height: u32::try_from(notification.height).unwrap_or(u32::MAX),
        hash: notification.header.block_hash(),
    }
}

/// The answers to `batch`, asked in one round trip.
fn answers<const N: usize>(
    client: &Client,
    batch: &Batch,
) -> Result<[Value; N], electrum_client::Error> {
    let got = client.batch_call(batch)?;
    let n = got.len();
    got.try_into().map_err(|_| {
        electrum_client::Error::Message(format!("{n} answers to a batch of {N} requests"))
    })
}

fn header(answer: Value) -> Result<Header, electrum_client::Error> {
    let hex = answer
        .as_str()
        .ok_or_else(|| electrum_client::Error::InvalidResponse(answer.clone()))?;
    deserialize_hex(hex).map_err(|e| electrum_client::Error::Message(e.to_string()))
}

impl ElectrumBackend {
    /// Connects, reads the genesis block and subscribes to new headers.
    pub(crate) fn connect(url: &str, validate_domain: bool) -> Result<Self, ChainError> {
        let fail = |context: &'static str| {
            move |e: electrum_client::Error| ChainError::Backend {
                backend: format!("electrum {url}"),
                context,
                reason: e.to_string(),
            }
        };
        let config = electrum_client::ConfigBuilder::new()
            .timeout(Some(TIMEOUT))
            .retry(0)
            .validate_domain(validate_domain)
            .build();
        let client = Client::from_config(url, config).map_err(fail("connecting"))?;
        let mut batch = Batch::default();
        batch.block_header(0);
        batch.raw("blockchain.headers.subscribe".to_owned(), Vec::new());
        let read =
            |client: &Client| -> Result<(Header, HeaderNotification), electrum_client::Error> {
                let [genesis, tip] = answers(client, &batch)?;
                let tip: RawHeaderNotification = serde_json::from_value(tip)?;
                Ok((header(genesis)?, tip.try_into()?))
            };
        let (genesis, tip) =
            read(&client).map_err(fail("reading the genesis block and the tip"))?;
        Ok(Self {
            url: url.to_owned(),
            client,
            genesis: genesis.block_hash(),
            tip: tip_of(&tip),
            fresh_tip: true,
            scripts: ScriptWatch::default(),
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
        Ok(self.genesis)
    }

    fn tip(&mut self) -> Result<Tip, ChainError> {
        if std::mem::take(&mut self.fresh_tip) {
            return Ok(self.tip);
        }
        // A ping reads the notifications the server pushed since the last request; the last
        // header is the tip (also after a reorg to a shorter chain).
        self.client
            .ping()
            .map_err(self.err("reading header notifications"))?;
        while let Some(newer) = self
            .client
            .block_headers_pop()
            .map_err(self.err("reading header notifications"))?
        {
            self.tip = tip_of(&newer);
        }
        Ok(self.tip)
    }

    fn sync_wallet(
        &mut self,
        wallet: &mut Wallet,
        _start_height: u32,
        tip: Tip,
        events: &mut dyn SyncEvents,
    ) -> Result<(), ChainError> {
        let backend = self.describe();
        self.scripts
            .sync(&backend, &self.client, wallet, tip, events)
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
        let client = &self.client;
        wait_until_accepted(&backend, txid, || {
            Ok(client.transaction_get_raw(&txid).is_ok())
        })
    }

    fn fee_estimate(&mut self, target: u16) -> Result<Option<f64>, ChainError> {
        let btc_per_kb = self
            .client
            .estimate_fee(usize::from(target), None)
            .map_err(self.err("estimating the fee"))?;
        Ok(btc_per_kvb_to_sat_per_vb(btc_per_kb))
    }

    fn proof_parts(&mut self, txid: Txid, height: u32) -> Result<ProofParts, ChainError> {
        let mut batch = Batch::default();
        batch.transaction_get_merkle(&(txid, height as usize));
        batch.block_header(height);
        let read = |client: &Client| -> Result<(GetMerkleRes, Header), electrum_client::Error> {
            let [merkle, block] = answers(client, &batch)?;
            Ok((serde_json::from_value(merkle)?, header(block)?))
        };
        let (merkle, header) = read(&self.client)
            .map_err(self.err("fetching a Merkle branch and its block header"))?;
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

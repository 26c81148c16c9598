//! The Electrum backend: electrum-client over TCP or TLS, one [`Session`] per connection.

use std::time::Duration;

use bdk_wallet::Wallet;
use bitcoin::{Transaction, Txid};
use electrum_client::{Client, ElectrumApi};
use stargate_protocol::anchor::Network;

use super::requests::{Answer, Request, proof_parts};
use super::session::Session;
use crate::ChainError;
use crate::backend::{
    ChainBackend, ProofParts, SyncEvents, Tip, already_known, backend_error,
    btc_per_kvb_to_sat_per_vb, wait_until_accepted,
};

const TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) struct ElectrumBackend {
    url: String,
    client: Client,
    session: Session,
    /// The last fee estimate: the tip it was asked at, the target, the answer. Estimates
    /// change with blocks, and a round trip costs a second.
    fee: Option<(Option<Tip>, u16, Option<f64>)>,
}

impl ElectrumBackend {
    /// Connects; the network is checked with the first request.
    pub(crate) fn connect(
        url: &str,
        validate_domain: bool,
        network: Network,
    ) -> Result<Self, ChainError> {
        let config = electrum_client::ConfigBuilder::new()
            .timeout(Some(TIMEOUT))
            .retry(0)
            .validate_domain(validate_domain)
            .build();
        let backend = format!("electrum {url}");
        let client = Client::from_config(url, config).map_err(|e| ChainError::Backend {
            backend: backend.clone(),
            context: "connecting",
            reason: e.to_string(),
        })?;
        Ok(Self {
            url: url.to_owned(),
            client,
            session: Session::new(backend, network),
            fee: None,
        })
    }

    fn err(&self, context: &'static str) -> impl Fn(electrum_client::Error) -> ChainError + use<> {
        backend_error(self.describe(), context)
    }
}

impl ChainBackend for ElectrumBackend {
    fn describe(&self) -> String {
        format!("electrum {}", self.url)
    }

    fn tip(&mut self) -> Result<Tip, ChainError> {
        self.session.tip(&self.client)
    }

    fn sync_wallet(
        &mut self,
        wallet: &mut Wallet,
        _start_height: u32,
        events: &mut dyn SyncEvents,
    ) -> Result<Tip, ChainError> {
        self.session.sync(&self.client, wallet, events)
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
        let tip = self.session.last_tip();
        if let Some((at, asked, rate)) = self.fee
            && at == tip
            && asked == target
        {
            return Ok(rate);
        }
        let btc_per_kb = self
            .client
            .estimate_fee(usize::from(target), None)
            .map_err(self.err("estimating the fee"))?;
        let rate = btc_per_kvb_to_sat_per_vb(btc_per_kb);
        self.fee = Some((tip, target, rate));
        Ok(rate)
    }

    fn proof_parts(&mut self, txid: Txid, height: u32) -> Result<ProofParts, ChainError> {
        if let Some(parts) = self.session.proof(txid, height) {
            return Ok(parts);
        }
        // Both in one round trip.
        let requests = [Request::Proof(txid, height), Request::Headers(height, 1)];
        let answers = self
            .session
            .call(&self.client, &requests)
            .map_err(self.err("fetching a Merkle branch and its block header"))?;
        let (mut merkle, mut header) = (None, None);
        for answer in answers {
            match answer {
                Answer::Proof(proof) => merkle = Some(proof),
                Answer::Headers(_, headers) => header = headers.first().copied(),
                _ => {}
            }
        }
        match (merkle, header) {
            (Some(merkle), Some(header)) => Ok(proof_parts(merkle, header)),
            _ => Err(ChainError::Backend {
                backend: self.describe(),
                context: "fetching a Merkle branch and its block header",
                reason: format!("no header at height {height}"),
            }),
        }
    }
}

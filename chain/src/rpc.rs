//! The Bitcoin Core JSON-RPC backend (bitcoincore-rpc), wallet sync through bdk_bitcoind_rpc's
//! block emitter.
//!
//! bcoin's Core-style RPC differs in ways this module smooths over: `getblock` (verbosity 1)
//! lacks `nTx` and `nonce`, gives `bits` as a number, reports positive confirmations for blocks
//! that left the best chain and answers an unknown block with a generic error code; fee
//! estimates come back as `{"fee": -1}`; and `sendrawtransaction` returns before the
//! transaction is validated, so acceptance is checked by polling the mempool.

use bdk_bitcoind_rpc::Emitter;
use bdk_bitcoind_rpc::bitcoincore_rpc::{self, Auth, RpcApi, jsonrpc};
use bdk_wallet::Wallet;
use bitcoin::{Transaction, Txid};
use serde_json::{Value, json};
use stargate_protocol::anchor::{Network, block_tx_branch};

use crate::ChainError;
use crate::backend::{
    ChainBackend, ProofParts, SyncEvents, Tip, already_known, backend_error,
    btc_per_kvb_to_sat_per_vb, check_network, wait_until_accepted,
};
use crate::config::RpcAuth;
use crate::progress::{SyncProgress, SyncStage};

/// bitcoincore-rpc's client with bcoin's `getblock` answers made Core-shaped.
pub(crate) struct CompatClient {
    inner: bitcoincore_rpc::Client,
}

impl RpcApi for CompatClient {
    fn call<T: for<'a> serde::de::Deserialize<'a>>(
        &self,
        cmd: &str,
        args: &[Value],
    ) -> bitcoincore_rpc::Result<T> {
        let value: Value = match self.inner.call(cmd, args) {
            Ok(value) => value,
            Err(bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(e)))
                if cmd == "getblock" && e.message.to_ascii_lowercase().contains("not found") =>
            {
                // Core's RPC_INVALID_ADDRESS_OR_KEY, which the emitter treats as "not found".
                return Err(bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(
                    jsonrpc::error::RpcError {
                        code: -5,
                        message: e.message,
                        data: None,
                    },
                )));
            }
            Err(e) => return Err(e),
        };
        let value = if cmd == "getblock" && args.get(1) == Some(&json!(1)) {
            self.core_shaped_block(value)?
        } else {
            value
        };
        serde_json::from_value(value).map_err(bitcoincore_rpc::Error::Json)
    }
}

impl CompatClient {
    fn core_shaped_block(&self, mut block: Value) -> bitcoincore_rpc::Result<Value> {
        let Some(obj) = block.as_object_mut() else {
            return Ok(block);
        };
        if !obj.contains_key("nTx") {
            let n = obj.get("tx").and_then(Value::as_array).map_or(0, Vec::len);
            obj.insert("nTx".to_owned(), json!(n));
        }
        obj.entry("nonce").or_insert(json!(0));
        if let Some(bits) = obj.get("bits").and_then(Value::as_u64) {
            obj.insert("bits".to_owned(), json!(format!("{bits:08x}")));
        }
        // A block off the best chain has negative confirmations in Core; bcoin counts from
        // its height regardless.
        if let (Some(height), Some(hash)) = (
            obj.get("height").and_then(Value::as_u64),
            obj.get("hash").and_then(Value::as_str).map(str::to_owned),
        ) {
            let best: Value = self.inner.call("getblockhash", &[json!(height)])?;
            if best.as_str() != Some(hash.as_str()) {
                obj.insert("confirmations".to_owned(), json!(-1));
            }
        }
        Ok(block)
    }
}

pub(crate) struct RpcBackend {
    url: String,
    client: CompatClient,
}

impl RpcBackend {
    /// Connects and checks that the node follows `network`.
    pub(crate) fn connect(url: &str, auth: &RpcAuth, network: Network) -> Result<Self, ChainError> {
        let auth = match auth {
            RpcAuth::Cookie(path) => Auth::CookieFile(path.clone()),
            RpcAuth::UserPass { user, password } => Auth::UserPass(user.clone(), password.clone()),
        };
        let inner = bitcoincore_rpc::Client::new(url, auth).map_err(|e| ChainError::Backend {
            backend: format!("rpc {url}"),
            context: "connecting",
            reason: e.to_string(),
        })?;
        let backend = Self {
            url: url.to_owned(),
            client: CompatClient { inner },
        };
        let genesis = backend
            .client
            .get_block_hash(0)
            .map_err(backend.err("reading the genesis block"))?;
        check_network(&backend.describe(), network, genesis)?;
        Ok(backend)
    }

    fn err(&self, context: &'static str) -> impl Fn(bitcoincore_rpc::Error) -> ChainError + use<> {
        backend_error(self.describe(), context)
    }
}

impl ChainBackend for RpcBackend {
    fn describe(&self) -> String {
        format!("rpc {}", self.url)
    }

    fn tip(&mut self) -> Result<Tip, ChainError> {
        let height = self
            .client
            .get_block_count()
            .map_err(self.err("reading the tip"))?;
        let hash = self
            .client
            .get_block_hash(height)
            .map_err(self.err("reading the tip"))?;
        Ok(Tip {
            height: u32::try_from(height).unwrap_or(u32::MAX),
            hash,
        })
    }

    fn sync_wallet(
        &mut self,
        wallet: &mut Wallet,
        start_height: u32,
        events: &mut dyn SyncEvents,
    ) -> Result<Tip, ChainError> {
        let tip = self.tip()?;
        let unconfirmed: Vec<_> = wallet
            .transactions()
            .filter(|t| !t.chain_position.is_confirmed())
            .map(|t| t.tx_node.tx.clone())
            .collect();
        let mut emitter = Emitter::new(
            &self.client,
            wallet.latest_checkpoint(),
            start_height,
            unconfirmed,
        );
        while let Some(event) = emitter.next_block().map_err(|e| ChainError::Backend {
            backend: format!("rpc {}", self.url),
            context: "fetching blocks",
            reason: e.to_string(),
        })? {
            let height = event.block_height();
            wallet
                .apply_block_connected_to(&event.block, height, event.connected_to())
                .map_err(|e| ChainError::Wallet {
                    reason: format!("applying block {height}: {e}"),
                })?;
            events.block(&event.block, height);
            events.progress(SyncProgress {
                stage: SyncStage::Blocks,
                done: u64::from(height),
                total: Some(u64::from(tip.height.max(height))),
            });
        }
        let mempool = emitter.mempool().map_err(|e| ChainError::Backend {
            backend: format!("rpc {}", self.url),
            context: "reading the mempool",
            reason: e.to_string(),
        })?;
        wallet.apply_unconfirmed_txs(mempool.update);
        wallet.apply_evicted_txs(mempool.evicted);
        Ok(tip)
    }

    fn broadcast(&mut self, tx: &Transaction) -> Result<(), ChainError> {
        let txid = tx.compute_txid();
        if let Err(e) = self.client.send_raw_transaction(tx)
            && !already_known(&e.to_string())
        {
            return Err(self.err("broadcasting an anchor transaction")(e));
        }
        let backend = self.describe();
        let client = &self.client;
        wait_until_accepted(&backend, txid, || {
            Ok(client
                .call::<Value>("getmempoolentry", &[json!(txid)])
                .is_ok()
                || client.get_raw_transaction(&txid, None).is_ok())
        })
    }

    fn fee_estimate(&mut self, target: u16) -> Result<Option<f64>, ChainError> {
        let answer: Value = self
            .client
            .call("estimatesmartfee", &[json!(target)])
            .map_err(self.err("estimating the fee"))?;
        // Core answers {"feerate": BTC/kvB} or {"errors": [...]}; bcoin {"fee": -1 | BTC/kvB}.
        Ok(answer
            .get("feerate")
            .or_else(|| answer.get("fee"))
            .and_then(Value::as_f64)
            .and_then(btc_per_kvb_to_sat_per_vb))
    }

    fn proof_parts(&mut self, txid: Txid, height: u32) -> Result<ProofParts, ChainError> {
        let hash = self
            .client
            .get_block_hash(u64::from(height))
            .map_err(self.err("fetching a block hash"))?;
        // Raw block decoded here: bcoin has no getblock verbosity 2.
        let block = self
            .client
            .get_block(&hash)
            .map_err(self.err("fetching a block"))?;
        let (tx_index, branch) =
            block_tx_branch(&block, txid).ok_or_else(|| ChainError::Backend {
                backend: self.describe(),
                context: "fetching a Merkle branch",
                reason: format!("block {hash} at height {height} does not hold {txid}"),
            })?;
        Ok(ProofParts {
            header: block.header,
            tx_index,
            branch,
        })
    }
}

//! A Bitcoin regtest stack for chain tests: a bcoin full node (Bitcoin Core-style JSON-RPC) and
//! e-x (ElectrumX) pointed at it, each on free loopback ports in its own temporary directory.
//!
//! Both come from `scripts/install-regtest.sh`; their locations can be overridden with
//! `STARGATE_BCOIN_LAUNCHER` (the `launcher.js` that starts bcoin) and `STARGATE_ELECTRUMX`
//! (the `electrumx_server` executable). A missing component is an error, never a skipped test.
//!
//! The stack must run inside a loopback-only network namespace
//! (`unshare -n sh -c 'ip link set lo up && ...'`); [`Regtest::start`] refuses to run anywhere else.
//! Every wait has a timeout, and both processes are killed when the [`Regtest`] is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::paths::{INSTALL_HINT, repo_root};
use crate::wait::free_loopback_port;

/// Blocks after which bcoin's regtest has activated segwit (three 144-block BIP9 windows).
pub const SEGWIT_HEIGHT: u64 = 432;
/// Blocks a coinbase output must wait before it can be spent.
pub const COINBASE_MATURITY: u64 = 100;
/// P2WSH of `OP_TRUE` on regtest: no test wallet watches it, so blocks mined to it fund nobody.
pub const BURN_ADDRESS: &str = "bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85";

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const SYNC_TIMEOUT: Duration = Duration::from_secs(90);
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Which of the stack's services a node's chain service talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainSource {
    /// e-x, over plain TCP.
    Electrum,
    /// bcoin's JSON-RPC, with a cookie file.
    Rpc,
}

/// An anchoring wallet made the way a node makes one.
#[derive(Debug, Clone)]
pub struct NewWallet {
    /// Its key file as the chain crate wrote it, with the tip at its creation as its birthday.
    pub key_file: Vec<u8>,
    /// Its extended private key.
    pub xprv: String,
    /// Its first receiving address.
    pub address: bitcoin::Address,
}

/// A running regtest stack. Dropping it kills both processes and deletes their data.
#[derive(Debug)]
pub struct Regtest {
    dir: tempfile::TempDir,
    api_key: String,
    rpc_port: u16,
    electrum_port: u16,
    electrum_ssl_port: u16,
    electrum_admin_port: u16,
    bcoin: Option<Child>,
    electrumx: Option<Child>,
    http: reqwest::Client,
}

impl Regtest {
    /// Starts bcoin and e-x on fresh data directories and waits until both answer.
    ///
    /// # Errors
    /// When not inside a loopback-only namespace, when a component is not installed, or when a
    /// process does not come up within its timeout (the error then holds the end of its log).
    pub async fn start() -> Result<Self> {
        ensure_loopback_only()?;
        let dir = tempfile::Builder::new()
            .prefix("stargate-regtest-")
            .tempdir()
            .context("creating the regtest temp dir")?;
        make_tls_cert(dir.path()).await?;
        let mut regtest = Self {
            api_key: format!("key{}", rand::random::<u64>()),
            rpc_port: free_loopback_port()?,
            electrum_port: free_loopback_port()?,
            electrum_ssl_port: free_loopback_port()?,
            electrum_admin_port: free_loopback_port()?,
            bcoin: None,
            electrumx: None,
            http: reqwest::Client::builder()
                .timeout(RPC_TIMEOUT)
                .no_proxy()
                .build()
                .context("building the HTTP client")?,
            dir,
        };
        regtest.start_bcoin().await?;
        regtest.start_electrumx().await?;
        Ok(regtest)
    }

    /// Starts the stack and mines past segwit activation and coinbase maturity, so that the
    /// chain is ready for segwit spends. Blocks are mined to [`BURN_ADDRESS`].
    ///
    /// # Errors
    /// As [`Regtest::start`], or when mining fails.
    pub async fn start_with_segwit() -> Result<Self> {
        let regtest = Self::start().await?;
        regtest.mine_blocks(SEGWIT_HEIGHT + 1, BURN_ADDRESS).await?;
        regtest.wait_for_electrum_sync().await?;
        Ok(regtest)
    }

    /// JSON-RPC URL of the node, e.g. `http://127.0.0.1:18443`.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// RPC user name; bcoin accepts any user with the right password.
    pub fn rpc_user(&self) -> &str {
        "stargate"
    }

    /// RPC password (bcoin's API key).
    pub fn rpc_password(&self) -> &str {
        &self.api_key
    }

    /// Writes a Bitcoin Core-style cookie file (`user:password`) and returns its path.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_cookie_file(&self) -> Result<PathBuf> {
        let path = self.dir.path().join(".cookie");
        std::fs::write(&path, format!("__cookie__:{}", self.api_key))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A chain configuration for a node whose data dir is `data_dir`, on this stack through
    /// `source`; everything else keeps the chain crate's defaults.
    ///
    /// # Errors
    /// When the RPC cookie file cannot be written.
    pub fn chain_config(
        &self,
        source: ChainSource,
        data_dir: &Path,
    ) -> Result<stargate_chain::ChainConfig> {
        let backend = match source {
            ChainSource::Electrum => stargate_chain::BackendConfig::Electrum {
                url: self.electrum_url(),
                validate_domain: false,
            },
            ChainSource::Rpc => stargate_chain::BackendConfig::Rpc {
                url: self.rpc_url(),
                auth: stargate_chain::RpcAuth::Cookie(self.write_cookie_file()?),
            },
        };
        Ok(stargate_chain::ChainConfig::new(
            stargate_protocol::anchor::Network::Regtest,
            backend,
            data_dir.to_path_buf(),
        ))
    }

    /// A new wallet: a chain service starts in a temporary data dir, shows its address and
    /// stops.
    ///
    /// # Errors
    /// When the service fails or its key file cannot be read.
    pub async fn new_wallet(&self) -> Result<NewWallet> {
        let dir = tempfile::tempdir()?;
        let store = stargate_storage::Store::open(dir.path(), Default::default())?;
        let config = self.chain_config(ChainSource::Rpc, dir.path())?;
        let (service, _) = stargate_chain::AnchorService::start(store, config)?;
        let address = service.wallet_address().await?;
        service.shutdown(STOP_TIMEOUT).await?;
        let key_file = std::fs::read(dir.path().join(stargate_chain::WALLET_KEY_FILE))?;
        let key: Value = serde_json::from_slice(&key_file)?;
        let xprv = key["xprv"]
            .as_str()
            .context("no xprv in the wallet key file")?
            .to_owned();
        Ok(NewWallet {
            key_file,
            xprv,
            address,
        })
    }

    /// Mines `n` blocks to `address` from an empty mempool and returns what their coinbase
    /// outputs pay in all (regtest's subsidy halves every 150 blocks).
    ///
    /// # Errors
    /// When the mempool holds transactions (their fees would count) or mining fails.
    pub async fn mine_coinbases(&self, n: u64, address: &bitcoin::Address) -> Result<u64> {
        ensure!(
            self.mempool().await?.is_empty(),
            "mine_coinbases needs an empty mempool"
        );
        let first = self.height().await? + 1;
        self.mine_blocks(n, &address.to_string()).await?;
        Ok((first..first + n)
            .map(|height| {
                5_000_000_000u64
                    .checked_shr((height / 150) as u32)
                    .unwrap_or(0)
            })
            .sum())
    }

    /// Electrum TCP URL, e.g. `tcp://127.0.0.1:50001`.
    pub fn electrum_url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.electrum_port)
    }

    /// Electrum TLS URL with a self-signed certificate (clients must not validate the domain).
    pub fn electrum_ssl_url(&self) -> String {
        format!("ssl://127.0.0.1:{}", self.electrum_ssl_port)
    }

    /// The directory holding both services' data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Calls a JSON-RPC method on the node and decodes its result.
    ///
    /// # Errors
    /// On transport failure, an RPC error, or a result that does not decode as `T`.
    pub async fn rpc<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T> {
        let body = json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params});
        let reply: Value = self
            .http
            .post(self.rpc_url())
            .basic_auth(self.rpc_user(), Some(&self.api_key))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("calling {method} on bcoin"))?
            .json()
            .await
            .with_context(|| format!("reading bcoin's reply to {method}"))?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            bail!("bcoin {method} failed: {err}");
        }
        let result = reply.get("result").cloned().unwrap_or(Value::Null);
        serde_json::from_value(result).with_context(|| format!("decoding bcoin's {method} result"))
    }

    /// Mines `n` blocks paying their coinbase to `address`; returns their hashes.
    ///
    /// # Errors
    /// When bcoin rejects the address or the call fails.
    pub async fn mine_blocks(&self, n: u64, address: &str) -> Result<Vec<String>> {
        // Mined in chunks so that one call never holds bcoin's chain lock for long.
        let mut hashes = Vec::new();
        let mut left = n;
        while left > 0 {
            let chunk = left.min(500);
            let mut mined: Vec<String> = self
                .rpc("generatetoaddress", json!([chunk, address]))
                .await?;
            hashes.append(&mut mined);
            left -= chunk;
        }
        Ok(hashes)
    }

    /// The best-chain or side block `hash`, decoded.
    ///
    /// # Errors
    /// When the block is unknown or does not decode.
    pub async fn block(&self, hash: &str) -> Result<bitcoin::Block> {
        let hex: String = self.rpc("getblock", json!([hash, false])).await?;
        bitcoin::consensus::encode::deserialize_hex(&hex)
            .with_context(|| format!("decoding block {hash}"))
    }

    /// Sends `txs` to the node and waits until all are in its mempool.
    ///
    /// # Errors
    /// When the node refuses one or they do not reach the mempool in time.
    pub async fn send(&self, txs: &[bitcoin::Transaction]) -> Result<()> {
        let mut waiting = std::collections::HashSet::new();
        for tx in txs {
            let hex = bitcoin::consensus::encode::serialize_hex(tx);
            let txid: String = self.rpc("sendrawtransaction", json!([hex])).await?;
            waiting.insert(txid);
        }
        let deadline = Instant::now() + RPC_TIMEOUT;
        while !waiting.is_empty() {
            for txid in self.mempool().await? {
                waiting.remove(&txid);
            }
            ensure!(
                Instant::now() < deadline,
                "{} transactions did not reach bcoin's mempool, e.g. {:?}",
                waiting.len(),
                waiting.iter().next()
            );
            sleep(POLL).await;
        }
        Ok(())
    }

    /// Height of the node's best chain.
    ///
    /// # Errors
    /// When the RPC call fails.
    pub async fn height(&self) -> Result<u64> {
        self.rpc("getblockcount", json!([])).await
    }

    /// Hash of the node's best block.
    ///
    /// # Errors
    /// When the RPC call fails.
    pub async fn best_block_hash(&self) -> Result<String> {
        self.rpc("getbestblockhash", json!([])).await
    }

    /// Hash of the best-chain block at `height`.
    ///
    /// # Errors
    /// When the height is above the tip or the call fails.
    pub async fn block_hash(&self, height: u64) -> Result<String> {
        self.rpc("getblockhash", json!([height])).await
    }

    /// Transaction ids in the node's mempool.
    ///
    /// # Errors
    /// When the RPC call fails.
    pub async fn mempool(&self) -> Result<Vec<String>> {
        self.rpc("getrawmempool", json!([])).await
    }

    /// Waits until `txid` is in the node's mempool (bcoin's `sendrawtransaction` answers before
    /// it has validated the transaction).
    ///
    /// # Errors
    /// When it does not appear within the RPC timeout.
    pub async fn wait_for_mempool(&self, txid: &str) -> Result<()> {
        let deadline = Instant::now() + RPC_TIMEOUT;
        while !self.mempool().await?.iter().any(|t| t == txid) {
            ensure!(
                Instant::now() < deadline,
                "{txid} did not reach bcoin's mempool"
            );
            sleep(POLL).await;
        }
        Ok(())
    }

    /// Marks a block invalid; the node's tip falls back to its parent.
    ///
    /// # Errors
    /// When the RPC call fails.
    pub async fn invalidate_block(&self, hash: &str) -> Result<()> {
        self.rpc::<Value>("invalidateblock", json!([hash])).await?;
        Ok(())
    }

    /// Replaces the last `n` blocks by `n + 1` new ones mined to [`BURN_ADDRESS`], so the new
    /// branch is strictly longer. Returns the hashes of the blocks that left the best chain.
    ///
    /// # Errors
    /// When `n` is zero or above the tip, or an RPC call fails.
    pub async fn reorg(&self, n: u64) -> Result<Vec<String>> {
        let tip = self.height().await?;
        ensure!(
            n > 0 && n <= tip,
            "cannot reorg {n} blocks of a chain of height {tip}"
        );
        let mut orphaned = Vec::new();
        for height in tip + 1 - n..=tip {
            orphaned.push(self.block_hash(height).await?);
        }
        self.invalidate_block(&orphaned[0]).await?;
        ensure!(
            self.height().await? == tip - n,
            "invalidateblock did not rewind the tip"
        );
        self.mine_blocks(n + 1, BURN_ADDRESS).await?;
        Ok(orphaned)
    }

    /// Waits until e-x's tip is the node's best block.
    ///
    /// # Errors
    /// When e-x is not running or does not catch up within its timeout.
    pub async fn wait_for_electrum_sync(&self) -> Result<()> {
        let deadline = Instant::now() + SYNC_TIMEOUT;
        loop {
            let node_height = self.height().await?;
            let node_hash = self.best_block_hash().await?;
            let url = self.electrum_url();
            let electrum_tip = tokio::task::spawn_blocking(move || electrum_tip(&url))
                .await
                .context("electrum tip task")?;
            if let Ok((height, hash)) = &electrum_tip
                && *height == node_height
                && *hash == node_hash
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "e-x did not reach the node's tip {node_height} {node_hash} (last: {electrum_tip:?}); log:\n{}",
                    self.log_tail("electrumx.log")
                );
            }
            sleep(Duration::from_millis(250)).await;
        }
    }

    /// Starts bcoin (again) on the same data directory and port.
    ///
    /// # Errors
    /// When it is already running, cannot be started, or does not answer RPC in time.
    pub async fn start_bcoin(&mut self) -> Result<()> {
        ensure!(self.bcoin.is_none(), "bcoin is already running");
        let launcher = component(
            "STARGATE_BCOIN_LAUNCHER",
            &repo_root().join("tests/regtest/launcher.js"),
        )?;
        let prefix = self.dir.path().join("bcoin");
        std::fs::create_dir_all(&prefix).context("creating bcoin's data dir")?;
        let child = Command::new("node")
            .arg(&launcher)
            .arg(format!("--prefix={}", prefix.display()))
            .arg(format!("--http-port={}", self.rpc_port))
            .arg(format!("--api-key={}", self.api_key))
            .stdin(Stdio::null())
            .stdout(self.log_file("bcoin.log")?)
            .stderr(self.log_file("bcoin.log")?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node (Node.js) for bcoin: {INSTALL_HINT}"))?;
        self.bcoin = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.rpc::<u64>("getblockcount", json!([])).await.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.bcoin.as_mut()
                && let Some(status) = child.try_wait().context("polling bcoin")?
            {
                self.bcoin = None;
                bail!(
                    "bcoin exited with {status}; log:\n{}",
                    self.log_tail("bcoin.log")
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "bcoin did not answer RPC in time; log:\n{}",
                    self.log_tail("bcoin.log")
                );
            }
            sleep(POLL).await;
        }
    }

    /// Stops bcoin gracefully (SIGTERM, then SIGKILL after a timeout).
    ///
    /// # Errors
    /// When it is not running or cannot be signalled.
    pub async fn stop_bcoin(&mut self) -> Result<()> {
        let child = self
            .bcoin
            .take()
            .ok_or_else(|| anyhow!("bcoin is not running"))?;
        stop_child(child, "bcoin").await
    }

    /// Starts e-x (again) on the same data directory and ports, pointed at bcoin.
    ///
    /// # Errors
    /// When it is already running, cannot be started, or does not accept connections in time.
    pub async fn start_electrumx(&mut self) -> Result<()> {
        ensure!(self.electrumx.is_none(), "e-x is already running");
        let server = component(
            "STARGATE_ELECTRUMX",
            &repo_root().join(".venv/bin/electrumx_server"),
        )?;
        let db = self.dir.path().join("electrumx");
        std::fs::create_dir_all(&db).context("creating e-x's data dir")?;
        // e-x's cost limits keep their defaults, as on a public server: a client that sends too
        // much gets slowed down here as it would there.
        let child = Command::new(&server)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("COIN", "Bitcoin")
            .env("NET", "regtest")
            .env("DB_DIRECTORY", &db)
            .env(
                "DAEMON_URL",
                format!("http://x:{}@127.0.0.1:{}/", self.api_key, self.rpc_port),
            )
            .env(
                "SERVICES",
                format!(
                    "tcp://127.0.0.1:{},ssl://127.0.0.1:{},rpc://127.0.0.1:{}",
                    self.electrum_port, self.electrum_ssl_port, self.electrum_admin_port
                ),
            )
            .env("SSL_CERTFILE", self.dir.path().join("tls.crt"))
            .env("SSL_KEYFILE", self.dir.path().join("tls.key"))
            .env("PEER_DISCOVERY", "off")
            .env("PEER_ANNOUNCE", "")
            .env("ALLOW_ROOT", "1")
            .env("DAEMON_POLL_INTERVAL_BLOCKS", "200")
            .env("DAEMON_POLL_INTERVAL_MEMPOOL", "200")
            .stdin(Stdio::null())
            .stdout(self.log_file("electrumx.log")?)
            .stderr(self.log_file("electrumx.log")?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        self.electrumx = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let url = self.electrum_url();
            let tip = tokio::task::spawn_blocking(move || electrum_tip(&url))
                .await
                .context("electrum tip task")?;
            if tip.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.electrumx.as_mut()
                && let Some(status) = child.try_wait().context("polling e-x")?
            {
                self.electrumx = None;
                bail!(
                    "e-x exited with {status}; log:\n{}",
                    self.log_tail("electrumx.log")
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "e-x did not accept connections in time; log:\n{}",
                    self.log_tail("electrumx.log")
                );
            }
            sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops e-x gracefully (SIGTERM, then SIGKILL after a timeout).
    ///
    /// # Errors
    /// When it is not running or cannot be signalled.
    pub async fn stop_electrumx(&mut self) -> Result<()> {
        let child = self
            .electrumx
            .take()
            .ok_or_else(|| anyhow!("e-x is not running"))?;
        stop_child(child, "e-x").await
    }

    fn log_file(&self, name: &str) -> Result<std::fs::File> {
        let path = self.dir.path().join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    }

    fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Refuses to run the stack unless the process sees only the loopback interface.
fn ensure_loopback_only() -> Result<()> {
    // /proc/net/dev follows the calling process's network namespace (/sys/class/net does not).
    let devices = std::fs::read_to_string("/proc/net/dev").context("reading /proc/net/dev")?;
    let others: Vec<&str> = devices
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next().map(str::trim))
        .filter(|name| *name != "lo")
        .collect();
    ensure!(
        others.is_empty(),
        "the regtest stack runs only in a loopback-only network namespace (found {others:?}); \
         run the tests with: unshare -n sh -c 'ip link set lo up && cargo test --offline ...'"
    );
    Ok(())
}

fn component(var: &str, default: &Path) -> Result<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| default.to_path_buf(), PathBuf::from);
    ensure!(
        path.exists(),
        "{} is missing: {INSTALL_HINT} (it runs scripts/install-regtest.sh), or set {var}",
        path.display()
    );
    Ok(path)
}

async fn make_tls_cert(dir: &Path) -> Result<()> {
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .context("running openssl to make e-x's TLS certificate")?;
    ensure!(status.success(), "openssl req failed with {status}");
    Ok(())
}

async fn stop_child(mut child: Child, name: &str) -> Result<()> {
    if let Some(pid) = child.id() {
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .with_context(|| format!("signalling {name}"))?;
        ensure!(status.success(), "kill -TERM {pid} ({name}) failed");
    }
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        child
            .kill()
            .await
            .with_context(|| format!("killing {name}"))?;
    }
    Ok(())
}

/// Height and hash of e-x's tip, read through the Electrum protocol.
fn electrum_tip(url: &str) -> Result<(u64, String)> {
    use electrum_client::ElectrumApi;
    let config = electrum_client::ConfigBuilder::new()
        .timeout(Some(Duration::from_secs(5)))
        .retry(0)
        .build();
    let client = electrum_client::Client::from_config(url, config)?;
    let tip = client.block_headers_subscribe()?;
    Ok((tip.height as u64, tip.header.block_hash().to_string()))
}

/// A key of the test's own that owns mined coins and pays them out in ordinary one-input,
/// one-output P2WPKH transactions, for wallets that need incoming payments from someone else.
#[derive(Debug)]
pub struct Payer {
    key: bitcoin::secp256k1::SecretKey,
    script: bitcoin::ScriptBuf,
    coins: Vec<(bitcoin::OutPoint, bitcoin::Amount)>,
}

/// Fee of each payment and of the fan-out transaction, far above any relay minimum.
const PAYER_FEE: bitcoin::Amount = bitcoin::Amount::from_sat(20_000);
const FAN_OUT_FEE: bitcoin::Amount = bitcoin::Amount::from_sat(200_000);
/// Outputs per fan-out transaction (keeps it well under the standard size limit).
const FAN_OUT: usize = 1000;

impl Payer {
    /// Mines a coinbase to a new key, matures it, and splits it into `coins` equal outputs in
    /// confirmed fan-out transactions. The chain must be past segwit activation.
    ///
    /// # Errors
    /// When mining, broadcasting or decoding fails.
    pub async fn fund(regtest: &Regtest, coins: usize) -> Result<Self> {
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let key = bitcoin::secp256k1::SecretKey::from_slice(&rand::random::<[u8; 32]>())
            .context("a random 32-byte key out of range")?;
        let public = bitcoin::CompressedPublicKey(key.public_key(&secp));
        let address = bitcoin::Address::p2wpkh(&public, bitcoin::Network::Regtest);
        let mut payer = Self {
            key,
            script: address.script_pubkey(),
            coins: Vec::new(),
        };
        let rounds = coins.div_ceil(FAN_OUT).max(1);
        let mut coinbases = Vec::new();
        for hash in regtest
            .mine_blocks(rounds as u64, &address.to_string())
            .await?
        {
            let block = regtest.block(&hash).await?;
            let coinbase = block.txdata.first().context("a block without a coinbase")?;
            coinbases.push((
                bitcoin::OutPoint::new(coinbase.compute_txid(), 0),
                coinbase.output[0].value,
            ));
        }
        regtest.mine_blocks(COINBASE_MATURITY, BURN_ADDRESS).await?;
        let mut left = coins;
        for (outpoint, value) in coinbases {
            let n = left.min(FAN_OUT);
            left -= n;
            let each = (value - FAN_OUT_FEE) / n as u64;
            let outputs = vec![(payer.script.clone(), each); n];
            let tx = payer.sign(outpoint, value, outputs)?;
            let txid = tx.compute_txid();
            regtest.send(std::slice::from_ref(&tx)).await?;
            payer
                .coins
                .extend((0..n).map(|vout| (bitcoin::OutPoint::new(txid, vout as u32), each)));
        }
        regtest.mine_blocks(1, BURN_ADDRESS).await?;
        Ok(payer)
    }

    /// Pays each of `to` one coin (less the fee) in its own transaction, all left in the
    /// mempool; returns their txids.
    ///
    /// # Errors
    /// When there are fewer coins left than payments, or a transaction is refused.
    pub async fn pay(
        &mut self,
        regtest: &Regtest,
        to: &[bitcoin::ScriptBuf],
    ) -> Result<Vec<bitcoin::Txid>> {
        ensure!(
            to.len() <= self.coins.len(),
            "{} payments asked of a payer with {} coins",
            to.len(),
            self.coins.len()
        );
        let mut txs = Vec::with_capacity(to.len());
        for script in to {
            let (outpoint, value) = self.coins.pop().context("no coin left")?;
            txs.push(self.sign(outpoint, value, vec![(script.clone(), value - PAYER_FEE)])?);
        }
        regtest.send(&txs).await?;
        Ok(txs.iter().map(bitcoin::Transaction::compute_txid).collect())
    }

    fn sign(
        &self,
        outpoint: bitcoin::OutPoint,
        value: bitcoin::Amount,
        outputs: Vec<(bitcoin::ScriptBuf, bitcoin::Amount)>,
    ) -> Result<bitcoin::Transaction> {
        use bitcoin::sighash::{EcdsaSighashType, SighashCache};
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let mut tx = bitcoin::Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: outpoint,
                sequence: bitcoin::Sequence::ENABLE_RBF_NO_LOCKTIME,
                ..bitcoin::TxIn::default()
            }],
            output: outputs
                .into_iter()
                .map(|(script_pubkey, value)| bitcoin::TxOut {
                    value,
                    script_pubkey,
                })
                .collect(),
        };
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(0, &self.script, value, EcdsaSighashType::All)
            .context("computing a sighash")?;
        let signature = bitcoin::ecdsa::Signature::sighash_all(
            secp.sign_ecdsa(&bitcoin::secp256k1::Message::from(sighash), &self.key),
        );
        tx.input[0].witness = bitcoin::Witness::p2wpkh(&signature, &self.key.public_key(&secp));
        Ok(tx)
    }
}

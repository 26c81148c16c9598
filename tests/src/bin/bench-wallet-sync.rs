//! How long a fresh node's anchoring wallet takes to sync a history of many transactions,
//! through each backend on the same regtest stack, and how long wallet and status queries take
//! meanwhile.
//!
//! A first node creates the wallet key and shows its address; then either `N` blocks are mined
//! to that address (`coinbase`, the reported case) or a payer of the test's own sends `N`
//! ordinary payments spread over the wallet's first addresses (`payments`). Then, for each
//! backend, a fresh node (empty database, same key file) starts and is timed until its wallet
//! is synced to the tip with the whole balance. e-x runs with its defaults, cost limits
//! included, as a public server does.
//!
//!   bash scripts/bench-wallet-sync.sh [coinbase|payments] [N]

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bitcoin::bip32::{DerivationPath, Xpriv};
use stargate_chain::{AnchorService, ChainConfig, WALLET_KEY_FILE};
use stargate_storage::{Store, StoreOptions};
use stargate_tests::{ChainSource, Payer, Regtest};

/// Longest a sync may take before the run is called failed.
const SYNC_LIMIT: Duration = Duration::from_secs(1200);
/// Longest one query may take before it counts as not answering.
const QUERY_LIMIT: Duration = Duration::from_secs(30);
/// Addresses the payments are spread over.
const ADDRESSES: u32 = 20;
/// How long a service gets to stop.
const STOP: Duration = Duration::from_secs(30);

fn config(regtest: &Regtest, kind: ChainSource, data_dir: &Path) -> Result<ChainConfig> {
    let mut config = regtest.chain_config(kind, data_dir)?;
    config.poll_interval = Duration::from_secs(1);
    Ok(config)
}

/// The wallet's external address `index` (BIP84, as the chain crate derives it).
fn wallet_script(xprv: &Xpriv, index: u32) -> Result<bitcoin::ScriptBuf> {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let path = DerivationPath::from_str(&format!("m/84'/1'/0'/0/{index}"))?;
    let child = xprv.derive_priv(&secp, &path)?;
    let public = bitcoin::CompressedPublicKey(child.private_key.public_key(&secp));
    Ok(bitcoin::ScriptBuf::new_p2wpkh(&public.wpubkey_hash()))
}

struct Run {
    kind: ChainSource,
    synced: Duration,
    slowest_balance: Duration,
    slowest_status: Duration,
    queries: usize,
}

async fn timed_sync(
    regtest: &Regtest,
    kind: ChainSource,
    key_file: &[u8],
    tip: u32,
    expected_sat: u64,
) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(WALLET_KEY_FILE), key_file)?;
    let store = Store::open(dir.path(), StoreOptions::default())?;
    let started = Instant::now();
    let (service, _) = AnchorService::start(store, config(regtest, kind, dir.path())?)?;
    let done = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe(service.clone(), done.clone()));
    let result = async {
        loop {
            let summary = service.summary().await?;
            if summary.synced_height == Some(tip) {
                let b = service.wallet_balance().await?;
                let total = b.confirmed_sat + b.pending_sat + b.immature_sat;
                if total == expected_sat {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > SYNC_LIMIT {
                bail!("{kind:?}: not synced after {SYNC_LIMIT:?}: {summary:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    .await;
    done.store(true, Ordering::Release);
    let (slowest_balance, slowest_status, queries) = prober.await?;
    service.shutdown(STOP).await?;
    Ok(Run {
        kind,
        synced: result?,
        slowest_balance,
        slowest_status,
        queries,
    })
}

/// Asks for the balance and the status every 200 ms until `done`; returns the slowest answers.
async fn probe(service: AnchorService, done: Arc<AtomicBool>) -> (Duration, Duration, usize) {
    let (mut balance, mut status, mut n) = (Duration::ZERO, Duration::ZERO, 0);
    while !done.load(Ordering::Acquire) {
        let t = Instant::now();
        let _ = tokio::time::timeout(QUERY_LIMIT, service.wallet_balance()).await;
        balance = balance.max(t.elapsed());
        let t = Instant::now();
        let _ = tokio::time::timeout(QUERY_LIMIT, service.summary()).await;
        status = status.max(t.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (balance, status, n)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map_or("coinbase", String::as_str).to_owned();
    let n: usize = args.get(1).map_or(Ok(500), |s| s.parse())?;
    let regtest = Regtest::start_with_segwit().await?;

    let wallet = regtest.new_wallet().await?;
    let xprv = Xpriv::from_str(&wallet.xprv)?;

    let setup = Instant::now();
    let expected_sat = match scenario.as_str() {
        "coinbase" => regtest.mine_coinbases(n as u64, &wallet.address).await?,
        "payments" => {
            let mut payer = Payer::fund(&regtest, n).await?;
            let scripts = (0..n as u32)
                .map(|i| wallet_script(&xprv, i % ADDRESSES))
                .collect::<Result<Vec<_>>>()?;
            let txids = payer.pay(&regtest, &scripts).await?;
            while !regtest.mempool().await?.is_empty() {
                regtest.mine_blocks(1, stargate_tests::BURN_ADDRESS).await?;
            }
            let mut total = 0;
            for txid in txids {
                let hex: String = regtest
                    .rpc("getrawtransaction", serde_json::json!([txid.to_string()]))
                    .await?;
                let tx: bitcoin::Transaction = bitcoin::consensus::encode::deserialize_hex(&hex)?;
                total += tx.output[0].value.to_sat();
            }
            total
        }
        other => bail!("unknown scenario {other}: coinbase or payments"),
    };
    regtest.wait_for_electrum_sync().await?;
    let tip = u32::try_from(regtest.height().await?)?;
    eprintln!(
        "set up {n} {scenario} transactions in {:.1} s; tip {tip}",
        setup.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    for kind in [ChainSource::Rpc, ChainSource::Electrum] {
        let run = timed_sync(&regtest, kind, &wallet.key_file, tip, expected_sat).await?;
        eprintln!("{kind:?}: synced in {:.1} s", run.synced.as_secs_f64());
        runs.push(run);
    }
    let log = std::fs::read_to_string(regtest.dir().join("electrumx.log")).unwrap_or_default();
    let throttled = log.matches("changing task concurrency").count();
    println!(
        "wallet sync of {n} {scenario} transactions on bcoin regtest + e-x (default cost limits), fresh node, tip {tip}"
    );
    println!("| backend | sync | slowest balance | slowest status | queries during sync |");
    println!("|---|---:|---:|---:|---:|");
    for r in &runs {
        println!(
            "| {:?} | {:.1} s | {:.2} s | {:.2} s | {} |",
            r.kind,
            r.synced.as_secs_f64(),
            r.slowest_balance.as_secs_f64(),
            r.slowest_status.as_secs_f64(),
            r.queries
        );
    }
    println!(
        "electrum/rpc ratio {:.2}; e-x throttle changes logged: {throttled}",
        runs[1].synced.as_secs_f64() / runs[0].synced.as_secs_f64()
    );
    Ok(())
}

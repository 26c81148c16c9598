//! A fresh node's wallet with a long history (500 coinbase outputs, the reported case) on the
//! regtest stack (e-x with its public cost limits): it syncs through Electrum in step
//! with the RPC backend, and the balance, address and status asked meanwhile answer at once,
//! from the last state, saying that a sync runs: through the service and through the daemon's
//! CLI, where a CID queued during the sync goes out as soon as it ends.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use stargate_chain::{AnchorService, ChainConfig, WALLET_KEY_FILE};
use stargate_storage::{Store, StoreOptions};
use stargate_tests::{
    ChainSource, DaemonOptions, NewWallet, Regtest, StargateDaemon, write_text_file,
};

/// Coinbase outputs paid to the wallet.
const COINBASES: u64 = 500;
/// e-x holds back any answer under 1 KB for up to a second, and a fresh connection's first two
/// answers (the protocol version, then the genesis block with the tip) are that small whatever
/// the client asks: the Electrum sync gets this much on top of three times the RPC one.
const FRESH_CONNECTION_HOLDS: Duration = Duration::from_secs(2);
/// What "at once" means for a question asked during a sync.
const AT_ONCE: Duration = Duration::from_secs(1);
/// Longest a sync may take before the test gives up.
const SYNC_LIMIT: Duration = Duration::from_secs(120);
/// How long a service gets to stop.
const STOP: Duration = Duration::from_secs(30);
/// How soon after the sync a CID queued during it must be broadcast (a poll interval and the
/// broadcast's round trips).
const ANCHOR_AFTER_SYNC: Duration = Duration::from_secs(15);

fn config(regtest: &Regtest, kind: ChainSource, data_dir: &Path) -> Result<ChainConfig> {
    let mut config = regtest.chain_config(kind, data_dir)?;
    config.poll_interval = Duration::from_secs(1);
    Ok(config)
}

/// A stack whose chain pays [`COINBASES`] coinbase outputs to a wallet created just before.
struct History {
    regtest: Regtest,
    wallet: NewWallet,
    tip: u32,
    expected_sat: u64,
}

async fn long_history() -> Result<History> {
    let regtest = Regtest::start_with_segwit().await?;
    let wallet = regtest.new_wallet().await?;
    let mined = Instant::now();
    let expected_sat = regtest.mine_coinbases(COINBASES, &wallet.address).await?;
    regtest.wait_for_electrum_sync().await?;
    eprintln!(
        "mined {COINBASES} blocks to the wallet in {:.1} s",
        mined.elapsed().as_secs_f64()
    );
    Ok(History {
        tip: u32::try_from(regtest.height().await?)?,
        regtest,
        wallet,
        expected_sat,
    })
}

/// What a sync through one backend looked like from outside.
#[derive(Debug, Default)]
struct Seen {
    took: Duration,
    /// The slowest balance, address and status answers.
    slowest: [Duration; 3],
    /// Whether a balance (then a status) answered during the sync said it was running.
    syncing: [bool; 2],
}

/// Starts a fresh node (empty database, the history's key file) on `kind` and asks for its
/// balance, address and status every 50 ms until the wallet holds the whole history at the tip.
async fn observe_sync(history: &History, kind: ChainSource) -> Result<Seen> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(WALLET_KEY_FILE), &history.wallet.key_file)?;
    let store = Store::open(dir.path(), StoreOptions::default())?;
    let started = Instant::now();
    let (service, _) = AnchorService::start(store, config(&history.regtest, kind, dir.path())?)?;
    let mut seen = Seen::default();
    loop {
        let asked = Instant::now();
        let balance = service.wallet_balance().await?;
        seen.slowest[0] = seen.slowest[0].max(asked.elapsed());
        let asked = Instant::now();
        service.wallet_address().await?;
        seen.slowest[1] = seen.slowest[1].max(asked.elapsed());
        let asked = Instant::now();
        let status = service.summary().await?;
        seen.slowest[2] = seen.slowest[2].max(asked.elapsed());
        seen.syncing[0] |= balance.syncing.is_some();
        seen.syncing[1] |= status.syncing.is_some();
        let total = balance.confirmed_sat + balance.pending_sat + balance.immature_sat;
        if balance.synced_height == history.tip && total == history.expected_sat {
            seen.took = started.elapsed();
            break;
        }
        if started.elapsed() > SYNC_LIMIT {
            bail!("{kind:?}: not synced after {SYNC_LIMIT:?}: {balance:?} {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service.shutdown(STOP).await?;
    eprintln!("{kind:?}: {seen:?}");
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_history_syncs_through_electrum_in_step_with_rpc() -> Result<()> {
    let history = long_history().await?;
    let rpc = observe_sync(&history, ChainSource::Rpc).await?;
    let electrum = observe_sync(&history, ChainSource::Electrum).await?;
    let limit = rpc.took * 3 + FRESH_CONNECTION_HOLDS;
    ensure!(
        electrum.took <= limit,
        "Electrum took {:?}, more than 3 x RPC's {:?} + {FRESH_CONNECTION_HOLDS:?}",
        electrum.took,
        rpc.took
    );
    for seen in [&rpc, &electrum] {
        ensure!(
            seen.slowest.iter().all(|d| *d < AT_ONCE),
            "a question waited during the sync: {seen:?}"
        );
    }
    ensure!(
        electrum.syncing == [true, true],
        "the balance and the status did not say that the Electrum sync was running: {electrum:?}"
    );
    Ok(())
}

/// Runs `stargate ARGS` and returns its output, failing if it took [`AT_ONCE`] or more.
fn at_once(daemon: &StargateDaemon, args: &[&str]) -> Result<String> {
    let asked = Instant::now();
    let out = daemon.cli_with_timeout(args, Duration::from_secs(30))?;
    let took = asked.elapsed();
    let text = out.ok_stdout(&format!("stargate {}", args.join(" ")))?;
    ensure!(
        took < AT_ONCE,
        "`stargate {}` took {took:?} during the sync:\n{text}",
        args.join(" ")
    );
    Ok(text)
}

#[test]
fn the_cli_answers_during_an_electrum_sync_and_says_how_far_it_got() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let history = rt.block_on(long_history())?;
    let env = [
        ("STARGATE_BITCOIN_NETWORK", "regtest".to_owned()),
        (
            "STARGATE_CHAIN_ELECTRUM_URL",
            history.regtest.electrum_url(),
        ),
        ("STARGATE_CHAIN_WALLET_KEY", history.wallet.xprv.clone()),
        ("STARGATE_CHAIN_POLL_INTERVAL_SEC", "1".to_owned()),
        ("STARGATE_CHAIN_ANCHOR_BATCH_INTERVAL_SEC", "1".to_owned()),
    ];
    let daemon = StargateDaemon::start(DaemonOptions {
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ..DaemonOptions::default()
    })?;
    let expected = format!("confirmed {} sat", history.expected_sat);
    let as_of = format!("as of block {}", history.tip);
    let started = Instant::now();
    // Content queued for anchoring while the wallet still syncs.
    let work = tempfile::tempdir()?;
    let file = work.path().join("queued-early.md");
    write_text_file(&file, 2_000, 11)?;
    let path = file.to_str().context("temp path is not UTF-8")?;
    let cid = daemon.cli_ok(&["add", "-Q", path])?.trim().to_owned();
    at_once(&daemon, &["anchor", &cid])?;
    // Whether `wallet balance`, then `anchor status`, said that the sync was running.
    let mut said_syncing = [false, false];
    loop {
        let balance = at_once(&daemon, &["wallet", "balance"])?;
        let address = at_once(&daemon, &["wallet", "address"])?;
        ensure!(address.trim().starts_with("bcrt1"), "{address}");
        let status = at_once(&daemon, &["anchor", "status"])?;
        if !said_syncing[0] && balance.contains("wallet syncing") {
            eprintln!("during the sync:\n{balance}{status}");
        }
        said_syncing[0] |= balance.contains("wallet syncing");
        said_syncing[1] |= status.contains("wallet syncing");
        // Coinbase outputs mature after 100 blocks: the last hundred are immature.
        let total: u64 = ["confirmed ", "immature "]
            .iter()
            .filter_map(|prefix| {
                balance.lines().find_map(|l| {
                    l.strip_prefix(prefix)?
                        .strip_suffix(" sat")?
                        .parse::<u64>()
                        .ok()
                })
            })
            .sum();
        if total == history.expected_sat && balance.contains(&as_of) {
            ensure!(!balance.contains("wallet syncing"), "{balance}");
            eprintln!("{balance}{status}");
            break;
        }
        ensure!(
            started.elapsed() < SYNC_LIMIT,
            "not synced after {SYNC_LIMIT:?} (want {expected} in all):\n{balance}\n{status}\nlog:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(
        said_syncing == [true, true],
        "`wallet balance` and `anchor status` did not both say that the sync was running ({said_syncing:?}); log:\n{}",
        daemon.log()
    );
    let synced = Instant::now();
    loop {
        let status = at_once(&daemon, &["anchor", "status", &cid])?;
        if status.contains(&format!("{cid} broadcast")) {
            break;
        }
        ensure!(
            synced.elapsed() < ANCHOR_AFTER_SYNC,
            "the CID queued during the sync was not broadcast within {ANCHOR_AFTER_SYNC:?} of its end:\n{status}\nlog:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = daemon.log();
    ensure!(
        log.contains("wallet synced") && log.contains("new_transactions=500"),
        "the log does not say what the sync brought:\n{log}"
    );
    Ok(())
}

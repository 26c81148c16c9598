//! Anchoring against a real regtest stack, through both backends: a single CID and a batch
//! confirmed and proven, a reorg that moves the proof, the backend stopped and started with
//! the queue intact, a restart between broadcast and confirmation, and an unfunded wallet.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use stargate_chain::{AnchorService, BackendConfig, ChainConfig, CidAnchorState};
use stargate_protocol::Cid;
use stargate_protocol::anchor::{AnchorPayload, AnchorProof};
use stargate_storage::{Store, StoreOptions};
use stargate_tests::{BURN_ADDRESS, COINBASE_MATURITY, ChainSource, Regtest};
use tokio::time::{Instant, sleep};

const WAIT: Duration = Duration::from_secs(90);
/// How long a service gets to stop.
const STOP: Duration = Duration::from_secs(30);

fn cid(n: u32) -> Cid {
    use bitcoin::hashes::Hash as _;
    let digest =
        bitcoin::hashes::sha256::Hash::hash(format!("stargate anchor test {n}").as_bytes())
            .to_byte_array();
    Cid::new_v1(
        0x55,
        stargate_protocol::Multihash::wrap(0x12, &digest).expect("32-byte digest"),
    )
}

fn config(regtest: &Regtest, kind: ChainSource, data_dir: &Path) -> Result<ChainConfig> {
    let mut config = regtest.chain_config(kind, data_dir)?;
    config.batch_interval = Duration::from_secs(1);
    config.batch_max = 1000;
    config.poll_interval = Duration::from_millis(300);
    config.rebroadcast_after = Duration::from_secs(2);
    config.rbf_after = Duration::from_secs(3600);
    Ok(config)
}

struct Node {
    _dir: tempfile::TempDir,
    store: Store,
    service: AnchorService,
}

fn start(regtest: &Regtest, kind: ChainSource, dir: tempfile::TempDir) -> Result<Node> {
    let store = Store::open(dir.path(), StoreOptions::default())?;
    let (service, _) = AnchorService::start(store.clone(), config(regtest, kind, dir.path())?)?;
    Ok(Node {
        _dir: dir,
        store,
        service,
    })
}

async fn funded(regtest: &Regtest, kind: ChainSource) -> Result<Node> {
    let node = start(regtest, kind, tempfile::tempdir()?)?;
    let address = node.service.wallet_address().await?;
    regtest.mine_blocks(1, &address.to_string()).await?;
    regtest.mine_blocks(COINBASE_MATURITY, BURN_ADDRESS).await?;
    eventually(
        &node.service,
        "the wallet never saw its coinbase",
        async || Ok((node.service.wallet_balance().await?.confirmed_sat > 0).then_some(())),
    )
    .await?;
    Ok(node)
}

/// Asks `probe` every 200 ms until it gives a value; after [`WAIT`], fails with `what` and the
/// service's summary.
async fn eventually<T>(
    service: &AnchorService,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await? {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("{what}: {:?}", service.summary().await?);
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `cid` is confirmed, mining a block whenever it is broadcast but unconfirmed.
async fn confirm(
    regtest: &Regtest,
    service: &AnchorService,
    cid: Cid,
) -> Result<(bitcoin::Txid, u32)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = service.status(cid).await?.context("CID not queued")?;
        match status.state {
            CidAnchorState::Confirmed { txid, height, .. } => return Ok((txid, height)),
            CidAnchorState::Broadcast { .. } => {
                regtest.mine_blocks(1, BURN_ADDRESS).await?;
            }
            CidAnchorState::Failed { reason } => bail!("{cid} failed: {reason}"),
            _ => {}
        }
        if Instant::now() > deadline {
            bail!(
                "{cid} not confirmed in time: {:?}",
                service.summary().await?
            );
        }
        sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_broadcast(service: &AnchorService, cid: Cid) -> Result<bitcoin::Txid> {
    eventually(service, &format!("{cid} never broadcast"), async || {
        Ok(match service.status(cid).await?.map(|s| s.state) {
            Some(CidAnchorState::Broadcast { txid }) => Some(txid),
            _ => None,
        })
    })
    .await
}

/// The proof from the service, checked again after a round trip through its JSON form.
async fn checked_proof(service: &AnchorService, cid: Cid) -> Result<AnchorProof> {
    let proof = service.proof(cid).await?;
    let json = proof.to_json();
    let back = AnchorProof::from_json(json.as_bytes())?;
    let verified = back.verify(None)?;
    assert_eq!(verified.cid, cid);
    Ok(back)
}

async fn scenario(kind: ChainSource) -> Result<()> {
    let mut regtest = Regtest::start_with_segwit().await?;
    let node = funded(&regtest, kind).await?;
    let service = &node.service;

    // One CID: a single-CID payload.
    let single = cid(0);
    service.anchor(vec![single]).await?;
    let (txid, _) = confirm(&regtest, service, single).await?;
    let proof = checked_proof(service, single).await?;
    assert!(proof.batch.is_none());
    assert_eq!(proof.tx.compute_txid(), txid);
    assert!(matches!(
        AnchorPayload::from_script(&proof.tx.output[0].script_pubkey).or_else(|| proof
            .tx
            .output
            .iter()
            .find_map(|o| AnchorPayload::from_script(&o.script_pubkey))),
        Some(AnchorPayload::Cid(_))
    ));

    // A batch of 100 in one transaction.
    let batch: Vec<Cid> = (1..=100).map(cid).collect();
    service.anchor(batch.clone()).await?;
    let (batch_txid, batch_height) = confirm(&regtest, service, batch[0]).await?;
    for member in &batch {
        let proof = checked_proof(service, *member).await?;
        assert_eq!(proof.tx.compute_txid(), batch_txid);
        assert!(proof.batch.is_some());
        assert!(proof.to_json().len() < 1024, "{}", proof.to_json().len());
    }
    let counts = service.summary().await?.counts;
    assert_eq!(counts.confirmed, 101);

    // A reorg takes the batch's block away: the proof is dropped and obtained again.
    let old_hash = checked_proof(service, batch[7]).await?.header.block_hash();
    let tip = regtest.height().await?;
    let depth = tip - u64::from(batch_height) + 1;
    regtest.reorg(depth).await?;
    if matches!(kind, ChainSource::Electrum) {
        regtest.wait_for_electrum_sync().await?;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(proof) = service.proof(batch[7]).await
            && proof.header.block_hash() != old_hash
        {
            proof.verify(None)?;
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "proof not re-obtained after the reorg: {:?}",
                service.summary().await?
            );
        }
        regtest.mine_blocks(1, BURN_ADDRESS).await?;
        sleep(Duration::from_millis(500)).await;
    }

    // The backend goes away: queued CIDs wait, and go out once it is back.
    let queued = cid(500);
    match kind {
        ChainSource::Rpc => regtest.stop_bcoin().await?,
        ChainSource::Electrum => regtest.stop_electrumx().await?,
    }
    service.anchor(vec![queued]).await?;
    sleep(Duration::from_secs(3)).await;
    assert!(matches!(
        service.status(queued).await?.map(|s| s.state),
        Some(CidAnchorState::Queued { .. })
    ));
    assert!(service.summary().await?.last_error.is_some());
    match kind {
        ChainSource::Rpc => regtest.start_bcoin().await?,
        ChainSource::Electrum => regtest.start_electrumx().await?,
    }
    confirm(&regtest, service, queued).await?;
    checked_proof(service, queued).await?;

    // A restart between broadcast and confirmation: the transaction is kept, confirmed, and
    // the restarted wallet does not spend its inputs again.
    let before = cid(600);
    service.anchor(vec![before]).await?;
    let first = wait_broadcast(service, before).await?;
    service.shutdown(STOP).await?;
    let Node {
        _dir: dir,
        store,
        service: old,
    } = node;
    drop(old);
    drop(store);
    let node = start(&regtest, kind, dir)?;
    let after = cid(601);
    node.service.anchor(vec![after]).await?;
    let second = wait_broadcast(&node.service, after).await?;
    assert_ne!(first, second);
    let (confirmed_first, h1) = confirm(&regtest, &node.service, before).await?;
    let (confirmed_second, h2) = confirm(&regtest, &node.service, after).await?;
    assert_eq!(confirmed_first, first);
    assert_eq!(confirmed_second, second);
    assert!(h1 > 0 && h2 > 0);
    checked_proof(&node.service, before).await?;
    checked_proof(&node.service, after).await?;
    // The watcher catches up with the tip (the last block mined may be newer than its last look
    // at the chain).
    eventually(
        &node.service,
        "the watcher stays behind the tip",
        async || Ok((node.service.summary().await?.lag_blocks == Some(0)).then_some(())),
    )
    .await?;
    node.service.shutdown(STOP).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn anchors_through_electrum() -> Result<()> {
    scenario(ChainSource::Electrum).await
}

#[tokio::test(flavor = "multi_thread")]
async fn anchors_through_rpc() -> Result<()> {
    scenario(ChainSource::Rpc).await
}

#[tokio::test(flavor = "multi_thread")]
async fn unfunded_wallet_gives_a_clear_error_and_keeps_the_queue() -> Result<()> {
    let regtest = Regtest::start_with_segwit().await?;
    let node = start(&regtest, ChainSource::Rpc, tempfile::tempdir()?)?;
    let address = node.service.wallet_address().await?;
    node.service.anchor(vec![cid(9)]).await?;
    let error = eventually(&node.service, "no funds error", async || {
        let error = node.service.summary().await?.last_error;
        Ok(error.filter(|e| e.contains("not enough funds")))
    })
    .await?;
    assert!(
        error.contains(&address.to_string()) || error.contains("send bitcoin to"),
        "{error}"
    );
    assert!(matches!(
        node.service.status(cid(9)).await?.map(|s| s.state),
        Some(CidAnchorState::Queued { .. })
    ));
    assert_eq!(node.store.anchor_counts()?.queued, 1);
    node.service.shutdown(STOP).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_electrum_anchors_and_rpc_scanning_finds_them() -> Result<()> {
    let regtest = Regtest::start_with_segwit().await?;
    // Instance A anchors through Electrum over TLS (e-x's self-signed certificate).
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), StoreOptions::default())?;
    let mut maker_config = config(&regtest, ChainSource::Electrum, dir.path())?;
    maker_config.backend = BackendConfig::Electrum {
        url: regtest.electrum_ssl_url(),
        validate_domain: false,
    };
    let (maker, _) = AnchorService::start(store, maker_config)?;
    // Instance B only watches, through RPC, with scanning on.
    let watcher_dir = tempfile::tempdir()?;
    let watcher_store = Store::open(watcher_dir.path(), StoreOptions::default())?;
    let mut watcher_config = config(&regtest, ChainSource::Rpc, watcher_dir.path())?;
    watcher_config.scan_anchors = true;
    let (watcher, discovered) = AnchorService::start(watcher_store, watcher_config)?;
    let mut discovered = discovered.context("scanning returns a channel")?;
    // B's wallet exists (and its scanning starts) before A's anchor is mined.
    watcher.wallet_address().await?;

    let address = maker.wallet_address().await?;
    regtest.mine_blocks(1, &address.to_string()).await?;
    regtest.mine_blocks(COINBASE_MATURITY, BURN_ADDRESS).await?;
    let anchored = cid(77);
    maker.anchor(vec![anchored]).await?;
    let (txid, height) = confirm(&regtest, &maker, anchored).await?;
    checked_proof(&maker, anchored).await?;

    let found = tokio::time::timeout(WAIT, async {
        loop {
            match discovered.recv().await {
                Some(found) if found.txid == txid => return Some(found),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
    .context("the watcher did not report the anchor in time")?
    .context("the discovered channel closed")?;
    assert_eq!(found.height, height);
    assert_eq!(
        found.payload,
        AnchorPayload::Cid(stargate_protocol::anchor::anchor_cid(&anchored))
    );
    maker.shutdown(STOP).await?;
    watcher.shutdown(STOP).await?;
    Ok(())
}

//! Anchoring figures on a regtest stack (bcoin): for batches of 1, 10, 100 and 1,000 CIDs, the
//! anchor transaction's virtual size per CID, the size of one member's proof, and the time
//! from queueing to broadcast and to the first confirmation (a block is mined as soon as the
//! transaction is seen, so the time is the node's own latency plus one regtest block).
//!
//! Run through `scripts/bench-anchor.sh` (inside the loopback-only namespace).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bitcoin::hashes::Hash as _;
use stargate_chain::{AnchorService, CidAnchorState};
use stargate_protocol::Cid;
use stargate_storage::{AnchorState, Store, StoreOptions};
use stargate_tests::{BURN_ADDRESS, COINBASE_MATURITY, ChainSource, Regtest};

const SIZES: [u32; 4] = [1, 10, 100, 1000];
const WAIT: Duration = Duration::from_secs(120);
/// How long a service gets to stop.
const STOP: Duration = Duration::from_secs(30);

fn cid(round: u32, n: u32) -> Cid {
    let digest = bitcoin::hashes::sha256::Hash::hash(format!("bench {round} {n}").as_bytes())
        .to_byte_array();
    Cid::new_v1(
        0x55,
        stargate_protocol::Multihash::wrap(0x12, &digest).unwrap_or_default(),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let regtest = Regtest::start_with_segwit().await?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), StoreOptions::default())?;
    let mut config = regtest.chain_config(ChainSource::Rpc, dir.path())?;
    config.batch_interval = Duration::from_secs(3600);
    config.poll_interval = Duration::from_millis(100);
    let fee_rate = config.fees.fallback;
    let mut results = Vec::new();
    for size in SIZES {
        let mut config = config.clone();
        config.batch_max = size as usize;
        let (service, _) = AnchorService::start(store.clone(), config)?;
        if results.is_empty() {
            let address = service.wallet_address().await?;
            regtest.mine_blocks(1, &address.to_string()).await?;
            regtest.mine_blocks(COINBASE_MATURITY, BURN_ADDRESS).await?;
            let deadline = Instant::now() + WAIT;
            while service.wallet_balance().await?.confirmed_sat == 0 {
                if Instant::now() > deadline {
                    bail!("the wallet was not funded");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let cids: Vec<Cid> = (0..size).map(|n| cid(size, n)).collect();
        let queued = Instant::now();
        service.anchor(cids.clone()).await?;
        let mut broadcast = None;
        let deadline = Instant::now() + WAIT;
        let confirmed = loop {
            match service.status(cids[0]).await?.context("queued")?.state {
                CidAnchorState::Broadcast { .. } if broadcast.is_none() => {
                    broadcast = Some(queued.elapsed());
                    regtest.mine_blocks(1, BURN_ADDRESS).await?;
                }
                CidAnchorState::Confirmed { .. } => break queued.elapsed(),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!(
                    "batch of {size} not confirmed: {:?}",
                    service.summary().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let Some(AnchorState::Batched { batch, .. }) = store.anchor_state(&cids[0])? else {
            bail!("not batched");
        };
        let record = store.anchor_batch(batch)?.context("batch record")?;
        let tx = record.txs.last().context("batch tx")?;
        let proof = service.proof(cids[size as usize - 1]).await?;
        proof.verify(None)?;
        let proof_bytes = proof.to_json().len();
        results.push((
            size,
            tx.vsize,
            tx.fee_sat,
            proof_bytes,
            broadcast.unwrap_or_default(),
            confirmed,
        ));
        service.shutdown(STOP).await?;
    }
    println!(
        "anchor figures on bcoin regtest (RPC backend, fee rate {fee_rate} sat/vB, one-input segwit v0 transactions)"
    );
    println!(
        "| CIDs | tx vbytes | vB per CID | fee sat | proof bytes (last member) | queue->broadcast | queue->confirmed |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (size, vsize, fee, proof, broadcast, confirmed) in results {
        println!(
            "| {size} | {vsize} | {:.3} | {fee} | {proof} | {:.2} s | {:.2} s |",
            vsize as f64 / f64::from(size),
            broadcast.as_secs_f64(),
            confirmed.as_secs_f64()
        );
    }
    Ok(())
}

//! Retrieval between real `stargate daemon`s on loopback: content added on one node is fetched
//! on another through the DHT over two or more hops (`cat`, the gateway, `pin add`), over the
//! CAR transfer when the provider is a Stargate node; a provider killed mid-transfer is replaced
//! by another; a block nobody has times out with a clear error (504 at the gateway); and Kubo
//! fetches from a daemon and a daemon from Kubo, over Bitswap.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use stargate_protocol::{Block, Codec, HashCode, Version};
use stargate_tests::{
    DaemonOptions, KeyType, KuboOptions, KuboPeer, StargateDaemon, peer_ids, stargate_bin,
    wait_or_kill, wait_until, write_pseudo_random_file,
};

/// A DHT query on loopback under a loaded 2-core machine.
const DHT_TIMEOUT: Duration = Duration::from_secs(90);
/// A whole fetch: the DHT lookup, the dials and the blocks.
const FETCH_TIMEOUT: Duration = Duration::from_secs(180);

/// `stargate cat CID` on `node`; fails unless it prints exactly the bytes of `expected`.
fn cat_matches(node: &StargateDaemon, cid: &str, expected: &std::path::Path) -> Result<()> {
    let out = node.cli_with_timeout(&["cat", cid], FETCH_TIMEOUT)?;
    ensure!(
        out.status.success(),
        "cat {cid} failed: {}",
        out.stderr_str()
    );
    let want = std::fs::read(expected)?;
    ensure!(
        out.stdout.len() == want.len() && out.stdout == want,
        "cat {cid}: {} bytes that differ from the {} added",
        out.stdout.len(),
        want.len()
    );
    Ok(())
}

fn http() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .no_proxy()
        .build()?)
}

#[test]
fn line_of_five_fetches_across_hops_by_cat_gateway_and_pin() -> Result<()> {
    let mut nodes = StargateDaemon::start_line(5)?;
    let (first, last) = (&nodes[0], &nodes[4]);
    // A multi-level DAG (13 leaves under a root) and two smaller files.
    let (big, big_path) = first.add_file((3 << 20) + 12_345, 11)?;
    let (small, small_path) = first.add_file(700_000, 12)?;
    let (pinned, _) = first.add_file(300_000, 13)?;
    last.wait_for_providers(&big, &peer_ids(&[first]), DHT_TIMEOUT)?;

    cat_matches(last, &big, &big_path)?;
    ensure!(
        last.peers()?.contains(&first.peer_id().to_owned()),
        "the far end fetched without dialling the provider"
    );

    // The gateway of the node two hops from the provider.
    let url = format!("{}/ipfs/{small}", nodes[2].gateway_url()?);
    let answer = http()?.get(&url).send()?;
    ensure!(answer.status() == 200, "GET {url}: {}", answer.status());
    let body = answer.bytes()?;
    ensure!(
        body.as_ref() == std::fs::read(&small_path)?,
        "the gateway's bytes differ"
    );

    // `pin add` of a CID only a remote node has fetches and pins it.
    nodes[3].cli_with_timeout(&["pin", "add", &pinned], FETCH_TIMEOUT)?;
    let pins = nodes[3].cli_ok(&["pin", "ls", &pinned])?;
    ensure!(pins.contains("recursive"), "{pins}");

    // What `cat` fetched was cached, unpinned: with the provider gone it is still there.
    nodes[0].kill();
    let last = &nodes[4];
    cat_matches(last, &big, &big_path)?;
    let pins = last.cli(&["pin", "ls", &big])?;
    ensure!(!pins.status.success(), "{big} got pinned by cat");
    Ok(())
}

#[test]
fn a_stargate_provider_two_hops_away_serves_cat_and_the_gateway_over_the_transfer() -> Result<()> {
    let nodes = StargateDaemon::start_line(3)?;
    let (holder, fetcher) = (&nodes[0], &nodes[2]);
    // Multi-MiB files: 256 KiB leaves under a root.
    let (by_cat, by_cat_path) = holder.add_file((8 << 20) + 4321, 41)?;
    let (by_gateway, by_gateway_path) = holder.add_file((6 << 20) + 1234, 42)?;
    for cid in [&by_cat, &by_gateway] {
        fetcher.wait_for_providers(cid, &peer_ids(&[holder]), DHT_TIMEOUT)?;
    }

    cat_matches(fetcher, &by_cat, &by_cat_path)?;
    let after_cat = fetcher.retrieved_blocks("transfer")?;
    // 33 leaves and the root.
    ensure!(after_cat >= 34, "{after_cat} blocks came over the transfer");

    let url = format!("{}/ipfs/{by_gateway}", fetcher.gateway_url()?);
    let answer = http()?.get(&url).send()?;
    ensure!(answer.status() == 200, "GET {url}: {}", answer.status());
    ensure!(
        answer.bytes()?.as_ref() == std::fs::read(&by_gateway_path)?,
        "the gateway's bytes differ"
    );
    let after_gateway = fetcher.retrieved_blocks("transfer")?;
    // 25 leaves and the root.
    ensure!(
        after_gateway >= after_cat + 26,
        "{} blocks of the gateway's file came over the transfer",
        after_gateway - after_cat
    );
    let bitswap = fetcher.retrieved_blocks("bitswap")?;
    ensure!(bitswap == 0, "{bitswap} blocks came over Bitswap");
    // Cached, not pinned.
    for cid in [&by_cat, &by_gateway] {
        let pins = fetcher.cli(&["pin", "ls", cid])?;
        ensure!(!pins.status.success(), "{cid} got pinned by a read");
    }
    Ok(())
}

#[test]
fn a_provider_killed_mid_transfer_is_replaced() -> Result<()> {
    // Providers serve 8 blocks (2 MiB) per second each over Bitswap, and 2 MiB per second over
    // the transfer, so that the fetch lasts seconds.
    let slow = DaemonOptions {
        swarm: "bitswap_blocks_per_sec_per_peer = 8".into(),
        extra_config: "[transfer]\nserve_bytes_per_sec = 2097152\n".into(),
        ..DaemonOptions::default()
    };
    let hub = StargateDaemon::start(DaemonOptions::default())?;
    let mut doomed = StargateDaemon::start(slow.clone())?;
    let survivor = StargateDaemon::start(slow)?;
    let fetcher = StargateDaemon::start(DaemonOptions::default())?;
    for node in [&doomed, &survivor, &fetcher] {
        node.connect(&hub)?;
    }
    let (cid, path) = doomed.add_file(24 << 20, 21)?;
    ensure!(
        survivor.add_file(24 << 20, 21)?.0 == cid,
        "same bytes, same CID"
    );
    fetcher.wait_for_providers(&cid, &peer_ids(&[&doomed, &survivor]), DHT_TIMEOUT)?;

    let mut cat = Command::new(stargate_bin()?)
        .arg("--data-dir")
        .arg(fetcher.dir())
        .args(["cat", &cid])
        .env_remove("STARGATE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting stargate cat")?;
    let received = Arc::new(AtomicUsize::new(0));
    let mut stdout = cat.stdout.take().context("cat's stdout")?;
    let reader = std::thread::spawn({
        let received = Arc::clone(&received);
        move || -> std::io::Result<Vec<u8>> {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = stdout.read(&mut buf)?;
                if n == 0 {
                    return Ok(all);
                }
                all.extend_from_slice(&buf[..n]);
                received.store(all.len(), Ordering::Relaxed);
            }
        }
    });
    // Mid-transfer, while the fetcher takes blocks from both providers.
    let doomed_id = doomed.peer_id().to_owned();
    wait_until(FETCH_TIMEOUT, || {
        received.load(Ordering::Relaxed) >= 2 << 20
            && fetcher.peers().is_ok_and(|p| p.contains(&doomed_id))
    })
    .context("the transfer never got going with both providers")?;
    let at_kill = received.load(Ordering::Relaxed);
    doomed.kill();
    ensure!(
        at_kill < 16 << 20,
        "{at_kill} bytes had arrived when the provider was killed: not mid-transfer"
    );

    let status = wait_or_kill(&mut cat, FETCH_TIMEOUT)?;
    let mut stderr = String::new();
    if let Some(mut e) = cat.stderr.take() {
        e.read_to_string(&mut stderr)?;
    }
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader thread panicked"))??;
    ensure!(status.success(), "cat failed after the kill: {stderr}");
    ensure!(
        got == std::fs::read(&path)?,
        "{} bytes received, not the file",
        got.len()
    );
    eprintln!("provider killed after {at_kill} of {} bytes", got.len());
    Ok(())
}

#[test]
fn a_block_nobody_has_times_out_with_a_clear_error() -> Result<()> {
    let node = StargateDaemon::start(DaemonOptions {
        extra_config: "[routing]\nfetch_timeout_sec = 3\n".into(),
        ..DaemonOptions::default()
    })?;
    let other = StargateDaemon::start(DaemonOptions::default())?;
    node.connect(&other)?;
    let nowhere = Block::encode(
        Version::V1,
        Codec::Raw,
        HashCode::Sha2_256,
        b"held by no one".to_vec(),
    )?;
    let cid = nowhere.cid().to_string();

    let out = node.cli_with_timeout(&["cat", &cid], Duration::from_secs(60))?;
    ensure!(!out.status.success(), "cat of a missing block succeeded");
    let stderr = out.stderr_str();
    ensure!(
        stderr.contains("timed out") && stderr.contains(&cid),
        "unclear error: {stderr}"
    );

    let url = format!("{}/ipfs/{cid}", node.gateway_url()?);
    let answer = http()?.get(&url).send()?;
    ensure!(
        answer.status() == 504,
        "GET {url}: {} instead of 504",
        answer.status()
    );
    // Still serving.
    node.cli_ok(&["id"])?;
    Ok(())
}

#[test]
fn daemon_fetches_what_kubo_added() -> Result<()> {
    let mut kubo = KuboPeer::start()?;
    let node = StargateDaemon::start(DaemonOptions::default())?;
    let path = node.dir().join("from-kubo");
    write_pseudo_random_file(&path, (2 << 20) + 4321, 31)?;
    let added = kubo.add(&path, false)?;
    node.cli_ok(&["swarm", "connect", &kubo.tcp_multiaddr()?])?;
    cat_matches(&node, &added.cid, &path)?;
    // Kubo is no Stargate node: Bitswap only.
    let (bitswap, transfer) = (
        node.retrieved_blocks("bitswap")?,
        node.retrieved_blocks("transfer")?,
    );
    ensure!(
        bitswap >= 9 && transfer == 0,
        "{bitswap} blocks over Bitswap, {transfer} over the transfer"
    );
    Ok(())
}

#[test]
fn kubo_fetches_what_the_daemon_added() -> Result<()> {
    let node = StargateDaemon::start(DaemonOptions::default())?;
    let mut kubo = KuboPeer::start_with(KuboOptions {
        key_type: KeyType::Ed25519,
        ..KuboOptions::default()
    })?;
    let (cid, path) = node.add_file((2 << 20) + 999, 32)?;
    kubo.connect(&node.multiaddr()?)?;
    let dest = node.dir().join("downloaded-by-kubo");
    kubo.download(&cid, &dest, FETCH_TIMEOUT)?;
    ensure!(
        std::fs::read(&dest)? == std::fs::read(&path)?,
        "Kubo downloaded other bytes"
    );
    Ok(())
}

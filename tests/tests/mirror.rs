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

/// `b` is stopped while `a` announces `n` uploads, then started again and reconnected; the
/// time until it holds them all.
fn catch_up_after_a_stop(extra: &str, n: u64) -> Result<(StargateDaemon, Duration)> {
    let mut nodes = line(2, extra)?;
    let mut b = nodes.pop().context("two nodes")?;
    let a = nodes.pop().context("two nodes")?;
    b.stop()?;
    let cids = a.add_announced_many(n, 1000, 2048, "contract")?;
    let b = b.restart()?;
    let started = std::time::Instant::now();
    b.connect(&a)?;
    b.wait_mirrored(&cids, MIRROR_TIMEOUT)?;
    Ok((b, started.elapsed()))
}

#[test]
fn a_returning_node_catches_up_through_the_sync_protocol() -> Result<()> {
    let (b, took) = catch_up_after_a_stop("", 200)?;
    ensure!(
        b.metric("stargate_sync_entries_learned_total")? >= 200.0,
        "not learned by reconciliation"
    );
    // Nothing came through a manifest: the sync protocol made it whole.
    ensure!(b.metric("ipfs_mirror_manifests_read_total")? == 0.0);
    ensure!(took < Duration::from_secs(30), "took {took:?}");
    eprintln!("200 uploads caught up through the sync protocol in {took:?}");
    Ok(())
}

#[test]
fn a_returning_node_catches_up_through_manifests_without_sync() -> Result<()> {
    let (b, took) = catch_up_after_a_stop("sync_enabled = false", 200)?;
    ensure!(b.metric("ipfs_mirror_manifests_read_total")? >= 1.0);
    ensure!(b.metric("stargate_sync_entries_learned_total")? == 0.0);
    eprintln!("200 uploads caught up through manifests in {took:?}");
    Ok(())
}

#[test]
fn a_restart_in_the_middle_of_downloads_resumes_them() -> Result<()> {
    let mut nodes = line(2, "mirror_concurrency = 1")?.into_iter();
    let a = nodes.next().context("a")?;
    let mut b = nodes.next().context("b")?;
    let n = 30;
    let cids = a.add_announced_many(n, 2000, 700 * 1024, "proposal")?;
    let stored_before = stargate_tests::wait_for(MIRROR_TIMEOUT, || {
        let stored = b.mirror_status().ok()?["stored"].as_u64()?;
        (stored >= 2).then_some(stored)
    })?;
    b.kill();
    ensure!(
        stored_before < n,
        "all stored before the restart: the test proves nothing"
    );
    let b = b.restart()?;
    b.connect(&a)?;
    b.wait_mirrored(&cids, MIRROR_TIMEOUT)?;
    // What was stored before is not fetched again.
    let fetched_after = b.metric("ipfs_mirror_fetch_duration_seconds_count")?;
    ensure!(
        fetched_after <= (n - stored_before) as f64 && fetched_after >= 1.0,
        "{fetched_after} downloads after the restart, {stored_before} of {n} stored before"
    );
    ensure!(b.log().contains("resume"), "no resume in the log");
    Ok(())
}

#[test]
fn a_backend_publishing_through_pubsub_pub_is_an_own_upload() -> Result<()> {
    use base64::Engine as _;
    let nodes = line(2, "")?;
    let (a, b) = (&nodes[0], &nodes[1]);
    // What an unchanged backend does: `add`, then `pubsub/pub` of the guide's JSON.
    let (cid, _) = a.add_file(5000, 7)?;
    let json = format!(r#"{{"cid":"{cid}","type":"contract","metadata":{{"contract_id":"b1"}}}}"#);
    let topic = format!(
        "u{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("stargate-uploads")
    );
    let part = reqwest::blocking::multipart::Part::bytes(json.into_bytes()).file_name("data");
    let res = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?
        .post(format!(
            "http://{}/api/v0/pubsub/pub?arg={topic}",
            a.api_addr()?
        ))
        .multipart(reqwest::blocking::multipart::Form::new().part("file", part))
        .send()?;
    ensure!(res.status().is_success(), "pubsub/pub: {}", res.status());

    // Recorded as a's own upload (stored, in its manifest) and mirrored by b.
    stargate_tests::wait_until(MIRROR_TIMEOUT, || {
        a.mirror_state(&cid)
            .is_ok_and(|s| s.as_deref() == Some("stored"))
    })
    .context("a did not record its own upload")?;
    let own = a.mirror_records(&format!("from={}", a.peer_id()))?;
    ensure!(
        own.len() == 1 && own[0]["metadata"]["contract_id"] == "b1",
        "{own:?}"
    );
    b.wait_mirrored(std::slice::from_ref(&cid), MIRROR_TIMEOUT)?;
    Ok(())
}

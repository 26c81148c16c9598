//! Stego results between real daemons on loopback: a signed approval on one node is pinned and
//! announced, and every node stores both CIDs and makes exactly one ingestion record, however
//! often it is announced; the platform pulls and acks them with the ingest token. Bad callbacks
//! and bad tokens are refused and counted, and neither secret ever reaches a log. A node that
//! was away learns of an approval through the sync protocol, or through manifests without it;
//! an approval made with no peer around is announced once one comes.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use stargate_protocol::stego::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use stargate_tests::{
    INGEST_TOKEN, STEGO_SECRET, StargateDaemon, callback_body, sign_callback, stego_options,
    unix_now, wait_for, wait_until,
};

/// Gossip mesh, fetch and pin on a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `n` daemons with `extra` `[ipfs]` keys, connected in a line, each seeing its
/// neighbours on the stego topic.
fn line(n: usize, extra: &str) -> Result<Vec<StargateDaemon>> {
    let nodes = (0..n)
        .map(|_| StargateDaemon::start(stego_options(extra)))
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
        wait_for(TIMEOUT, || {
            let status = node.mirror_status().ok()?;
            let on_topic = status["topics"][1]["peers"].as_array()?.clone();
            neighbours
                .iter()
                .all(|p| on_topic.iter().any(|q| q == p))
                .then_some(())
        })
        .with_context(|| {
            format!(
                "{} never saw {neighbours:?} on the stego topic",
                node.peer_id()
            )
        })?;
    }
    Ok(nodes)
}

fn no_secret_in_the_log(node: &StargateDaemon) -> Result<()> {
    let log = node.log();
    ensure!(!log.is_empty(), "no daemon log");
    ensure!(
        !log.contains(INGEST_TOKEN),
        "the ingest token is in the log"
    );
    ensure!(
        !log.contains(STEGO_SECRET),
        "the callback secret is in the log"
    );
    Ok(())
}

#[test]
fn an_approval_becomes_one_record_on_every_node_however_often_announced() -> Result<()> {
    let nodes = line(4, "")?;
    let a = &nodes[0];
    let (image, _) = a.add_file(200 * 1024, 1)?;
    let (payload, _) = a.add_file(3000, 2)?;
    let body = callback_body(&image, &payload, "approved", &json!({"wish_id": "w-42"}));
    let (code, answer) = a.post_signed_callback(&body)?;
    ensure!(code == 202, "{code} {answer}");
    ensure!(answer["status"] == "approved", "{answer}");

    for node in &nodes {
        let records = wait_for(TIMEOUT, || {
            let records = node.ingestion_records("").ok()?;
            (!records.is_empty()).then_some(records)
        })
        .with_context(|| format!("no ingestion record on {}", node.peer_id()))?;
        ensure!(records.len() == 1, "{records:?}");
        let r = &records[0];
        ensure!(
            r["image_cid"] == image.as_str() && r["payload_cid"] == payload.as_str(),
            "{r}"
        );
        ensure!(r["publisher"] == a.peer_id(), "{r}");
        ensure!(
            r["metadata"]["wish_id"] == "w-42" && r["consumed"] == false,
            "{r}"
        );
        let pins = node.cli_ok(&["pin", "ls", "--type", "recursive"])?;
        ensure!(
            pins.contains(&image) && pins.contains(&payload),
            "not pinned: {pins}"
        );
    }
    ensure!(a.metric("stego_announced_total")? == 1.0);

    // Approved again on another node: announced a second time, still one record everywhere.
    let c = &nodes[2];
    let (code, answer) = c.post_signed_callback(&body)?;
    ensure!(code == 202, "{code} {answer}");
    for node in &nodes {
        wait_for(TIMEOUT, || {
            (node.metric("stego_announcements_received_total").ok()? >= 2.0).then_some(())
        })
        .with_context(|| format!("{} did not hear the second announcement", node.peer_id()))?;
    }
    ensure!(c.metric("stego_announced_total")? == 1.0);
    for node in &nodes {
        ensure!(node.ingestion_records("")?.len() == 1);
        ensure!(node.metric("ingest_records_made_total")? == 1.0);
    }

    // The platform acks; the record is no longer pending, and stays listed as consumed.
    let d = &nodes[3];
    let id = d.ingestion_records("")?[0]["id"].as_u64().context("id")?;
    let (code, answer) = d.ack_ingestion(id, INGEST_TOKEN)?;
    ensure!(code == 200, "{code} {answer}");
    ensure!(d.ingestion_records("pending=true")?.is_empty());
    ensure!(d.ingestion_records("")?[0]["consumed"] == true);
    ensure!(d.metric("ingest_records_pending")? == 0.0);
    let listed = d.cli_ok(&["ingest", "ls"])?;
    ensure!(
        listed.contains(&payload) && listed.contains("consumed"),
        "{listed}"
    );
    ensure!(d.cli_ok(&["ingest", "ls", "--pending"])?.trim().is_empty());
    let status = d.mirror_status()?;
    let stego = &status["stego"];
    ensure!(stego["stored"] == 1 && stego["records"] == 1, "{status}");
    ensure!(
        stego["records_pending"] == 0 && stego["waiting"] == 0,
        "{status}"
    );
    let text = d.cli_ok(&["mirror", "status"])?;
    ensure!(
        text.contains("ingestion records: 1 made, 0 pending"),
        "{text}"
    );

    // The pull API without the token, or with a wrong one.
    for token in [None, Some("wrong-token")] {
        let (code, answer) = d.ingestions("", token)?;
        ensure!(code == 401, "{token:?}: {code} {answer}");
    }
    let (code, _) = d.ack_ingestion(id, "wrong-token")?;
    ensure!(code == 401);
    ensure!(d.metric("ingest_requests_refused_total{reason=\"unauthorized\"}")? == 3.0);
    for node in &nodes {
        no_secret_in_the_log(node)?;
    }
    Ok(())
}

#[test]
fn bad_callbacks_are_refused_counted_and_change_nothing() -> Result<()> {
    let a = StargateDaemon::start(stego_options(""))?;
    let (image, _) = a.add_file(1000, 3)?;
    let (payload, _) = a.add_file(1000, 4)?;
    let body = callback_body(&image, &payload, "approved", &json!({}));
    let now = unix_now();
    let (ts, sig) = sign_callback(STEGO_SECRET, now, &body)?;
    let (_, wrong) = sign_callback("not-the-secret", now, &body)?;
    let (old_ts, old_sig) = sign_callback(STEGO_SECRET, now - 301, &body)?;
    let changed = body.replace("approved", "rejected");
    let malformed = r#"{"image_cid": "nope", "verdict": "approved"}"#;
    let (bad_ts, bad_sig) = sign_callback(STEGO_SECRET, now, malformed)?;
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16, &'a str);
    let cases: [Case; 5] = [
        (vec![], &body, 401, "missing_signature"),
        (
            vec![(TIMESTAMP_HEADER, &ts), (SIGNATURE_HEADER, &wrong)],
            &body,
            401,
            "bad_signature",
        ),
        (
            vec![(TIMESTAMP_HEADER, &old_ts), (SIGNATURE_HEADER, &old_sig)],
            &body,
            401,
            "stale",
        ),
        (
            vec![(TIMESTAMP_HEADER, &ts), (SIGNATURE_HEADER, &sig)],
            &changed,
            401,
            "bad_signature",
        ),
        (
            vec![(TIMESTAMP_HEADER, &bad_ts), (SIGNATURE_HEADER, &bad_sig)],
            malformed,
            400,
            "malformed_json",
        ),
    ];
    for (headers, sent, status, reason) in &cases {
        let (code, answer) = a.post_callback(headers, sent)?;
        ensure!(code == *status, "{reason}: {code} {answer}");
        ensure!(answer["error"].is_string(), "{reason}: {answer}");
    }
    for reason in ["missing_signature", "stale", "malformed_json"] {
        let series = format!("stego_callbacks_refused_total{{reason=\"{reason}\"}}");
        ensure!(a.metric(&series)? == 1.0, "{series}");
    }
    ensure!(a.metric("stego_callbacks_refused_total{reason=\"bad_signature\"}")? == 2.0);
    // Nothing recorded, pinned or announced.
    ensure!(a.ingestion_records("")?.is_empty());
    ensure!(a.metric("stego_announced_total")? == 0.0);
    let uploads: f64 = ["waiting", "stored", "rejected", "failed"]
        .iter()
        .map(|s| a.metric(&format!("stego_uploads_{s}")))
        .sum::<Result<f64>>()?;
    ensure!(uploads == 0.0, "{uploads} stego uploads recorded");
    let pins = a.cli_ok(&["pin", "ls", "--type", "recursive"])?;
    ensure!(
        pins.contains(&image),
        "the added file is pinned by add: {pins}"
    );

    // The one good callback, then the same again: a replay.
    let good = vec![
        (TIMESTAMP_HEADER, ts.as_str()),
        (SIGNATURE_HEADER, sig.as_str()),
    ];
    let (code, answer) = a.post_callback(&good, &body)?;
    ensure!(code == 202, "{code} {answer}");
    let (code, answer) = a.post_callback(&good, &body)?;
    ensure!(code == 401, "a replay: {code} {answer}");
    ensure!(a.metric("stego_callbacks_refused_total{reason=\"replayed\"}")? == 1.0);
    let refused = &a.mirror_status()?["stego"]["callbacks_refused"];
    ensure!(
        refused["bad_signature"] == 2 && refused["replayed"] == 1,
        "{refused}"
    );
    wait_for(TIMEOUT, || {
        (a.ingestion_records("").ok()?.len() == 1).then_some(())
    })?;
    no_secret_in_the_log(&a)
}

#[test]
fn a_payload_held_by_a_stopped_node_is_retried_and_recorded_across_a_restart() -> Result<()> {
    let mut nodes = line(2, "")?.into_iter();
    let mut a = nodes.next().context("a")?;
    let b = nodes.next().context("b")?;
    let (image, _) = b.add_file(2000, 5)?;
    let (payload, _) = a.add_file(2000, 6)?;
    a.stop()?;
    let body = callback_body(&image, &payload, "approved", &json!({}));
    let (code, answer) = b.post_signed_callback(&body)?;
    ensure!(code == 202, "{code} {answer}");
    wait_for(TIMEOUT, || {
        let errors: f64 = b
            .metrics()
            .ok()?
            .lines()
            .filter(|l| l.starts_with("ipfs_mirror_errors_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (errors >= 1.0).then_some(())
    })
    .context("the payload's fetch never failed")?;
    ensure!(
        b.ingestion_records("")?.is_empty(),
        "a record without the payload"
    );
    let b = b.restart()?;
    let a = a.restart()?;
    a.connect(&b)?;
    let records = wait_for(TIMEOUT, || {
        let records = b.ingestion_records("").ok()?;
        (!records.is_empty()).then_some(records)
    })
    .context("no record once the payload's holder returned")?;
    ensure!(records.len() == 1 && records[0]["payload_cid"] == payload.as_str());
    let value: Value = records[0].clone();
    ensure!(value["publisher"] == b.peer_id(), "{value}");
    no_secret_in_the_log(&b)
}

#[test]
fn a_backend_publishing_through_pubsub_pub_makes_records_here_and_there() -> Result<()> {
    use base64::Engine as _;
    let nodes = line(2, "")?;
    let (a, b) = (&nodes[0], &nodes[1]);
    // What an unchanged backend does: `add` both, then `pubsub/pub` of the stego JSON.
    let (image, _) = a.add_file(4000, 8)?;
    let (payload, _) = a.add_file(500, 9)?;
    let message = json!({"cid": image, "payload": payload, "type": "stego", "metadata": {"w": 1}});
    let topic = format!(
        "u{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("stargate-stego")
    );
    let part = reqwest::blocking::multipart::Part::bytes(message.to_string().into_bytes())
        .file_name("data");
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
    for node in [a, b] {
        let records = wait_for(TIMEOUT, || {
            let records = node.ingestion_records("").ok()?;
            (!records.is_empty()).then_some(records)
        })
        .with_context(|| format!("no record on {}", node.peer_id()))?;
        ensure!(
            records.len() == 1 && records[0]["publisher"] == a.peer_id(),
            "{records:?}"
        );
    }
    ensure!(a.metric("ingest_records_made_total")? == 1.0);
    Ok(())
}

/// Approves a stego result held on `a` (an image and a payload added there); both CIDs.
fn approve_on(a: &StargateDaemon, seed: u64) -> Result<(String, String, String)> {
    let (image, _) = a.add_file(20_000, seed)?;
    let (payload, _) = a.add_file(700, seed + 1)?;
    let body = callback_body(&image, &payload, "approved", &json!({"wish_id": seed}));
    let (code, answer) = a.post_signed_callback(&body)?;
    ensure!(code == 202, "{code} {answer}");
    Ok((image, payload, body))
}

/// Waits until `node` holds exactly one ingestion record, of `payload`.
fn one_record(node: &StargateDaemon, payload: &str) -> Result<()> {
    let records = wait_for(TIMEOUT, || {
        let records = node.ingestion_records("").ok()?;
        (!records.is_empty()).then_some(records)
    })
    .with_context(|| format!("no ingestion record on {}", node.peer_id()))?;
    ensure!(
        records.len() == 1 && records[0]["payload_cid"] == payload,
        "{}: {records:?}",
        node.peer_id()
    );
    Ok(())
}

/// `a` and `c` connected, `b` connected to `a` then stopped: `b` is the node that was away.
fn two_and_one_away(extra: &str) -> Result<(StargateDaemon, StargateDaemon, StargateDaemon)> {
    let mut nodes = line(3, extra)?.into_iter();
    let (mut b, a, c) = (
        nodes.next().context("b")?,
        nodes.next().context("a")?,
        nodes.next().context("c")?,
    );
    b.stop()?;
    Ok((a, b, c))
}

#[test]
fn a_node_away_during_an_approval_learns_it_through_the_sync_protocol() -> Result<()> {
    let (a, b, c) = two_and_one_away("")?;
    let (_, payload, _) = approve_on(&a, 20)?;
    one_record(&c, &payload)?;
    let b = b.restart()?;
    b.connect(&a)?;
    one_record(&b, &payload)?;
    ensure!(
        b.metric("stargate_sync_entries_learned_total")? >= 1.0,
        "not learned by reconciliation"
    );
    ensure!(b.metric("stego_announcements_received_total")? == 0.0);
    ensure!(b.metric("ipfs_mirror_manifests_read_total")? == 0.0);
    Ok(())
}

#[test]
fn approved_twice_and_replayed_through_manifests_is_one_record_per_node() -> Result<()> {
    let (a, b, c) = two_and_one_away("sync_enabled = false")?;
    // Approved on a, then the same result on c: announced by two nodes.
    let (_, payload, body) = approve_on(&a, 30)?;
    one_record(&c, &payload)?;
    let (code, answer) = c.post_signed_callback(&body)?;
    ensure!(code == 202, "{code} {answer}");
    wait_until(TIMEOUT, || {
        a.metric("stego_announcements_received_total")
            .is_ok_and(|n| n >= 1.0)
    })
    .context("a did not hear c's announcement")?;
    // b was away: it learns of it from manifests only.
    let read_before: Vec<f64> = [&a, &c]
        .iter()
        .map(|n| n.metric("ipfs_mirror_manifests_read_total"))
        .collect::<Result<_>>()?;
    let b = b.restart()?;
    b.connect(&a)?;
    one_record(&b, &payload)?;
    ensure!(b.metric("ipfs_mirror_manifests_read_total")? >= 1.0);
    ensure!(b.metric("stargate_sync_entries_learned_total")? == 0.0);
    // a and c read b's manifest, which lists it again: nothing more is made anywhere.
    for (node, before) in [&a, &c].into_iter().zip(read_before) {
        wait_until(TIMEOUT, || {
            node.metric("ipfs_mirror_manifests_read_total")
                .is_ok_and(|n| n > before)
        })
        .with_context(|| format!("{} read no manifest again", node.peer_id()))?;
    }
    for node in [&a, &b, &c] {
        one_record(node, &payload)?;
        ensure!(node.metric("ingest_records_made_total")? == 1.0);
        ensure!(node.metric("stego_uploads_stored")? == 1.0);
    }
    Ok(())
}

#[test]
fn an_approval_made_with_no_peer_is_announced_once_one_comes() -> Result<()> {
    // No sync protocol, and a publishes no manifest: only the announcement can carry it.
    let a = StargateDaemon::start(stego_options(
        "sync_enabled = false\nmirror_upload_enabled = false",
    ))?;
    let (_, payload, _) = approve_on(&a, 40)?;
    one_record(&a, &payload)?;
    wait_until(TIMEOUT, || a.log().contains("announced again later"))
        .context("the announcement did not fail for want of peers")?;
    ensure!(
        a.metric("stego_announced_total")? == 0.0,
        "announced to no one"
    );
    // Kept across a restart.
    let a = a.restart()?;
    let b = StargateDaemon::start(stego_options("sync_enabled = false"))?;
    b.connect(&a)?;
    one_record(&b, &payload)?;
    ensure!(a.metric("stego_announced_total")? == 1.0);
    ensure!(b.metric("stego_announcements_received_total")? >= 1.0);
    ensure!(b.metric("ipfs_mirror_manifests_read_total")? == 0.0);
    Ok(())
}

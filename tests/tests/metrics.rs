//! The daemon's `/metrics` as Prometheus reads it: two daemons on loopback are scraped, do
//! work (an add on one, a cat of it on the other, a pubsub announcement), and are scraped
//! again; every scrape passes `promtool check metrics` (Debian `prometheus`), and the counters
//! of that work moved: transport bytes in and out, store blocks and bytes, retrieval bytes,
//! pubsub messages. `stats/bw` answers from the same transport counters.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use stargate_tests::{DaemonOptions, StargateDaemon, wait_until};

/// The topic the mirror of every daemon is on by default.
const TOPIC: &str = "stargate-uploads";
/// Longest wait for a subscription to be seen, a message to arrive or a fetch to finish.
const WAIT: Duration = Duration::from_secs(60);

fn http() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()?)
}

/// Runs `promtool check metrics` on `text`; fails with what promtool said, or loudly when it is
/// not installed.
fn promtool_check(text: &str, what: &str) -> Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "cannot run promtool (Debian package prometheus): run scripts/install-test-deps.sh",
        )?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on {what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    Ok(())
}

/// The sum of the samples of `text` whose name and labels begin with `series` (a name alone
/// matches only unlabelled samples; `name{` matches every labelled one). Fails when there is
/// none: every metric asserted on here is exported from the start.
fn sample(text: &str, series: &str) -> Result<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let matches = if series.ends_with('{') || series.ends_with('"') {
            key.starts_with(series)
        } else {
            key == series
        };
        if matches {
            let value: f64 = value
                .parse()
                .with_context(|| format!("{line}: no number"))?;
            *found.get_or_insert(0.0) += value;
        }
    }
    found.with_context(|| format!("no sample {series} in the scrape"))
}

fn scrape(node: &StargateDaemon, what: &str) -> Result<String> {
    let text = node.metrics()?;
    promtool_check(&text, what)?;
    Ok(text)
}

/// `stats/bw` of `node`: (TotalIn, TotalOut).
fn stats_bw(node: &StargateDaemon) -> Result<(u64, u64)> {
    let res = http()?
        .post(format!("{}/api/v0/stats/bw", node.api_url()?))
        .send()?;
    ensure!(res.status() == 200, "stats/bw: {}", res.status());
    let bw: Value = res.json()?;
    for rate in ["RateIn", "RateOut"] {
        ensure!(bw[rate].as_f64().is_some(), "stats/bw without {rate}: {bw}");
    }
    Ok((
        bw["TotalIn"].as_u64().context("stats/bw: TotalIn")?,
        bw["TotalOut"].as_u64().context("stats/bw: TotalOut")?,
    ))
}

fn topic_peers(node: &StargateDaemon) -> Result<Vec<String>> {
    let res = http()?
        .post(format!(
            "{}/api/v0/pubsub/peers?arg=u{}",
            node.api_url()?,
            URL_SAFE_NO_PAD.encode(TOPIC)
        ))
        .send()?;
    let body: Value = res.json()?;
    Ok(body["Strings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

fn publish(node: &StargateDaemon, data: &str) -> Result<()> {
    let part =
        reqwest::blocking::multipart::Part::bytes(data.as_bytes().to_vec()).file_name("data");
    let res = http()?
        .post(format!(
            "{}/api/v0/pubsub/pub?arg=u{}",
            node.api_url()?,
            URL_SAFE_NO_PAD.encode(TOPIC)
        ))
        .multipart(reqwest::blocking::multipart::Form::new().part("file", part))
        .send()?;
    ensure!(res.status() == 200, "pubsub/pub: {}", res.status());
    Ok(())
}

#[test]
fn metrics_pass_promtool_and_move_with_the_work() -> Result<()> {
    let a = StargateDaemon::start(DaemonOptions::default())?;
    let b = StargateDaemon::start(DaemonOptions::default())?;
    let (a0, b0) = (scrape(&a, "a at start")?, scrape(&b, "b at start")?);
    for text in [&a0, &b0] {
        for present in [
            "stargate_dht_provides_pending{lane=\"added\"}",
            "stargate_dht_provides_pending{lane=\"mirrored\"}",
            "stargate_dht_provides_in_flight",
            "stargate_store_disk_bytes",
        ] {
            sample(text, present)?;
        }
    }

    b.connect(&a)?;
    let (cid, path) = a.add_file((1 << 20) + 4321, 7)?;
    let added = std::fs::metadata(&path)?.len();
    let out = b.cli_with_timeout(&["cat", &cid], WAIT)?;
    ensure!(
        out.status.success() && out.stdout == std::fs::read(&path)?,
        "cat {cid} on b: {}",
        out.stderr_str()
    );
    wait_until(WAIT, || {
        topic_peers(&a).is_ok_and(|p| p.iter().any(|p| p == b.peer_id()))
    })
    .context("a never saw b on the mirror topic")?;
    let received = |node: &StargateDaemon| {
        node.metrics()
            .and_then(|t| sample(&t, "stargate_pubsub_messages_received_total{"))
            .unwrap_or(0.0)
    };
    let before = received(&b);
    publish(
        &a,
        &format!(r#"{{"cid":"{cid}","type":"contract","metadata":{{}}}}"#),
    )?;
    wait_until(WAIT, || received(&b) > before).context("b never counted the announcement")?;

    let (a1, b1) = (scrape(&a, "a after work")?, scrape(&b, "b after work")?);
    // A labelled family has no sample before its first use: that counts as 0.
    let moved = |t0: &str, t1: &str, series: &str, by: f64| -> Result<()> {
        let (v0, v1) = (sample(t0, series).unwrap_or(0.0), sample(t1, series)?);
        ensure!(
            v1 - v0 >= by,
            "{series}: {v0} -> {v1}, expected at least +{by}"
        );
        Ok(())
    };
    let file = added as f64;
    // The file crossed from a to b: its bytes are in a's out and b's in.
    moved(
        &a0,
        &a1,
        "stargate_transport_bytes_total{direction=\"out\"}",
        file,
    )?;
    moved(
        &b0,
        &b1,
        "stargate_transport_bytes_total{direction=\"in\"}",
        file,
    )?;
    moved(
        &a0,
        &a1,
        "stargate_transport_bytes_total{direction=\"in\"}",
        1.0,
    )?;
    moved(
        &b0,
        &b1,
        "stargate_transport_bytes_total{direction=\"out\"}",
        1.0,
    )?;
    // Five 256 KiB leaves and a root, on a; b keeps what it fetched.
    moved(&a0, &a1, "stargate_store_blocks", 6.0)?;
    moved(&a0, &a1, "stargate_store_block_bytes", file)?;
    moved(&b0, &b1, "stargate_store_blocks", 6.0)?;
    moved(&b0, &b1, "stargate_retrieval_bytes_total{", file)?;
    moved(&a0, &a1, "stargate_pubsub_messages_published_total{", 1.0)?;

    let (total_in, total_out) = stats_bw(&b)?;
    let scraped_in = sample(&b1, "stargate_transport_bytes_total{direction=\"in\"}")?;
    ensure!(
        total_in as f64 >= scraped_in && total_out > 0,
        "stats/bw on b: in {total_in} (scraped {scraped_in} before), out {total_out}"
    );
    Ok(())
}

//! Anchoring through a real `stargate daemon` configured by `STARGATE_*` variables against the
//! regtest stack: the CLI's `wallet`, `anchor`, `anchor status` and `anchor proof`, the proof
//! accepted by `stargate verify` and served by `GET /api/v1/anchors/<cid>`, `POST
//! /api/v1/anchors` refusing wrong keys and bad CIDs (counted in /metrics, nothing queued), and
//! a node without a chain backend saying so.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use stargate_tests::{
    BURN_ADDRESS, DaemonOptions, Regtest, StargateDaemon, StargateNode, wait_for, write_text_file,
};

const WAIT: Duration = Duration::from_secs(120);

fn http() -> Result<Client> {
    Ok(Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn post_anchors(
    http: &Client,
    base: &str,
    key: Option<&str>,
    body: &Value,
) -> Result<(u16, Value)> {
    let mut req = http.post(format!("{base}/api/v1/anchors")).json(body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let res = req.send()?;
    let status = res.status().as_u16();
    Ok((status, res.json().unwrap_or(Value::Null)))
}

/// The value of the first sample of `metric` with these labels (`name{labels} value`).
fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

#[test]
fn anchoring_through_the_daemon() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let regtest = rt.block_on(Regtest::start_with_segwit())?;
    let api_key = format!("stargate-api-{}", rand::random::<u64>());
    let env = [
        ("STARGATE_BITCOIN_NETWORK", "regtest".to_owned()),
        ("STARGATE_CHAIN_RPC_URL", regtest.rpc_url()),
        ("STARGATE_CHAIN_RPC_USER", regtest.rpc_user().to_owned()),
        (
            "STARGATE_CHAIN_RPC_PASSWORD",
            regtest.rpc_password().to_owned(),
        ),
        ("STARGATE_CHAIN_ANCHOR_BATCH_INTERVAL_SEC", "1".to_owned()),
        ("STARGATE_CHAIN_POLL_INTERVAL_SEC", "1".to_owned()),
        ("STARGATE_CHAIN_REBROADCAST_AFTER_SEC", "2".to_owned()),
        ("STARGATE_API_KEY", api_key.clone()),
    ];
    let mut daemon = StargateDaemon::start(DaemonOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        ..DaemonOptions::default()
    })?;
    let log = daemon.log();
    ensure!(
        !log.contains(regtest.rpc_password()) && !log.contains(&api_key),
        "a secret reached the log:\n{log}"
    );

    // Fund the wallet: one coinbase, matured.
    let address = daemon.fund_wallet(&rt, &regtest, WAIT)?;
    ensure!(address.starts_with("bcrt1"), "{address}");

    // Content of our own, anchored from the CLI.
    let work = tempfile::tempdir()?;
    let file = work.path().join("proposal.md");
    write_text_file(&file, 10_000, 7)?;
    let path = file.to_str().context("temp path is not UTF-8")?;
    let cid = daemon.cli_ok(&["add", "-Q", path])?.trim().to_owned();
    let queued = daemon.cli_ok(&["anchor", &cid])?;
    ensure!(queued.starts_with(&format!("{cid} ")), "{queued}");

    // POST /api/v1/anchors on the gateway: wrong and missing keys are refused, a bad CID makes
    // the whole request fail; none of it queues anything.
    let http = http()?;
    let gateway = daemon.gateway_url()?;
    let other_file = work.path().join("other.md");
    write_text_file(&other_file, 1_000, 8)?;
    let other_path = other_file.to_str().context("temp path is not UTF-8")?;
    let other = daemon.cli_ok(&["add", "-Q", "-n", "--cid-version", "1", other_path])?;
    let other = other.trim();
    let body = json!({ "cids": [other] });
    let (status, answer) = post_anchors(&http, &gateway, Some("wrong"), &body)?;
    ensure!(status == 401, "{status} {answer}");
    ensure!(answer["error"] == "Invalid API key", "{answer}");
    let (status, _) = post_anchors(&http, &gateway, None, &body)?;
    ensure!(status == 401, "{status}");
    let (status, answer) = post_anchors(
        &http,
        &gateway,
        Some(&api_key),
        &json!({ "cids": [other, "not-a-cid"] }),
    )?;
    ensure!(status == 400, "{status} {answer}");
    let untouched = daemon.cli_ok(&["anchor", "status", other])?;
    ensure!(
        untouched.contains(&format!("{other} not anchored")),
        "{untouched}"
    );
    let res = http
        .get(format!("{gateway}/api/v1/anchors/{other}"))
        .send()?;
    ensure!(res.status() == 404, "{}", res.status());
    let answer: Value = res.json()?;
    ensure!(answer["status"] == "none", "{answer}");
    let res = http.get(format!("{gateway}/api/v1/anchors/xyz")).send()?;
    ensure!(res.status() == 400, "{}", res.status());

    // Mine until the CID is confirmed, watching its states on the way.
    let mut seen = Vec::new();
    let confirmed = wait_for(WAIT, || {
        let out = daemon.cli_ok(&["anchor", "status", &cid]).ok()?;
        let line = out.lines().find(|l| l.starts_with(&cid))?.to_owned();
        let state = line.split_whitespace().nth(1)?.to_owned();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        match state.as_str() {
            "confirmed" => Some(Ok(line)),
            "failed:" => Some(Err(anyhow::anyhow!("{line}"))),
            "broadcast" => {
                rt.block_on(regtest.mine_blocks(1, BURN_ADDRESS)).ok()?;
                None
            }
            _ => None,
        }
    })
    .with_context(|| format!("never confirmed (states {seen:?}); log:\n{}", daemon.log()))??;
    ensure!(
        seen.iter().any(|s| s == "broadcast"),
        "states seen: {seen:?}"
    );
    ensure!(confirmed.contains(" depth "), "{confirmed}");
    let summary = daemon.cli_ok(&["anchor", "status"])?;
    ensure!(summary.contains("network regtest"), "{summary}");
    ensure!(summary.contains("confirmed 1,"), "{summary}");

    // The proof from the CLI, checked offline, and the same proof over HTTP.
    let proof = daemon.cli_ok(&["anchor", "proof", &cid])?;
    let proof_file = work.path().join("proof.json");
    std::fs::write(&proof_file, &proof)?;
    let verified = daemon.cli_ok(&["verify", proof_file.to_str().context("UTF-8")?])?;
    ensure!(verified.starts_with(&format!("ok: {cid} ")), "{verified}");
    let res = http.get(format!("{gateway}/api/v1/anchors/{cid}")).send()?;
    ensure!(res.status() == 200, "{}", res.status());
    ensure!(
        res.text()? == proof.trim(),
        "the HTTP proof differs from the CLI's"
    );

    // The right key queues.
    let (status, answer) = post_anchors(&http, &gateway, Some(&api_key), &json!({ "cid": other }))?;
    ensure!(status == 202, "{status} {answer}");
    ensure!(answer["anchors"][0]["cid"] == other, "{answer}");
    ensure!(answer["anchors"][0]["status"] == "queued", "{answer}");
    let res = http
        .get(format!("{gateway}/api/v1/anchors/{other}"))
        .send()?;
    ensure!(res.status() == 404, "{}", res.status());

    // Metrics on the same registry as the rest.
    let api = daemon.api_url()?;
    let text = wait_for(WAIT, || {
        let text = http
            .get(format!("{api}/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        (metric(&text, "anchor_cids{state=\"confirmed\"}") == Some(1.0)).then_some(text)
    })
    .context("anchor_cids never showed the confirmed CID")?;
    ensure!(
        metric(&text, "anchor_rejections_total{reason=\"unauthorized\"}") == Some(2.0),
        "{text}"
    );
    ensure!(
        metric(&text, "anchor_rejections_total{reason=\"bad_request\"}") == Some(2.0),
        "{text}"
    );
    ensure!(metric(&text, "block_sync_lag_blocks").is_some(), "{text}");

    daemon.stop()?;
    let log = daemon.log();
    if log.contains(regtest.rpc_password()) || log.contains(&api_key) {
        bail!("a secret reached the log:\n{log}");
    }
    drop(regtest);
    Ok(())
}

#[test]
fn without_a_chain_backend_anchoring_says_it_is_off() -> Result<()> {
    let cid = "bafkqaaa";
    // No daemon at all.
    let node = StargateNode::new()?;
    let err = node.cli_err(&["anchor", cid])?;
    ensure!(err.contains("anchoring is off"), "{err}");

    // A daemon without [chain]: everything else runs, anchoring answers that it is off.
    let mut daemon = StargateDaemon::start(DaemonOptions {
        env: vec![("STARGATE_API_KEY".to_owned(), "k".to_owned())],
        ..DaemonOptions::default()
    })?;
    ensure!(
        daemon.log().contains("anchoring is off"),
        "{}",
        daemon.log()
    );
    let out = daemon.cli(&["anchor", "status"])?;
    ensure!(!out.status.success(), "{}", out.stdout_str());
    ensure!(
        out.stderr_str().contains("anchoring is off"),
        "{}",
        out.stderr_str()
    );
    let err = daemon.cli(&["wallet", "address"])?.stderr_str();
    ensure!(err.contains("anchoring is off"), "{err}");
    let http = http()?;
    let gateway = daemon.gateway_url()?;
    let (status, _) = post_anchors(&http, &gateway, Some("x"), &json!({ "cid": cid }))?;
    ensure!(status == 401, "{status}");
    let (status, answer) = post_anchors(&http, &gateway, Some("k"), &json!({ "cid": cid }))?;
    ensure!(status == 503, "{status} {answer}");
    daemon.stop()
}

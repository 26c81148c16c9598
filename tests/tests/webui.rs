//! The status page (`/webui`) in a real browser: Debian's chromium driven by npm
//! playwright-core (`tests/js/webui.mjs`). Two mirroring daemons on loopback, one anchoring on
//! the regtest stack; after an upload that is anchored and mirrored, the page shows the upload
//! under the mirror topic, its anchor with the confirmations `anchor status` counts, and the
//! other node as a peer, then shows a second upload without a reload. The screenshot is left
//! in `target/test-artifacts/webui.png`.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::json;
use stargate_tests::{
    BURN_ADDRESS, Regtest, StargateDaemon, js_webui_check, mirror_options, test_artifacts_dir,
    wait_for,
};

/// Funding, confirmations, gossip and mirroring on a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(120);

/// A confirmed anchor as `anchor status` shows it: txid, height, depth.
type Confirmed = (String, u32, u32);

/// `anchor status <cid>`'s line: `<cid> confirmed txid <txid> height <h> depth <d>`, or
/// `<cid> <state> ...`; the state, and once confirmed the txid, height and depth.
fn anchor_line(node: &StargateDaemon, cid: &str) -> Result<(String, Option<Confirmed>)> {
    let out = node.cli_ok(&["anchor", "status", cid])?;
    let line = out
        .lines()
        .find(|l| l.starts_with(cid))
        .with_context(|| format!("no line for {cid}: {out}"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let state = words.get(1).copied().unwrap_or_default().to_owned();
    let confirmed = match words.as_slice() {
        [
            _,
            "confirmed",
            "txid",
            txid,
            "height",
            height,
            "depth",
            depth,
        ] => Some(((*txid).to_owned(), height.parse()?, depth.parse()?)),
        _ => None,
    };
    Ok((state, confirmed))
}

#[test]
fn the_status_page_shows_an_anchored_mirrored_upload_and_updates_itself() -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let regtest = rt.block_on(Regtest::start_with_segwit())?;
    let api_key = format!("stargate-api-{}", rand::random::<u64>());
    let mut anchoring = mirror_options("");
    anchoring.env = [
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
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let a = StargateDaemon::start(anchoring)?;
    let b = StargateDaemon::start(mirror_options(""))?;
    a.connect(&b)?;
    a.wait_topic_peers(&[b.peer_id()], WAIT)?;
    b.wait_topic_peers(&[a.peer_id()], WAIT)?;

    // Fund a's wallet: one coinbase, matured.
    a.fund_wallet(&rt, &regtest, WAIT)?;

    // An upload, announced (b mirrors it) and anchored, confirmed under CONFIRMATIONS blocks.
    let cid = a.add_announced(200 * 1024, 1, "contract", &[])?;
    a.cli_ok(&["anchor", &cid])?;
    b.wait_mirrored(std::slice::from_ref(&cid), WAIT)?;
    let (txid, height, _) = wait_for(WAIT, || match anchor_line(&a, &cid) {
        Ok((_, Some(confirmed))) => Some(Ok(confirmed)),
        Ok((state, _)) if state == "broadcast" => {
            rt.block_on(regtest.mine_blocks(1, BURN_ADDRESS)).ok()?;
            None
        }
        Ok((state, _)) if state.starts_with("failed") => Some(Err(anyhow::anyhow!(
            "the anchor failed: {:?}",
            a.cli_ok(&["anchor", "status", &cid])
        ))),
        Ok(_) | Err(_) => None,
    })
    .with_context(|| format!("{cid} was never confirmed"))??;
    // Blocks on top, then the confirmations once the node has seen the tip.
    rt.block_on(regtest.mine_blocks(2, BURN_ADDRESS))?;
    let tip = u32::try_from(rt.block_on(regtest.height())?)?;
    let depth = tip + 1 - height;
    wait_for(WAIT, || {
        let (_, confirmed) = anchor_line(&a, &cid).ok()?;
        (confirmed?.2 == depth).then_some(())
    })
    .with_context(|| format!("anchor status never showed depth {depth}"))?;

    // The page takes the API's credentials: wrong ones are refused as on every API path.
    let page = format!("http://{}/webui", a.api_addr()?);
    let refused = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?
        .get(&page)
        .bearer_auth("wrong")
        .send()?;
    ensure!(refused.status() == 403, "{}", refused.status());

    // Anchors are kept (and listed) by CIDv1.
    let parsed = stargate_protocol::parse_cid(&cid)?;
    let anchored = stargate_protocol::Cid::new_v1(parsed.codec(), *parsed.hash());
    let screenshot = test_artifacts_dir()?.join("webui.png");
    if screenshot.exists() {
        std::fs::remove_file(&screenshot)?;
    }
    let report = js_webui_check(&json!({
        "url": page,
        "api": a.api_url()?,
        "api_key": api_key,
        "self": a.peer_id(),
        "peer": b.peer_id(),
        "topic": "stargate-uploads",
        "cid": cid,
        "anchored": anchored.to_string(),
        "txid": txid,
        "confirmations": depth,
        "screenshot": screenshot,
    }))?;
    let second = report["second"].as_str().context("no second upload")?;
    ensure!(second != cid, "{report}");
    let png = std::fs::read(&screenshot)
        .with_context(|| format!("no screenshot at {}", screenshot.display()))?;
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") || png.len() < 10_000 {
        bail!("{} is not a screenshot of the page", screenshot.display());
    }
    eprintln!("webui screenshot: {}", screenshot.display());
    Ok(())
}

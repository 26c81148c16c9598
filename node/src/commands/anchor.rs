//! `anchor CID...`, `anchor status [CID...]`, `anchor proof CID` and `wallet address|balance`:
//! the daemon's chain service through the API.

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::cli::{AnchorArgs, AnchorCommand, WalletCommand};
use crate::client::Client;
use crate::output::outln;

/// One CID's state as the API shows it.
#[derive(Debug, Deserialize)]
struct Entry {
    cid: String,
    status: String,
    txid: Option<String>,
    height: Option<u32>,
    depth: Option<u32>,
    queued_at: Option<u64>,
    reason: Option<String>,
}

impl Entry {
    fn line(&self) -> String {
        let txid = self.txid.as_deref().unwrap_or("?");
        match self.status.as_str() {
            "queued" => {
                let since = self.queued_at.map_or_else(String::new, |t| {
                    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
                    format!(" since {}", humantime::format_rfc3339_seconds(at))
                });
                format!("{} queued{since}", self.cid)
            }
            "broadcast" => format!("{} broadcast txid {txid}", self.cid),
            "confirmed" => format!(
                "{} confirmed txid {txid} height {} depth {}",
                self.cid,
                self.height.unwrap_or(0),
                self.depth.unwrap_or(0)
            ),
            "failed" => format!(
                "{} failed: {}",
                self.cid,
                self.reason.as_deref().unwrap_or("no reason given")
            ),
            "none" => format!("{} not anchored (never queued)", self.cid),
            other => format!("{} {other}", self.cid),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Anchors {
    anchors: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Summary {
    network: String,
    backend: String,
    tip_height: Option<u32>,
    synced_height: Option<u32>,
    lag_blocks: Option<u32>,
    queued: u64,
    broadcast: u64,
    confirmed: u64,
    failed: u64,
    syncing: Option<Progress>,
    last_error: Option<String>,
}

/// How far a running wallet sync has got.
#[derive(Debug, Deserialize)]
struct Progress {
    /// e.g. `fetching transactions 200 of 500`.
    text: String,
}

#[derive(Debug, Deserialize)]
struct Status {
    summary: Summary,
    anchors: Vec<Entry>,
}

fn or_unknown(n: Option<u32>) -> String {
    n.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
}

fn cid_args(cids: Vec<String>) -> Vec<(&'static str, String)> {
    cids.into_iter().map(|c| ("arg", c)).collect()
}

pub(crate) async fn anchor(client: &Client, args: AnchorArgs) -> Result<()> {
    match args.command {
        None => {
            let answer: Anchors = client.json("anchor/add", &cid_args(args.cids)).await?;
            for entry in answer.anchors {
                outln!("{}", entry.line())?;
            }
        }
        Some(AnchorCommand::Status { cids }) => {
            let status: Status = client.json("anchor/status", &cid_args(cids)).await?;
            let s = &status.summary;
            outln!("network {} via {}", s.network, s.backend)?;
            outln!(
                "tip {}, wallet synced to {}, lag {} blocks",
                or_unknown(s.tip_height),
                or_unknown(s.synced_height),
                or_unknown(s.lag_blocks)
            )?;
            if let Some(p) = &s.syncing {
                outln!("wallet syncing: {}", p.text)?;
            }
            outln!(
                "queued {}, broadcast {}, confirmed {}, failed {}",
                s.queued,
                s.broadcast,
                s.confirmed,
                s.failed
            )?;
            if let Some(e) = &s.last_error {
                outln!("last error: {e}")?;
            }
            for entry in status.anchors {
                outln!("{}", entry.line())?;
            }
        }
        Some(AnchorCommand::Proof { cid }) => {
            let res = client.call("anchor/proof", &[("arg", cid)], None).await?;
            let body = axum::body::to_bytes(
                res.into_body(),
                stargate_protocol::anchor::MAX_PROOF_JSON_LEN,
            )
            .await
            .context("reading the proof")?;
            crate::output::bytes_line(&body)?;
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Address {
    address: String,
}

#[derive(Debug, Deserialize)]
struct Balance {
    confirmed_sat: u64,
    pending_sat: u64,
    immature_sat: u64,
    synced_height: Option<u32>,
    syncing: Option<Progress>,
}

pub(crate) async fn wallet(client: &Client, cmd: WalletCommand) -> Result<()> {
    match cmd {
        WalletCommand::Address => {
            let answer: Address = client.json("wallet/address", &[]).await?;
            outln!("{}", answer.address)?;
        }
        WalletCommand::Balance => {
            let b: Balance = client.json("wallet/balance", &[]).await?;
            outln!("confirmed {} sat", b.confirmed_sat)?;
            outln!("pending {} sat", b.pending_sat)?;
            outln!("immature {} sat", b.immature_sat)?;
            outln!("as of block {}", or_unknown(b.synced_height))?;
            if let Some(p) = &b.syncing {
                outln!("wallet syncing: {}; the balance may still change", p.text)?;
            }
        }
    }
    Ok(())
}

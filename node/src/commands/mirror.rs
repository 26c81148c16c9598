//! `mirror status` and `mirror ls`: the daemon's mirror through the API.

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;

use crate::cli::MirrorCommand;
use crate::client::Client;
use crate::output::outln;

#[derive(Debug, Deserialize)]
struct Topic {
    topic: String,
    peers: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Published {
    cid: String,
    seq: u64,
}

#[derive(Debug, Deserialize)]
struct Received {
    publisher: String,
    latest: String,
    seq: u64,
    pending: bool,
}

#[derive(Debug, Deserialize)]
struct Reconciliation {
    enabled: bool,
    learned_entries: u64,
}

#[derive(Debug, Deserialize)]
struct StegoFigures {
    topic: String,
    announced: u64,
    waiting: u64,
    stored: u64,
    rejected: u64,
    failed: u64,
    records: u64,
    records_pending: u64,
    callbacks_refused: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
struct Status {
    peer_id: String,
    upload_enabled: bool,
    download_enabled: bool,
    topics: Vec<Topic>,
    queue: u64,
    in_flight: u64,
    stored: u64,
    failed: u64,
    failed_by_reason: std::collections::BTreeMap<String, u64>,
    last_manifest_published: Option<Published>,
    manifests_received: Vec<Received>,
    reconciliation: Reconciliation,
    stego: Option<StegoFigures>,
}

#[derive(Debug, Deserialize)]
struct Record {
    cid: String,
    #[serde(rename = "type")]
    kind: String,
    metadata: Value,
    publisher: String,
    state: String,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Records {
    records: Vec<Record>,
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

pub(crate) async fn run(client: &Client, cmd: MirrorCommand) -> Result<()> {
    match cmd {
        MirrorCommand::Status => {
            let s: Status = client.json("mirror/status", &[]).await?;
            outln!(
                "peer {} (uploads announced: {}, downloads: {}, reconciliation: {})",
                s.peer_id,
                on_off(s.upload_enabled),
                on_off(s.download_enabled),
                on_off(s.reconciliation.enabled)
            )?;
            for t in &s.topics {
                outln!("topic {}: {} peers", t.topic, t.peers.len())?;
                for p in &t.peers {
                    outln!("  {p}")?;
                }
            }
            outln!(
                "queued {}, in flight {}, stored {}, failed {}",
                s.queue,
                s.in_flight,
                s.stored,
                s.failed
            )?;
            for (reason, n) in &s.failed_by_reason {
                outln!("  failed ({reason}): {n}")?;
            }
            match &s.last_manifest_published {
                Some(m) => outln!("manifest published: {} (seq {})", m.cid, m.seq)?,
                None => outln!("manifest published: none yet")?,
            }
            for m in &s.manifests_received {
                let read = if m.pending { "to read" } else { "read" };
                outln!(
                    "manifest of {}: {} (seq {}, {read})",
                    m.publisher,
                    m.latest,
                    m.seq
                )?;
            }
            outln!(
                "learned through reconciliation: {}",
                s.reconciliation.learned_entries
            )?;
            if let Some(g) = &s.stego {
                outln!(
                    "stego ({}): announced {}, waiting for content {}, stored {}, rejected {}, failed {}",
                    g.topic,
                    g.announced,
                    g.waiting,
                    g.stored,
                    g.rejected,
                    g.failed
                )?;
                outln!(
                    "ingestion records: {} made, {} pending",
                    g.records,
                    g.records_pending
                )?;
                for (reason, n) in &g.callbacks_refused {
                    outln!("  callbacks refused ({reason}): {n}")?;
                }
            }
        }
        MirrorCommand::Ls { kind, from, limit } => {
            let mut args = vec![("limit", limit.to_string())];
            args.extend(kind.map(|k| ("type", k)));
            args.extend(from.map(|f| ("from", f)));
            let answer: Records = client.json("mirror/ls", &args).await?;
            for r in answer.records {
                let state = match r.reason {
                    Some(reason) => format!("{} ({reason})", r.state),
                    None => r.state,
                };
                outln!(
                    "{} {} {} {} {}",
                    r.cid,
                    r.kind,
                    state,
                    r.publisher,
                    r.metadata
                )?;
            }
        }
    }
    Ok(())
}

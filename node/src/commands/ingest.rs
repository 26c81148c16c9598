//! `ingest ls`: the ingestion records, through the daemon's API or, with no daemon, the store.

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;

use crate::cli::IngestCommand;
use crate::client::Client;
use crate::output::outln;

#[derive(Debug, Deserialize)]
struct Record {
    id: u64,
    image_cid: String,
    payload_cid: String,
    publisher: String,
    metadata: Value,
    consumed: bool,
}

#[derive(Debug, Deserialize)]
struct Page {
    records: Vec<Record>,
}

pub(crate) async fn run(client: &Client, cmd: IngestCommand) -> Result<()> {
    match cmd {
        IngestCommand::Ls {
            after,
            pending,
            limit,
        } => {
            let args = [
                ("after", after.to_string()),
                ("limit", limit.to_string()),
                ("pending", pending.to_string()),
            ];
            let page: Page = client.json("ingest/ls", &args).await?;
            for r in page.records {
                let state = if r.consumed { "consumed" } else { "pending" };
                outln!(
                    "{} {} {} {state} {} {}",
                    r.id,
                    r.image_cid,
                    r.payload_cid,
                    r.publisher,
                    r.metadata
                )?;
            }
        }
    }
    Ok(())
}

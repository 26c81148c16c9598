//! `pin add|rm|ls`.

use anyhow::Result;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::cli::PinCommand;
use crate::client::Client;
use crate::output::outln;

#[derive(Debug, Deserialize)]
struct Pins {
    #[serde(rename = "Pins")]
    pins: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct PinLs {
    #[serde(rename = "Keys")]
    keys: BTreeMap<String, PinInfo>,
}

#[derive(Debug, Deserialize)]
struct PinInfo {
    #[serde(rename = "Type")]
    kind: String,
}

pub(crate) async fn run(client: &Client, cmd: PinCommand) -> Result<()> {
    match cmd {
        PinCommand::Add { paths, recursive } => {
            let mut query: Vec<_> = paths.into_iter().map(|p| ("arg", p)).collect();
            query.push(("recursive", recursive.to_string()));
            let answer: Pins = client.json("pin/add", &query).await?;
            let how = if recursive { " recursively" } else { "" };
            for cid in answer.pins {
                outln!("pinned {cid}{how}")?;
            }
        }
        PinCommand::Rm { paths, recursive } => {
            let mut query: Vec<_> = paths.into_iter().map(|p| ("arg", p)).collect();
            query.push(("recursive", recursive.to_string()));
            let answer: Pins = client.json("pin/rm", &query).await?;
            for cid in answer.pins {
                outln!("unpinned {cid}")?;
            }
        }
        PinCommand::Ls { paths, kind, quiet } => {
            let mut query: Vec<_> = paths.into_iter().map(|p| ("arg", p)).collect();
            query.push(("type", kind));
            let answer: PinLs = client.json("pin/ls", &query).await?;
            for (cid, info) in answer.keys {
                if quiet {
                    outln!("{cid}")?;
                } else {
                    outln!("{cid} {}", info.kind)?;
                }
            }
        }
    }
    Ok(())
}

//! `id`, `swarm connect|peers|disconnect` and `routing findprovs|provide`: the daemon's network,
//! printed as Kubo prints them; `dag fetch`, Stargate's transfer from a Stargate peer.

use anyhow::Result;
use futures::StreamExt;
use serde::Deserialize;

use crate::cli::{DagCommand, RoutingCommand, SwarmCommand};
use crate::client::{Client, ndjson};
use crate::output::outln;

pub(crate) async fn id(client: &Client, peer: Option<String>) -> Result<()> {
    let args: Vec<_> = peer.into_iter().map(|p| ("arg", p)).collect();
    let id: serde_json::Value = client.json("id", &args).await?;
    outln!("{}", serde_json::to_string_pretty(&id)?)?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Strings {
    #[serde(rename = "Strings")]
    strings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Peers {
    #[serde(rename = "Peers")]
    peers: Option<Vec<Peer>>,
}

#[derive(Debug, Deserialize)]
struct Peer {
    #[serde(rename = "Addr")]
    addr: String,
    #[serde(rename = "Peer")]
    peer: String,
    #[serde(rename = "Latency", default)]
    latency: String,
    #[serde(rename = "Direction", default)]
    direction: u8,
}

pub(crate) async fn swarm(client: &Client, cmd: SwarmCommand) -> Result<()> {
    match cmd {
        SwarmCommand::Connect { addrs } => {
            print_strings(client, "swarm/connect", addrs).await?;
        }
        SwarmCommand::Disconnect { addrs } => {
            print_strings(client, "swarm/disconnect", addrs).await?;
        }
        SwarmCommand::Peers { verbose } => {
            let args: &[(&str, String)] = if verbose {
                &[("verbose", String::from("true"))]
            } else {
                &[]
            };
            let peers: Peers = client.json("swarm/peers", args).await?;
            for p in peers.peers.unwrap_or_default() {
                if verbose {
                    let direction = match p.direction {
                        1 => "inbound",
                        2 => "outbound",
                        _ => "",
                    };
                    outln!("{}/p2p/{} {} {direction}", p.addr, p.peer, p.latency)?;
                } else {
                    outln!("{}/p2p/{}", p.addr, p.peer)?;
                }
            }
        }
    }
    Ok(())
}

async fn print_strings(client: &Client, cmd: &str, addrs: Vec<String>) -> Result<()> {
    let args: Vec<_> = addrs.into_iter().map(|a| ("arg", a)).collect();
    let answer: Strings = client.json(cmd, &args).await?;
    for line in answer.strings {
        outln!("{line}")?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct QueryEvent {
    #[serde(rename = "Type", default)]
    kind: u8,
    #[serde(rename = "Responses", default)]
    responses: Option<Vec<Response>>,
}

#[derive(Debug, Deserialize)]
struct Response {
    #[serde(rename = "ID")]
    id: String,
}

/// Kubo's `routing.QueryEventType` for "found a provider".
const EVENT_PROVIDER: u8 = 4;

pub(crate) async fn routing(client: &Client, cmd: RoutingCommand) -> Result<()> {
    let (command, args) = match cmd {
        RoutingCommand::Findprovs { cid, num_providers } => (
            "routing/findprovs",
            vec![("arg", cid), ("num-providers", num_providers.to_string())],
        ),
        RoutingCommand::Provide { cids, recursive } => {
            let mut args: Vec<_> = cids.into_iter().map(|c| ("arg", c)).collect();
            args.push(("recursive", recursive.to_string()));
            ("routing/provide", args)
        }
    };
    let res = client.call(command, &args, None).await?;
    let mut events = ndjson::<QueryEvent>(res);
    while let Some(event) = events.next().await {
        let event = event?;
        if event.kind == EVENT_PROVIDER {
            for r in event.responses.unwrap_or_default() {
                outln!("{}", r.id)?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Fetched {
    #[serde(rename = "Root")]
    root: String,
    #[serde(rename = "Blocks")]
    blocks: u64,
    #[serde(rename = "Bytes")]
    bytes: u64,
    #[serde(rename = "Seconds")]
    seconds: f64,
}

pub(crate) async fn dag(client: &Client, cmd: DagCommand) -> Result<()> {
    match cmd {
        DagCommand::Fetch { from, cid, pin } => {
            let args = [("arg", cid), ("peer", from), ("pin", pin.to_string())];
            let f: Fetched = client.json("dag/fetch", &args).await?;
            // MB = 10^6 bytes, as the benchmarks count.
            let rate = f.bytes as f64 / f.seconds.max(1e-9) / 1e6;
            outln!(
                "fetched {}: {} blocks, {} bytes in {:.3} s ({rate:.1} MB/s)",
                f.root,
                f.blocks,
                f.bytes,
                f.seconds
            )?;
        }
    }
    Ok(())
}

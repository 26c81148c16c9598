//! `repo gc|verify|stat`.

use anyhow::Result;
use futures::StreamExt;
use serde::Deserialize;

use crate::cli::RepoCommand;
use crate::client::{Client, ndjson};
use crate::output::outln;

/// One line of `repo/gc`: a removed block, as Kubo names it.
#[derive(Debug, Deserialize)]
struct Removed {
    #[serde(rename = "Key")]
    key: Link,
}

#[derive(Debug, Deserialize)]
struct Link {
    #[serde(rename = "/")]
    cid: String,
}

#[derive(Debug, Deserialize)]
struct VerifyLine {
    #[serde(rename = "Msg", default)]
    msg: String,
    #[serde(rename = "Progress")]
    progress: Option<u64>,
    #[serde(rename = "Total")]
    total: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Stat {
    #[serde(rename = "NumObjects")]
    objects: u64,
    #[serde(rename = "RepoSize")]
    size: u64,
    #[serde(rename = "BlockBytes")]
    block_bytes: u64,
    #[serde(rename = "RepoPath")]
    path: String,
    #[serde(rename = "Version")]
    version: String,
}

pub(crate) async fn run(client: &Client, cmd: RepoCommand) -> Result<()> {
    match cmd {
        RepoCommand::Gc { quiet } => {
            let res = client.call("repo/gc", &[], None).await?;
            let mut removed = ndjson::<Removed>(res);
            while let Some(line) = removed.next().await {
                let cid = line?.key.cid;
                if quiet {
                    outln!("{cid}")?;
                } else {
                    outln!("removed {cid}")?;
                }
            }
        }
        RepoCommand::Verify => {
            let res = client.call("repo/verify", &[], None).await?;
            let mut lines = ndjson::<VerifyLine>(res);
            // A failure (corrupt blocks) ends the stream, after the lines that name them.
            let mut failure = None;
            while let Some(line) = lines.next().await {
                match line {
                    Ok(line) if !line.msg.is_empty() => outln!("{}", line.msg)?,
                    Ok(line) => {
                        if let (Some(done), Some(total)) = (line.progress, line.total) {
                            eprint!("\r{done}/{total} blocks checked");
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
            eprintln!();
            if let Some(e) = failure {
                return Err(e);
            }
        }
        RepoCommand::Stat { human } => {
            let stat: Stat = client.json("repo/stat", &[]).await?;
            let size = |n: u64| {
                if human {
                    indicatif::HumanBytes(n).to_string()
                } else {
                    n.to_string()
                }
            };
            outln!("NumObjects: {}", stat.objects)?;
            outln!("RepoSize:   {}", size(stat.size))?;
            outln!("BlockBytes: {}", size(stat.block_bytes))?;
            outln!("RepoPath:   {}", stat.path)?;
            outln!("Version:    {}", stat.version)?;
        }
    }
    Ok(())
}

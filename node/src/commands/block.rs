//! `block get|put|stat|rm`.

use anyhow::{Context, Result, bail};
use axum::body::Body;
use futures::StreamExt;
use serde::Deserialize;

use crate::cli::BlockCommand;
use crate::client::{Client, ndjson};
use crate::output::copy_to_stdout;
use crate::output::outln;

#[derive(Debug, Deserialize)]
struct Stat {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Size")]
    size: u64,
}

#[derive(Debug, Deserialize)]
struct Removed {
    #[serde(rename = "Hash")]
    hash: Option<String>,
    #[serde(rename = "Error", default)]
    error: String,
}

pub(crate) async fn run(client: &Client, cmd: BlockCommand) -> Result<()> {
    match cmd {
        BlockCommand::Get { cid } => {
            let res = client.call("block/get", &[("arg", cid)], None).await?;
            copy_to_stdout(Client::bytes(res)).await?;
        }
        BlockCommand::Stat { cid } => {
            let stat: Stat = client.json("block/stat", &[("arg", cid)]).await?;
            outln!("Key: {}\nSize: {}", stat.key, stat.size)?;
        }
        BlockCommand::Put {
            files,
            cid_codec,
            mhtype,
            pin,
            allow_big_block,
        } => {
            let mut datas = Vec::new();
            if files.is_empty() {
                let mut buf = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut buf)
                    .await
                    .context("reading stdin")?;
                datas.push(buf);
            }
            for f in &files {
                datas.push(
                    tokio::fs::read(f)
                        .await
                        .with_context(|| format!("reading {}", f.display()))?,
                );
            }
            let boundary = format!("stargate-{:032x}", rand::random::<u128>());
            let mut body = Vec::new();
            for data in datas {
                body.extend_from_slice(
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"block\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                );
                body.extend_from_slice(&data);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            let query = [
                ("cid-codec", cid_codec),
                ("mhtype", mhtype),
                ("pin", pin.to_string()),
                ("allow-big-block", allow_big_block.to_string()),
            ];
            let res = client
                .call(
                    "block/put",
                    &query,
                    Some((
                        format!("multipart/form-data; boundary={boundary}"),
                        Body::from(body),
                    )),
                )
                .await?;
            let mut lines = ndjson::<Stat>(res);
            while let Some(stat) = lines.next().await {
                outln!("{}", stat?.key)?;
            }
        }
        BlockCommand::Rm { cids, force, quiet } => {
            let mut query: Vec<_> = cids.into_iter().map(|c| ("arg", c)).collect();
            query.push(("force", force.to_string()));
            let res = client.call("block/rm", &query, None).await?;
            let mut lines = ndjson::<Removed>(res);
            let mut failed = false;
            while let Some(line) = lines.next().await {
                let line = line?;
                match line.hash {
                    Some(hash) if line.error.is_empty() && !quiet => {
                        outln!("removed {hash}")?;
                    }
                    Some(hash) if !line.error.is_empty() => {
                        eprintln!("cannot remove {hash}: {}", line.error);
                        failed = true;
                    }
                    _ => {}
                }
            }
            if failed {
                bail!("some blocks were not removed");
            }
        }
    }
    Ok(())
}

//! `block get|put|stat|rm`.

use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stargate_protocol::limits::{MAX_BLOCK_SIZE, MAX_PUT_BLOCK_SIZE};
use stargate_protocol::{Block, Codec, HashCode, PbNode, Version, parse_cid};
use stargate_storage::{PinMode, StoreError};

use super::response::JsonLines;
use super::{Params, RpcError, RpcResult};
use crate::AppState;

pub(crate) async fn get(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[])?;
    let cid = parse_cid(params.one_arg()?)?;
    let block = state.blocks().get(cid).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(block.data().clone()),
    )
        .into_response())
}

pub(crate) async fn stat(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[])?;
    let cid = parse_cid(params.one_arg()?)?;
    let store = state.store().clone();
    let size = match tokio::task::spawn_blocking(move || store.size(&cid)).await?? {
        Some(size) => size,
        None => state.blocks().get(cid).await?.data().len() as u64,
    };
    Ok(axum::Json(json!({ "Key": cid.to_string(), "Size": size })).into_response())
}

pub(crate) async fn put(
    State(state): State<AppState>,
    params: Params,
    mut multipart: Multipart,
) -> RpcResult<Response> {
    params.only(&[
        "cid-codec",
        "mhtype",
        "mhlen",
        "pin",
        "allow-big-block",
        "format",
    ])?;
    let codec_name = params.get("cid-codec").unwrap_or("raw");
    let codec = Codec::from_name(codec_name)
        .ok_or_else(|| RpcError::client(format!("unknown codec {codec_name:?}")))?;
    let hash_name = params.get("mhtype").unwrap_or("sha2-256");
    let hash = HashCode::from_name(hash_name)
        .filter(|h| *h != HashCode::Identity)
        .ok_or_else(|| RpcError::client(format!("unsupported hash function {hash_name:?}")))?;
    if let Some(len) = params
        .number::<i64>("mhlen")?
        .filter(|&l| l != -1 && usize::try_from(l).ok() != Some(hash_len(hash)))
    {
        return Err(RpcError::client(format!(
            "{hash_name} digests cannot be {len} bytes"
        )));
    }
    let pin = params.flag("pin", false)?;
    let max = if params.flag("allow-big-block", false)? {
        MAX_BLOCK_SIZE
    } else {
        MAX_PUT_BLOCK_SIZE
    };

    // Blocks are small: read each whole, check it, and only then touch the store.
    let mut blocks = Vec::new();
    let bad = |e: axum::extract::multipart::MultipartError| {
        RpcError::client(format!("reading the request: {e}"))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let mut data = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            if data.len() + chunk.len() > max {
                return Err(RpcError::client(format!(
                    "produced block is over {max} bytes: big blocks can't be exchanged with other peers (--allow-big-block allows up to {MAX_BLOCK_SIZE})"
                )));
            }
            data.extend_from_slice(&chunk);
        }
        if codec == Codec::DagPb {
            PbNode::decode(&data.clone().into()).map_err(RpcError::client)?;
        }
        blocks.push(Block::encode(Version::V1, codec, hash, data).map_err(RpcError::client)?);
    }
    if blocks.is_empty() {
        return Err(RpcError::client("no block data in the request"));
    }
    let store = state.store().clone();
    let answers: Vec<_> = blocks
        .iter()
        .map(|b| json!({ "Key": b.cid().to_string(), "Size": b.data().len() }))
        .collect();
    let roots: Vec<_> = blocks.iter().map(|b| *b.cid()).collect();
    tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
        let pins: Vec<_> = blocks
            .iter()
            .filter(|_| pin)
            .map(|b| (*b.cid(), PinMode::Recursive))
            .collect();
        let mut writer = store.writer();
        for block in blocks {
            writer.put(block)?;
        }
        writer.finish(pins)?;
        Ok(())
    })
    .await??;
    for cid in roots {
        state.content_added(cid, pin);
    }
    let (lines, response) = JsonLines::new();
    tokio::spawn(async move {
        for a in answers {
            lines.send(&a).await;
        }
    });
    Ok(response)
}

fn hash_len(hash: HashCode) -> usize {
    match hash {
        HashCode::Sha2_512 => 64,
        _ => 32,
    }
}

pub(crate) async fn rm(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["force", "quiet"])?;
    let cids = params
        .required_args()?
        .into_iter()
        .map(parse_cid)
        .collect::<Result<Vec<_>, _>>()?;
    let force = params.flag("force", false)?;
    let store = state.store().clone();
    let list = cids.clone();
    let results = tokio::task::spawn_blocking(move || store.delete_many(&list)).await??;
    let (lines, response) = JsonLines::new();
    tokio::spawn(async move {
        let mut failed = false;
        for (cid, result) in cids.iter().zip(results) {
            let error = match result {
                Ok(true) => String::new(),
                Ok(false) if force => String::new(),
                Ok(false) => "block not found".to_owned(),
                Err(e) => e.to_string(),
            };
            failed |= !error.is_empty();
            lines
                .send(&json!({ "Hash": cid.to_string(), "Error": error }))
                .await;
        }
        if failed {
            lines
                .fail(&RpcError::failed("some blocks were not removed"))
                .await;
        }
    });
    Ok(response)
}

//! `block get|put|stat|rm`, with Kubo's options and answers.

use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use stargate_protocol::limits::{MAX_BLOCK_SIZE, MAX_PUT_BLOCK_SIZE};
use stargate_protocol::{Block, Codec, HashCode, PbNode, Version, parse_cid};
use stargate_storage::{PinMode, StoreError};

use super::drain::drain;
use super::response::JsonLines;
use super::{Params, RpcError, RpcResult};
use crate::AppState;

pub(crate) async fn get(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    // kubo-rpc-client's `dag.get` walks paths itself with `block get`, sending its own options
    // along; Kubo ignores them, as we do.
    params.only(&["path", "local-resolve"])?;
    let cid = parse_cid(params.one_arg()?)?;
    let block = params.block_source(&state)?.get(cid).await?;
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
        None => params.block_source(&state)?.get(cid).await?.data().len() as u64,
    };
    Ok(axum::Json(json!({ "Key": params.cid(&cid), "Size": size })).into_response())
}

pub(crate) async fn put(
    State(state): State<AppState>,
    params: Params,
    mut multipart: Multipart,
) -> Response {
    let read = match PutOptions::from_params(&params) {
        Ok(opts) => read_blocks(&mut multipart, &opts)
            .await
            .map(|blocks| (opts, blocks)),
        Err(e) => Err(e),
    };
    let (opts, blocks) = match read {
        Ok(read) => read,
        Err(e) => {
            drain(&mut multipart).await;
            return e.into_response();
        }
    };
    match store_blocks(&state, &params, opts.pin, blocks).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

/// How `block put` makes CIDs.
#[derive(Debug)]
struct PutOptions {
    version: Version,
    codec: Codec,
    hash: HashCode,
    pin: bool,
    max: usize,
}

impl PutOptions {
    fn from_params(params: &Params) -> RpcResult<Self> {
        params.only(&[
            "cid-codec",
            "mhtype",
            "mhlen",
            "pin",
            "allow-big-block",
            "format",
            // Sent by kubo-rpc-client; Kubo has no such option and ignores it, as we do.
            "version",
        ])?;
        let cid_codec = params.get("cid-codec").filter(|c| !c.is_empty());
        // The deprecated `format` wins over `cid-codec`, with Kubo's legacy names.
        let (version, codec_name) = match params.get("format").filter(|f| !f.is_empty()) {
            Some(_) if cid_codec.is_some_and(|c| c != "raw") => {
                return Err(RpcError::client(
                    "unable to use \"format\" (deprecated) and a custom \"cid-codec\" at the same time",
                ));
            }
            Some("v0") => (Version::V0, "dag-pb"),
            Some("protobuf") => (Version::V1, "dag-pb"),
            Some("cbor") => (Version::V1, "dag-cbor"),
            Some(format) => (Version::V1, format),
            None => (Version::V1, cid_codec.unwrap_or("raw")),
        };
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
        if version == Version::V0 && hash != HashCode::Sha2_256 {
            return Err(RpcError::client("only sha2-256 is allowed with CIDv0"));
        }
        Ok(Self {
            version,
            codec,
            hash,
            pin: params.flag("pin", false)?,
            max: if params.flag("allow-big-block", false)? {
                MAX_BLOCK_SIZE
            } else {
                MAX_PUT_BLOCK_SIZE
            },
        })
    }
}

/// Reads every part as one block and checks it; blocks are small, so each is read whole and
/// nothing touches the store before all are good.
async fn read_blocks(multipart: &mut Multipart, opts: &PutOptions) -> RpcResult<Vec<Block>> {
    let mut blocks = Vec::new();
    for data in read_parts(multipart, opts.max).await? {
        if opts.codec == Codec::DagPb {
            PbNode::decode(&data).map_err(RpcError::client)?;
        }
        blocks.push(
            Block::encode(opts.version, opts.codec, opts.hash, data).map_err(RpcError::client)?,
        );
    }
    Ok(blocks)
}

/// Kubo's refusal of a block over `max` bytes.
pub(super) fn too_big(max: usize) -> RpcError {
    RpcError::client(format!(
        "produced block is over {max} bytes: big blocks can't be exchanged with other peers (--allow-big-block allows up to {MAX_BLOCK_SIZE})"
    ))
}

/// Every part of the request, each read whole and at most `max` bytes; at least one.
pub(super) async fn read_parts(multipart: &mut Multipart, max: usize) -> RpcResult<Vec<Bytes>> {
    let mut parts = Vec::new();
    let bad = |e: axum::extract::multipart::MultipartError| {
        RpcError::client(format!("reading the request: {e}"))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let mut data = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            if data.len() + chunk.len() > max {
                return Err(too_big(max));
            }
            data.extend_from_slice(&chunk);
        }
        parts.push(Bytes::from(data));
    }
    if parts.is_empty() {
        return Err(RpcError::client("no block data in the request"));
    }
    Ok(parts)
}

/// Stores (and pins) `blocks` in one transaction and answers a `{"Key", "Size"}` line each.
async fn store_blocks(
    state: &AppState,
    params: &Params,
    pin: bool,
    blocks: Vec<Block>,
) -> RpcResult<Response> {
    let answers: Vec<_> = blocks
        .iter()
        .map(|b| json!({ "Key": params.cid(b.cid()), "Size": b.data().len() }))
        .collect();
    store(state, blocks, pin).await?;
    Ok(answer_lines(params, answers).await)
}

/// Stores `blocks`, each pinned recursively with `pin`, in one transaction, and tells the
/// network about them.
pub(super) async fn store(state: &AppState, blocks: Vec<Block>, pin: bool) -> RpcResult<()> {
    let store = state.store().clone();
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
    Ok(())
}

/// A newline-delimited answer of `values`.
pub(super) async fn answer_lines(params: &Params, values: Vec<serde_json::Value>) -> Response {
    let (lines, answer) = JsonLines::new(params);
    tokio::spawn(async move {
        for v in values {
            lines.send(&v).await;
        }
    });
    answer.respond().await
}

fn hash_len(hash: HashCode) -> usize {
    match hash {
        HashCode::Sha2_512 => 64,
        _ => 32,
    }
}

/// Kubo's answer: a `{"Hash"}` line per removed block (none with `quiet`) and a
/// `{"Hash", "Error"}` line per block that was not; the call itself succeeds either way.
pub(crate) async fn rm(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["force", "quiet"])?;
    let cids = params
        .required_args()?
        .into_iter()
        .map(parse_cid)
        .collect::<Result<Vec<_>, _>>()?;
    let force = params.flag("force", false)?;
    let quiet = params.flag("quiet", false)?;
    let store = state.store().clone();
    let list = cids.clone();
    let results = tokio::task::spawn_blocking(move || store.delete_many(&list)).await??;
    let (lines, answer) = JsonLines::new(&params);
    tokio::spawn(async move {
        for (cid, result) in cids.iter().zip(results) {
            let hash = params.cid(cid);
            let line = match result {
                Ok(true) => json!({ "Hash": hash }),
                Ok(false) if force => json!({ "Hash": hash }),
                // Kubo's words (go-ipld-format's ErrNotFound).
                Ok(false) => {
                    json!({ "Hash": hash, "Error": format!("ipld: could not find {cid}") })
                }
                Err(e) => json!({ "Hash": hash, "Error": e.to_string() }),
            };
            if (quiet && line.get("Error").is_none()) || lines.send(&line).await {
                continue;
            }
            break;
        }
    });
    Ok(answer.respond().await)
}

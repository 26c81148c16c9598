//! `dag put|get|stat`: IPLD documents in and out, converted between codecs through
//! [`stargate_protocol::ipld`], with Kubo's options and answers.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt;
use serde_json::{Value, json};
use stargate_protocol::ipld::{self, Ipld, IpldError};
use stargate_protocol::limits::{MAX_BLOCK_SIZE, MAX_PUT_BLOCK_SIZE};
use stargate_protocol::unixfs::export::{
    BlockSource, DEFAULT_WINDOW, DagScope, Resolved, WalkOptions, fetch, resolve_path, walk_blocks,
};
use stargate_protocol::{Block, Cid, Codec, ContentPath, HashCode, Version};

use super::blocks::{answer_lines, read_parts, store, too_big};
use super::drain::drain;
use super::response::{JsonLines, byte_stream};
use super::{Params, RpcError, RpcResult};
use crate::AppState;

impl From<IpldError> for RpcError {
    fn from(e: IpldError) -> Self {
        Self::client(e)
    }
}

/// A codec named in an option, one of those documents can be read or written in.
fn codec_option(params: &Params, name: &str, default: &str) -> RpcResult<Codec> {
    let value = params
        .get(name)
        .filter(|v| !v.is_empty())
        .unwrap_or(default);
    Codec::from_name(value)
        .filter(|c| *c != Codec::Libp2pKey)
        .ok_or_else(|| {
            RpcError::client(format!(
                "{name}: unknown codec {value:?}: dag-json, dag-cbor, dag-pb and raw are supported"
            ))
        })
}

/// How `dag put` makes blocks.
struct PutOptions {
    input: Codec,
    store: Codec,
    hash: HashCode,
    pin: bool,
    max: usize,
}

impl PutOptions {
    fn from_params(params: &Params) -> RpcResult<Self> {
        params.only(&[
            "store-codec",
            "input-codec",
            "pin",
            "hash",
            "allow-big-block",
        ])?;
        let hash_name = params
            .get("hash")
            .filter(|h| !h.is_empty())
            .unwrap_or("sha2-256");
        let hash = HashCode::from_name(hash_name)
            .filter(|h| *h != HashCode::Identity)
            .ok_or_else(|| RpcError::client(format!("unsupported hash function {hash_name:?}")))?;
        Ok(Self {
            input: codec_option(params, "input-codec", "dag-json")?,
            store: codec_option(params, "store-codec", "dag-cbor")?,
            hash,
            pin: params.flag("pin", false)?,
            max: if params.flag("allow-big-block", false)? {
                MAX_BLOCK_SIZE
            } else {
                MAX_PUT_BLOCK_SIZE
            },
        })
    }

    /// The block of one input document, re-encoded in the store codec.
    fn block(&self, input: &[u8]) -> RpcResult<Block> {
        let doc = ipld::decode(self.input, input)?;
        let data = ipld::encode(self.store, &doc)?;
        if data.len() > self.max {
            return Err(too_big(self.max));
        }
        Block::encode(Version::V1, self.store, self.hash, data).map_err(RpcError::client)
    }
}

/// Kubo's answer: a `{"Cid": {"/": cid}}` line per document, all stored (and pinned) in one
/// transaction once every one of them is good.
pub(crate) async fn put(
    State(state): State<AppState>,
    params: Params,
    mut multipart: Multipart,
) -> Response {
    let read = match PutOptions::from_params(&params) {
        // A document may be larger than its block (whitespace, base64): read up to the
        // largest block, check the encoded size against the option.
        Ok(opts) => read_parts(&mut multipart, MAX_BLOCK_SIZE)
            .await
            .map(|parts| (opts, parts)),
        Err(e) => Err(e),
    };
    let (opts, parts) = match read {
        Ok(read) => read,
        Err(e) => {
            drain(&mut multipart).await;
            return e.into_response();
        }
    };
    let pin = opts.pin;
    let made = tokio::task::spawn_blocking(move || {
        parts
            .iter()
            .map(|p| opts.block(p))
            .collect::<RpcResult<Vec<_>>>()
    })
    .await;
    let blocks = match made.map_err(RpcError::from).and_then(|b| b) {
        Ok(blocks) => blocks,
        Err(e) => return e.into_response(),
    };
    let answers = blocks
        .iter()
        .map(|b| json!({ "Cid": { "/": b.cid().to_string() } }))
        .collect();
    match store(&state, blocks, pin).await {
        Ok(()) => answer_lines(&params, answers).await,
        Err(e) => e.into_response(),
    }
}

/// The codec of the block `cid` names, as a document codec.
fn codec_of(cid: &Cid) -> RpcResult<Codec> {
    Codec::from_code(cid.codec())
        .ok_or_else(|| RpcError::client(format!("unsupported codec in {cid}")))
}

/// Fetches `cid` and reads it as a document.
async fn load(source: &dyn BlockSource, cid: Cid) -> RpcResult<(Codec, Ipld)> {
    let block = fetch(source, cid).await?;
    let codec = codec_of(&cid)?;
    let doc = ipld::decode(codec, block.data())?;
    Ok((codec, doc))
}

/// Where a path led: the last block it reached, the rest of the path inside that block, and
/// the document the whole path names.
struct Located {
    cid: Cid,
    rem_path: Vec<String>,
    doc: Ipld,
}

/// The document at `arg` (`<cid>[/path]`): the path walks maps by key and lists by index,
/// follows links into the blocks they name, and goes through dag-pb nodes by link name as
/// UnixFS paths do (sharded directories included).
async fn resolve_document(source: &dyn BlockSource, arg: &str) -> RpcResult<Located> {
    let path = ContentPath::parse(arg)?;
    let mut cid = *path.root();
    let (mut codec, mut doc) = load(source, cid).await?;
    let segments = path.segments();
    let mut rem_path = Vec::new();
    let mut at = 0;
    while at < segments.len() {
        if codec == Codec::DagPb {
            let rest = ContentPath::new(cid, segments[at..].to_vec())?;
            let resolved = resolve_path(source, &rest).await?;
            return Ok(Located {
                cid: *resolved.cid(),
                rem_path: Vec::new(),
                doc: ipld::decode(Codec::DagPb, resolved.block.data())?,
            });
        }
        let segment = &segments[at];
        let next = match &doc {
            Ipld::Map(map) => map.get(segment.as_str()),
            Ipld::List(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .cloned()
        .ok_or_else(|| {
            RpcError::client(format!(
                "no link named {segment:?} under {}",
                segments[..at]
                    .iter()
                    .fold(cid.to_string(), |p, s| format!("{p}/{s}"))
            ))
        })?;
        at += 1;
        doc = next;
        rem_path.push(segment.clone());
        if let Ipld::Link(link) = doc {
            cid = link;
            rem_path.clear();
            (codec, doc) = load(source, cid).await?;
        }
    }
    Ok(Located { cid, rem_path, doc })
}

/// Kubo's `dag resolve`: the last block the path reaches and the rest of the path inside it.
pub(crate) async fn resolve(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    // kubo-rpc-client appends its `path` option to the argument and sends it along as well.
    params.only(&["path"])?;
    let source = params.block_source(&state)?;
    let located = resolve_document(source.as_ref(), params.one_arg()?).await?;
    Ok(Json(json!({
        "Cid": { "/": params.cid(&located.cid) },
        "RemPath": located.rem_path.join("/"),
    }))
    .into_response())
}

/// Kubo's answer: the document (or the part of it the path names) in `output-codec`
/// (dag-json by default), as a byte stream.
pub(crate) async fn get(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["output-codec"])?;
    let codec = codec_option(&params, "output-codec", "dag-json")?;
    let source = params.block_source(&state)?;
    let doc = resolve_document(source.as_ref(), params.one_arg()?)
        .await?
        .doc;
    let bytes = Bytes::from(ipld::encode(codec, &doc)?);
    Ok(byte_stream(
        futures::stream::once(async move { Ok(bytes) }),
        &params,
        "text/plain",
    ))
}

/// The DAG below the end of `arg`, the blocks of the path to it left out.
pub(super) async fn resolve_root(source: &dyn BlockSource, arg: &str) -> RpcResult<Resolved> {
    let path = ContentPath::parse(arg)?;
    let mut resolved = resolve_path(source, &path).await?;
    resolved.visited.clear();
    Ok(resolved)
}

/// Every block of the DAG at `resolved`, each once, depth-first in link order (Kubo's
/// `dag export` and `dag stat` order).
pub(super) fn dag_blocks(
    source: Arc<dyn BlockSource>,
    resolved: &Resolved,
) -> impl futures::Stream<Item = RpcResult<Block>> + Send + use<> {
    let options = WalkOptions {
        scope: DagScope::All,
        entity_bytes: None,
        window: DEFAULT_WINDOW,
    };
    walk_blocks(source, resolved, options).map_err(RpcError::from)
}

/// One DAG's figures in `dag stat`.
struct DagStat {
    cid: Cid,
    size: u64,
    blocks: u64,
}

/// What `dag stat` reports, as Kubo's `DagStatSummary` (zero fields left out).
#[derive(Default)]
struct Summary {
    dags: Vec<DagStat>,
    seen: HashSet<Cid>,
    total: u64,
    redundant: u64,
}

impl Summary {
    fn add(&mut self, block: &Block) {
        let size = block.data().len() as u64;
        if self.seen.insert(*block.cid()) {
            self.total += size;
        }
        self.redundant += size;
        if let Some(dag) = self.dags.last_mut() {
            dag.size += size;
            dag.blocks += 1;
        }
    }

    /// The summary as Kubo's JSON: fields that are zero left out (its `omitempty`), the unique
    /// count, shared size and ratio only once `done`.
    fn to_json(&self, done: bool) -> Value {
        let nonzero = |v: u64| (v != 0).then(|| json!(v));
        let dags: Vec<Value> = self
            .dags
            .iter()
            .map(|d| {
                let mut dag = json!({ "Cid": { "/": d.cid.to_string() } });
                for (k, v) in [("Size", d.size), ("NumBlocks", d.blocks)] {
                    if let Some(v) = nonzero(v) {
                        dag[k] = v;
                    }
                }
                dag
            })
            .collect();
        let mut out = json!({ "DagStats": dags });
        let mut fields = vec![("TotalSize", nonzero(self.total))];
        if done {
            // Kubo's ratio is a float32.
            #[allow(clippy::cast_precision_loss)]
            let ratio = (self.total != 0).then(|| json!(self.redundant as f32 / self.total as f32));
            fields.extend([
                ("UniqueBlocks", nonzero(self.seen.len() as u64)),
                ("SharedSize", nonzero(self.redundant - self.total)),
                ("Ratio", ratio),
            ]);
        }
        for (k, v) in fields {
            if let Some(v) = v {
                out[k] = v;
            }
        }
        out
    }
}

/// Kubo's answer: with `progress` (the default), the summary so far after every block, then
/// the final summary: unique blocks, their total size, what the DAGs share, and each DAG's
/// size and block count.
pub(crate) async fn stat(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["progress"])?;
    let progress = params.flag("progress", true)?;
    let source = params.block_source(&state)?;
    let args: Vec<String> = params
        .required_args()?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (lines, answer) = JsonLines::new(&params);
    tokio::spawn(async move {
        let mut summary = Summary::default();
        for arg in &args {
            let walked = async {
                let resolved = resolve_root(source.as_ref(), arg).await?;
                summary.dags.push(DagStat {
                    cid: *resolved.cid(),
                    size: 0,
                    blocks: 0,
                });
                let mut blocks = std::pin::pin!(dag_blocks(Arc::clone(&source), &resolved));
                while let Some(block) = blocks.try_next().await? {
                    summary.add(&block);
                    if progress && !lines.send(&summary.to_json(false)).await {
                        return Err(RpcError::failed("client went away"));
                    }
                }
                Ok::<_, RpcError>(())
            };
            if let Err(e) = walked.await {
                return lines.fail(e).await;
            }
        }
        lines.send(&summary.to_json(true)).await;
    });
    Ok(answer.respond().await)
}

#[cfg(test)]
#[path = "dag_tests.rs"]
mod tests;

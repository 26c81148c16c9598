//! `pin add|rm|ls`, with Kubo's options and answers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::{Map, Value, json};
use stargate_protocol::Cid;
use stargate_protocol::unixfs::export::{BlockSource, DEFAULT_WINDOW, walk_dag};
use stargate_storage::{PinFilter, PinMode, PinType, StoreError};

use super::content::resolve_arg;
use super::response::JsonLines;
use super::{Params, RpcError, RpcResult};
use crate::AppState;

pub(crate) async fn add(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[
        "recursive",
        "progress",
        "name",
        "fast-provide-root",
        "fast-provide-dag",
        "fast-provide-wait",
        // Sent by kubo-rpc-client; Kubo has no such options, ignores them and answers as
        // below (the client reads either shape).
        "stream",
        "metadata",
        "preload",
        "lock",
    ])?;
    refuse_names(params.get("name"))?;
    let mode = if params.flag("recursive", true)? {
        PinMode::Recursive
    } else {
        PinMode::Direct
    };
    let source = params.block_source(&state)?;
    let mut pinned = Vec::new();
    for arg in params.required_args()? {
        let cid = resolve_arg(source.as_ref(), arg).await?;
        pin_fetching(&state, &source, cid, mode).await?;
        state.content_added(cid, true);
        pinned.push(params.cid(&cid));
    }
    Ok(Json(json!({ "Pins": pinned })).into_response())
}

/// Pins have no names in this store: a name asked for is refused rather than dropped.
fn refuse_names(name: Option<&str>) -> RpcResult<()> {
    match name {
        Some(name) if !name.is_empty() => Err(RpcError::client(format!(
            "cannot name a pin {name:?}: pins have no names here"
        ))),
        _ => Ok(()),
    }
}

/// Pins `cid`; blocks the store lacks are first fetched through `source` (peers, unless the
/// call is offline), as Kubo's `pin add` does.
async fn pin_fetching(
    state: &AppState,
    source: &Arc<dyn BlockSource>,
    cid: Cid,
    mode: PinMode,
) -> RpcResult<()> {
    let store = state.store().clone();
    match tokio::task::spawn_blocking(move || store.pin(&cid, mode)).await? {
        Err(StoreError::MissingBlock { .. }) => {}
        other => return Ok(other?),
    }
    match mode {
        PinMode::Recursive => {
            let mut walk = walk_dag(Arc::clone(source), cid, DEFAULT_WINDOW);
            let mut batch = Vec::new();
            while let Some(block) = walk.try_next().await? {
                batch.push(block);
                if batch.len() >= FETCH_BATCH {
                    put_all(state, std::mem::take(&mut batch)).await?;
                }
            }
            put_all(state, batch).await?;
        }
        PinMode::Direct => put_all(state, vec![source.get(cid).await?]).await?,
    }
    let store = state.store().clone();
    tokio::task::spawn_blocking(move || store.pin(&cid, mode)).await??;
    Ok(())
}

/// Fetched blocks stored per transaction while pinning.
const FETCH_BATCH: usize = 256;

async fn put_all(state: &AppState, blocks: Vec<stargate_protocol::Block>) -> RpcResult<()> {
    let store = state.store().clone();
    tokio::task::spawn_blocking(move || store.put_many(blocks)).await??;
    Ok(())
}

pub(crate) async fn rm(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["recursive"])?;
    let recursive = params.flag("recursive", true)?;
    let source = params.block_source(&state)?;
    let mut removed = Vec::new();
    for arg in params.required_args()? {
        let cid = resolve_arg(source.as_ref(), arg).await?;
        let store = state.store().clone();
        tokio::task::spawn_blocking(move || -> RpcResult<()> {
            match store.pin_type(&cid)? {
                Some(PinType::Recursive) if !recursive => Err(RpcError::failed(format!(
                    "{cid} is pinned recursively; use --recursive=true to unpin it"
                ))),
                Some(PinType::Indirect { via }) => Err(RpcError::failed(format!(
                    "{cid} is pinned indirectly through {via}, not by a pin of its own"
                ))),
                None => Err(RpcError::failed(format!("{cid} is not pinned"))),
                Some(_) => {
                    store.unpin(&cid)?;
                    Ok(())
                }
            }
        })
        .await??;
        removed.push(params.cid(&cid));
    }
    Ok(Json(json!({ "Pins": removed })).into_response())
}

/// Kubo's answer: `{"Keys": {cid: {"Type", "Name"}}}`, or with `stream` a `{"Cid", "Type"}`
/// line per pin. Pins have no names here, so a `name` filter matches none and `names` adds
/// nothing (Kubo leaves an empty name out of its lines).
pub(crate) async fn ls(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[
        "type", "quiet", "stream", "names", "name",
        // Sent by kubo-rpc-client beside the same paths as `arg`s; Kubo ignores it.
        "paths",
    ])?;
    params.flag("names", false)?;
    let no_named_pins = params.get("name").is_some_and(|n| !n.is_empty());
    let filter = match params.get("type").unwrap_or("all") {
        "all" => PinFilter::All,
        "recursive" => PinFilter::Recursive,
        "direct" => PinFilter::Direct,
        "indirect" => PinFilter::Indirect,
        other => {
            return Err(RpcError::client(format!(
                "invalid type {other:?}: use all, direct, indirect or recursive"
            )));
        }
    };
    let stream = params.flag("stream", false)?;
    let source = params.block_source(&state)?;
    let mut wanted = Vec::new();
    for arg in params.args() {
        wanted.push(resolve_arg(source.as_ref(), arg).await?);
    }
    let store = state.store().clone();
    let pins = tokio::task::spawn_blocking(move || -> RpcResult<Vec<(Cid, PinType)>> {
        if no_named_pins {
            return Ok(Vec::new());
        }
        if wanted.is_empty() {
            return Ok(store.pins(filter)?);
        }
        let mut out = Vec::new();
        for cid in wanted {
            match store.pin_type(&cid)? {
                Some(how) if matches_filter(filter, &how) => out.push((cid, how)),
                _ => return Err(RpcError::failed(format!("path '{cid}' is not pinned"))),
            }
        }
        Ok(out)
    })
    .await??;
    let type_name = |how: &PinType| match how {
        PinType::Indirect { via } => format!("indirect through {via}"),
        other => other.name().to_owned(),
    };
    if stream {
        let (lines, answer) = JsonLines::new(&params);
        tokio::spawn(async move {
            for (cid, how) in pins {
                let line = json!({ "Cid": params.cid(&cid), "Type": type_name(&how) });
                if !lines.send(&line).await {
                    break;
                }
            }
        });
        return Ok(answer.respond().await);
    }
    let mut keys = Map::new();
    for (cid, how) in pins {
        keys.entry(params.cid(&cid))
            .or_insert_with(|| json!({ "Type": type_name(&how), "Name": "" }));
    }
    Ok(Json(json!({ "Keys": Value::Object(keys) })).into_response())
}

fn matches_filter(filter: PinFilter, how: &PinType) -> bool {
    match filter {
        PinFilter::Recursive => matches!(how, PinType::Recursive),
        PinFilter::Direct => matches!(how, PinType::Direct),
        PinFilter::Indirect => matches!(how, PinType::Indirect { .. }),
        _ => true,
    }
}

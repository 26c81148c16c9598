//! `repo gc|verify|stat` and `version`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stargate_protocol::{Cid, Codec};

use super::response::JsonLines;
use super::{Params, RpcError, RpcResult};
use crate::AppState;

/// Kubo's `repo gc`: one `{"Key": {"/": cid}}` line per removed block, named as Kubo's
/// multihash-keyed blockstore names it (CIDv1, raw).
pub(crate) async fn gc(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["quiet", "stream-errors", "silent"])?;
    let (lines, answer) = JsonLines::new(&params);
    let store = state.store().clone();
    let worker_lines = lines.clone();
    let work = tokio::task::spawn_blocking(move || {
        store.gc_with(|mh| {
            let cid = Cid::new_v1(Codec::Raw.code(), *mh);
            // A client that went away stops hearing; the collection goes on.
            worker_lines.blocking_send(&json!({ "Key": { "/": cid.to_string() } }));
        })
    });
    tokio::spawn(async move {
        match work.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => lines.fail(RpcError::from(e)).await,
            Err(e) => lines.fail(RpcError::from(e)).await,
        }
    });
    Ok(answer.respond().await)
}

pub(crate) async fn verify(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["drop", "heal", "heal-timeout"])?;
    for repair in ["drop", "heal"] {
        if params.flag(repair, false)? {
            return Err(RpcError::client(format!(
                "--{repair} is not supported: corrupt blocks are reported, not removed"
            )));
        }
    }
    let (lines, answer) = JsonLines::new(&params);
    let store = state.store().clone();
    let worker_lines = lines.clone();
    let work = tokio::task::spawn_blocking(move || {
        store.verify(|p| {
            worker_lines.blocking_send(&json!({
                "Msg": "",
                "Progress": p.blocks_checked,
                "Total": p.blocks_total,
                "Bytes": p.bytes_checked,
            }));
        })
    });
    tokio::spawn(async move {
        let report = match work.await {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => return lines.fail(RpcError::from(e)).await,
            Err(e) => return lines.fail(RpcError::from(e)).await,
        };
        for bad in &report.corrupt {
            lines
                .send(&json!({ "Msg": bad.to_string(), "Progress": 0 }))
                .await;
        }
        if report.corrupt.is_empty() {
            lines
                .send(&json!({
                    "Msg": format!(
                        "verify complete, all {} blocks validated.",
                        report.blocks_checked
                    ),
                    "Progress": 0,
                }))
                .await;
        } else {
            lines
                .fail(RpcError::failed(format!(
                    "verify complete, {} of {} blocks were corrupt",
                    report.corrupt.len(),
                    report.blocks_checked
                )))
                .await;
        }
    });
    Ok(answer.respond().await)
}

pub(crate) async fn stat(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["size-only", "human"])?;
    let store = state.store().clone();
    let dir = store.dir().display().to_string();
    let stat = tokio::task::spawn_blocking(move || store.stat()).await??;
    if params.flag("size-only", false)? {
        return Ok(Json(json!({ "RepoSize": stat.file_bytes, "StorageMax": 0 })).into_response());
    }
    Ok(Json(json!({
        "RepoSize": stat.file_bytes,
        "StorageMax": 0,
        "NumObjects": stat.blocks,
        "BlockBytes": stat.block_bytes,
        "RecursivePins": stat.recursive_pins,
        "DirectPins": stat.direct_pins,
        "RepoPath": dir,
        "Version": format!("stargate-repo@{}", stargate_storage::SCHEMA_VERSION),
    }))
    .into_response())
}

pub(crate) async fn version(params: Params) -> RpcResult<Response> {
    params.only(&["number", "commit", "repo", "all"])?;
    Ok(Json(json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Commit": "",
        "Repo": stargate_storage::SCHEMA_VERSION.to_string(),
        "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
        "Golang": "",
        "Agent": concat!("stargate/", env!("CARGO_PKG_VERSION")),
    }))
    .into_response())
}

//! `routing findprovs|provide`: DHT operations of the node's [`Network`](crate::Network),
//! answered as Kubo's streams of routing query events; and `dag fetch` (Stargate's own): a whole
//! DAG from a Stargate peer over the fast transfer protocol.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryFutureExt, TryStreamExt};
use serde_json::json;
use stargate_protocol::Cid;
use stargate_protocol::unixfs::export::{DEFAULT_WINDOW, walk_dag};

use super::response::JsonLines;
use super::{Params, RpcError, RpcResult};
use crate::AppState;

/// Kubo's `routing.QueryEventType` for "found a provider".
const EVENT_PROVIDER: u8 = 4;
/// Kubo's default `--num-providers`.
const DEFAULT_PROVIDERS: usize = 20;
/// Most providers one call may ask for.
const MAX_PROVIDERS: usize = 1000;
/// Announcements in flight for one recursive `provide`.
const PROVIDE_CONCURRENCY: usize = 16;

pub(crate) async fn findprovs(
    State(state): State<AppState>,
    params: Params,
) -> RpcResult<Response> {
    params.only(&["num-providers", "verbose"])?;
    let cid = parse(params.one_arg()?)?;
    let limit = params
        .number::<usize>("num-providers")?
        .unwrap_or(DEFAULT_PROVIDERS);
    if limit == 0 || limit > MAX_PROVIDERS {
        return Err(RpcError::client(format!(
            "num-providers must be between 1 and {MAX_PROVIDERS}"
        )));
    }
    let mut found = state.network()?.find_providers(cid, limit);
    let (lines, answer) = JsonLines::new(&params);
    tokio::spawn(async move {
        while let Some(provider) = found.next().await {
            let sent = match provider {
                Ok(p) => {
                    lines
                        .send(&json!({
                            "Extra": "",
                            "ID": "",
                            "Responses": [{ "Addrs": p.addrs, "ID": p.id }],
                            "Type": EVENT_PROVIDER,
                        }))
                        .await
                }
                Err(e) => {
                    lines.fail(RpcError::from(e)).await;
                    false
                }
            };
            if !sent {
                break;
            }
        }
    });
    Ok(answer.respond().await)
}

pub(crate) async fn provide(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["recursive", "verbose"])?;
    let recursive = params.flag("recursive", false)?;
    let cids = params
        .required_args()?
        .into_iter()
        .map(parse)
        .collect::<RpcResult<Vec<_>>>()?;
    let network = state.network()?;
    for cid in &cids {
        let store = state.store().clone();
        let cid = *cid;
        if !tokio::task::spawn_blocking(move || store.has(&cid)).await?? {
            return Err(RpcError::failed(format!(
                "block {cid} not found locally, cannot provide"
            )));
        }
    }
    for cid in cids {
        if recursive {
            // The DAG as stored: a block missing below the root fails the walk.
            walk_dag(
                std::sync::Arc::new(state.store().clone()),
                cid,
                DEFAULT_WINDOW,
            )
            .map_err(RpcError::failed)
            .map_ok(|block| network.provide(*block.cid()).map_err(RpcError::from))
            .try_buffer_unordered(PROVIDE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        } else {
            network.provide(cid).await?;
        }
    }
    let (_, answer) = JsonLines::new(&params);
    Ok(answer.respond().await)
}

fn parse(arg: &str) -> RpcResult<Cid> {
    Ok(stargate_protocol::parse_cid(arg)?)
}

/// `dag/fetch?arg=<cid>&peer=<peer>&pin=<bool>`: the DAG under `cid` from `peer`, stored (and
/// pinned if asked) when the answer comes: `{"Root", "Blocks", "Bytes", "Seconds"}`.
pub(crate) async fn fetch_dag(
    State(state): State<AppState>,
    params: Params,
) -> RpcResult<Response> {
    params.only(&["peer", "pin"])?;
    let cid = parse(params.one_arg()?)?;
    let peer = params
        .get("peer")
        .ok_or_else(|| RpcError::client("peer is required: the Stargate peer to fetch from"))?
        .to_owned();
    let pin = params.flag("pin", false)?;
    let started = std::time::Instant::now();
    let fetched = state.network()?.fetch_dag(peer, cid, pin).await?;
    Ok(axum::Json(json!({
        "Root": cid.to_string(),
        "Blocks": fetched.blocks,
        "Bytes": fetched.bytes,
        "Seconds": started.elapsed().as_secs_f64(),
    }))
    .into_response())
}

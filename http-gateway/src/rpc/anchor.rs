//! `anchor/add|status|proof` and `wallet/address|balance`: the CLI's side of Bitcoin anchoring,
//! answered by the node's [`Anchoring`](crate::Anchoring). Like every `/api/v0` command they
//! need no API key (the RPC API is the operator's, on loopback by default); without a chain
//! service they say what it takes to have one.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stargate_protocol::{Cid, parse_cid};

use super::{Params, RpcError, RpcResult};
use crate::AppState;
use crate::anchoring::{ANCHORING_OFF, Anchoring, AnchoringError};

/// Most CIDs one call may name.
pub(crate) const MAX_CIDS_PER_CALL: usize = 1000;

fn anchoring(state: &AppState) -> RpcResult<&dyn Anchoring> {
    state
        .anchoring()
        .ok_or_else(|| RpcError::failed(ANCHORING_OFF))
}

/// Parses every CID before anything is done, so that one bad CID changes nothing.
fn cids(args: Vec<&str>) -> RpcResult<Vec<Cid>> {
    if args.len() > MAX_CIDS_PER_CALL {
        return Err(RpcError::client(format!(
            "at most {MAX_CIDS_PER_CALL} CIDs per call, not {}",
            args.len()
        )));
    }
    args.into_iter()
        .map(|a| parse_cid(a).map_err(RpcError::from))
        .collect()
}

pub(crate) async fn add(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[])?;
    let cids = cids(params.required_args()?)?;
    let entries = anchoring(&state)?.anchor(cids).await?;
    let anchors: Vec<_> = entries.iter().map(|e| e.to_json()).collect();
    Ok(Json(json!({ "anchors": anchors })).into_response())
}

pub(crate) async fn status(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[])?;
    let cids = cids(params.args())?;
    let anchoring = anchoring(&state)?;
    let summary = anchoring.summary().await?;
    let mut anchors = Vec::with_capacity(cids.len());
    for cid in cids {
        anchors.push(match anchoring.status(cid).await? {
            Some(entry) => entry.to_json(),
            None => json!({ "cid": cid.to_string(), "status": "none" }),
        });
    }
    Ok(Json(json!({ "summary": summary, "anchors": anchors })).into_response())
}

pub(crate) async fn proof(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[])?;
    let cid = parse_cid(params.one_arg()?)?;
    let proof = anchoring(&state)?.proof(cid).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        proof.to_json(),
    )
        .into_response())
}

pub(crate) async fn wallet_address(
    State(state): State<AppState>,
    params: Params,
) -> RpcResult<Response> {
    params.only(&[])?;
    let address = anchoring(&state)?.wallet_address().await?;
    Ok(Json(json!({ "address": address })).into_response())
}

pub(crate) async fn wallet_balance(
    State(state): State<AppState>,
    params: Params,
) -> RpcResult<Response> {
    params.only(&[])?;
    let balance = anchoring(&state)?.wallet_balance().await?;
    Ok(Json(balance).into_response())
}

impl From<AnchoringError> for RpcError {
    fn from(e: AnchoringError) -> Self {
        match e {
            // The caller asked for something that does not exist (yet).
            AnchoringError::NotAnchored { .. } | AnchoringError::NotConfirmed { .. } => {
                Self::client(e)
            }
            _ => Self::failed(e),
        }
    }
}

//! `stats/bw`: the bytes over all peer connections, once or (`poll`) every `interval`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::deadline::parse_go_duration;
use super::response::JsonLines;
use super::{Params, RpcError, RpcResult};
use crate::AppState;
use crate::network::Bandwidth;

/// Shortest `interval` between two polled answers.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) async fn bw(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["peer", "proto", "poll", "interval"])?;
    for filter in ["peer", "proto"] {
        if params.get(filter).is_some() {
            return Err(RpcError::client(format!(
                "--{filter} is not supported: bytes are counted for all peers and protocols together"
            )));
        }
    }
    let network = state.network()?;
    if !params.flag("poll", false)? {
        return Ok(Json(shown(network.bandwidth())).into_response());
    }
    let text = params.get("interval").unwrap_or("1s");
    let interval = parse_go_duration(text)
        .filter(|i| *i >= MIN_INTERVAL)
        .ok_or_else(|| {
            RpcError::client(format!(
                "invalid interval {text:?}: use a duration of at least {}ms",
                MIN_INTERVAL.as_millis()
            ))
        })?;
    let (lines, answer) = JsonLines::new(&params);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            tokio::select! {
                () = lines.closed() => return,
                _ = ticks.tick() => {}
            }
            let Ok(network) = state.network() else {
                return;
            };
            if !lines.send(&shown(network.bandwidth())).await {
                return;
            }
        }
    });
    Ok(answer.respond().await)
}

/// Kubo's shape.
fn shown(bw: Bandwidth) -> Value {
    json!({
        "TotalIn": bw.total_in,
        "TotalOut": bw.total_out,
        "RateIn": bw.rate_in,
        "RateOut": bw.rate_out,
    })
}

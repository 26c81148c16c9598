//! `config` (read-only) and `key list`: what clients ask of Kubo's configuration and keystore,
//! from the running node. Changing either is done in stargate.toml and the data dir, so a
//! `config` call that sets a value is refused, and the keystore has one key, the node's own.

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::params::multibase_named;
use super::swarm::peer_id_as_cid;
use super::{Params, RpcError, RpcResult};
use crate::AppState;

/// Where the daemon's API and gateway listen, as bound (set on the API router by the daemon).
#[derive(Debug, Clone, Copy)]
pub struct ListenAddrs {
    pub api: SocketAddr,
    pub gateway: SocketAddr,
}

/// `addr` as a Kubo multiaddr (`/ip4/127.0.0.1/tcp/5001`).
fn multiaddr(addr: SocketAddr) -> String {
    let family = if addr.is_ipv4() { "ip4" } else { "ip6" };
    format!("/{family}/{}/tcp/{}", addr.ip(), addr.port())
}

/// The configuration clients read, in Kubo's shape: the node's peer ID, where its API and
/// gateway listen, and its swarm listen addresses.
async fn config_document(state: &AppState, listen: Option<ListenAddrs>) -> RpcResult<Value> {
    let identity = state.network()?.identity(None).await?;
    let suffix = format!("/p2p/{}", identity.id);
    let mut swarm: Vec<&str> = identity
        .addresses
        .iter()
        .map(|a| a.strip_suffix(&suffix).unwrap_or(a))
        .collect();
    swarm.dedup();
    let mut addresses = json!({ "Swarm": swarm });
    if let Some(listen) = listen {
        addresses["API"] = json!(multiaddr(listen.api));
        addresses["Gateway"] = json!(multiaddr(listen.gateway));
    }
    Ok(json!({
        "Identity": { "PeerID": identity.id },
        "Addresses": addresses,
    }))
}

/// Kubo's `config <key>`: `{"Key", "Value"}` for a dotted key (`Addresses.API`).
pub(crate) async fn get(
    State(state): State<AppState>,
    listen: Option<Extension<ListenAddrs>>,
    params: Params,
) -> RpcResult<Response> {
    params.only(&["bool", "json"])?;
    let key = match params.args().as_slice() {
        [key] => (*key).to_owned(),
        [] => return Err(RpcError::client("argument \"key\" is required")),
        _ => {
            return Err(RpcError::client(
                "config is read-only here: set it in stargate.toml and restart the daemon",
            ));
        }
    };
    if key.starts_with("Identity.PrivKey") {
        return Err(RpcError::client(
            "cannot show or change private key through API",
        ));
    }
    let doc = config_document(&state, listen.map(|Extension(l)| l)).await?;
    let value = key
        .split('.')
        .try_fold(&doc, |v, part| v.get(part))
        .ok_or_else(|| {
            RpcError::client(format!(
                "failed to get config value: key has no attribute {key:?}"
            ))
        })?;
    Ok(Json(json!({ "Key": key, "Value": value })).into_response())
}

/// Kubo's `config show`: the whole document.
pub(crate) async fn show(
    State(state): State<AppState>,
    listen: Option<Extension<ListenAddrs>>,
    params: Params,
) -> RpcResult<Response> {
    params.only(&[])?;
    let doc = config_document(&state, listen.map(|Extension(l)| l)).await?;
    Ok(Json(doc).into_response())
}

/// Kubo's `key list`: the node's own key, named `self`, its ID in `ipns-base` (a base36
/// libp2p-key CID by default, as Kubo shows it; `b58mh` for the bare peer ID).
pub(crate) async fn key_list(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["l", "ipns-base"])?;
    params.flag("l", false)?;
    let base = match params.get("ipns-base").unwrap_or("base36") {
        "b58mh" => None,
        name => Some(
            multibase_named(name)
                .ok_or_else(|| RpcError::client(format!("invalid ipns-base {name:?}")))?,
        ),
    };
    let identity = state.network()?.identity(None).await?;
    let id = match base {
        Some(base) => peer_id_as_cid(&identity.id, base)?,
        None => identity.id,
    };
    Ok(Json(json!({ "Keys": [{ "Name": "self", "Id": id }] })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_as_multiaddrs() {
        assert_eq!(
            multiaddr("127.0.0.1:5001".parse().unwrap()),
            "/ip4/127.0.0.1/tcp/5001"
        );
        assert_eq!(
            multiaddr("[::1]:8080".parse().unwrap()),
            "/ip6/::1/tcp/8080"
        );
    }
}

//! `id` and `swarm connect|peers|disconnect`: answered by the node's [`Network`](crate::Network);
//! without a daemon they say that they need one.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use multibase::Base;
use stargate_protocol::{Cid, Multihash};

use super::params::multibase_named;
use super::{Params, RpcError, RpcResult};
use crate::AppState;
use crate::network::Direction;

pub(crate) async fn id(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["format", "peerid-base"])?;
    if params.get("format").is_some() {
        return Err(RpcError::client("--format is not supported"));
    }
    let base = match params.get("peerid-base").unwrap_or("b58mh") {
        "b58mh" | "v0" => None,
        name => Some(
            multibase_named(name)
                .ok_or_else(|| RpcError::client(format!("invalid peerid-base {name:?}")))?,
        ),
    };
    let peer = match params.args().as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        _ => return Err(RpcError::client("expected at most one peer ID")),
    };
    let id = state.network()?.identity(peer).await?;
    let shown = match base {
        Some(base) => peer_id_as_cid(&id.id, base)?,
        None => id.id,
    };
    Ok(Json(json!({
        "ID": shown,
        "PublicKey": id.public_key,
        "Addresses": id.addresses,
        "AgentVersion": id.agent_version,
        "ProtocolVersion": id.protocol_version,
        "Protocols": id.protocols,
    }))
    .into_response())
}

/// A peer ID (a base58btc multihash) as Kubo's `--peerid-base` shows one: a CIDv1 with the
/// libp2p-key codec in `base`.
pub(super) fn peer_id_as_cid(id: &str, base: Base) -> RpcResult<String> {
    let failed = || RpcError::failed(format!("peer ID {id:?} is not a base58btc multihash"));
    let bytes = Base::Base58Btc.decode(id).map_err(|_| failed())?;
    let hash = Multihash::from_bytes(&bytes).map_err(|_| failed())?;
    Cid::new_v1(LIBP2P_KEY, hash)
        .to_string_of_base(base)
        .map_err(|_| failed())
}

/// The multicodec of peer IDs as CIDs.
const LIBP2P_KEY: u64 = 0x72;

pub(crate) async fn connect(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&[])?;
    let network = state.network()?;
    let mut lines = Vec::new();
    for addr in params.required_args()? {
        let peer = network.connect(addr.to_owned()).await?;
        lines.push(format!("connect {peer} success"));
    }
    Ok(Json(json!({ "Strings": lines })).into_response())
}

pub(crate) async fn disconnect(
    State(state): State<AppState>,
    params: Params,
) -> RpcResult<Response> {
    params.only(&[])?;
    let network = state.network()?;
    let mut lines = Vec::new();
    for addr in params.required_args()? {
        let peer = network.disconnect(addr.to_owned()).await?;
        lines.push(format!("disconnect {peer} success"));
    }
    Ok(Json(json!({ "Strings": lines })).into_response())
}

/// Kubo's answer: `{"Peers": [{"Addr", "Peer", "Latency"?, "Direction"?, "Identify"}]}`
/// (`null` for none). `Identify` is always there, filled in with `identify` or `verbose`;
/// `streams` adds nothing, since open streams are not tracked here.
pub(crate) async fn peers(State(state): State<AppState>, params: Params) -> RpcResult<Response> {
    params.only(&["verbose", "streams", "latency", "direction", "identify"])?;
    let verbose = params.flag("verbose", false)?;
    let latency = verbose || params.flag("latency", false)?;
    let direction = verbose || params.flag("direction", false)?;
    let identify = verbose || params.flag("identify", false)?;
    params.flag("streams", false)?;
    let network = state.network()?;
    let mut peers = Vec::new();
    for p in network.peers().await? {
        let mut entry = json!({ "Addr": p.addr, "Peer": p.peer });
        if latency {
            entry["Latency"] = json!(
                p.latency
                    .map_or_else(|| "n/a".to_owned(), |l| format!("{l:?}"))
            );
        }
        if direction {
            // Kubo's network.Direction numbers.
            entry["Direction"] = json!(match p.direction {
                Direction::Inbound => 1,
                Direction::Outbound => 2,
            });
        }
        entry["Identify"] = if identify {
            // A peer that has not finished identify yet is shown by its ID alone, as in Kubo.
            match network.identity(Some(p.peer.clone())).await {
                Ok(id) => identify_json(id),
                Err(_) => empty_identify(&p.peer),
            }
        } else {
            empty_identify("")
        };
        peers.push(entry);
    }
    // Kubo answers `null` rather than an empty list.
    let peers = if peers.is_empty() {
        Value::Null
    } else {
        Value::Array(peers)
    };
    Ok(Json(json!({ "Peers": peers })).into_response())
}

/// Kubo's `IdOutput` for a peer, lists sorted as Kubo sorts them.
fn identify_json(mut id: crate::PeerIdentity) -> Value {
    id.addresses.sort();
    id.protocols.sort();
    json!({
        "ID": id.id,
        "PublicKey": id.public_key,
        "Addresses": id.addresses,
        "AgentVersion": id.agent_version,
        "Protocols": id.protocols,
    })
}

/// Kubo's `IdOutput` with nothing known but (maybe) the ID.
fn empty_identify(id: &str) -> Value {
    json!({ "ID": id, "PublicKey": "", "Addresses": null, "AgentVersion": "", "Protocols": null })
}

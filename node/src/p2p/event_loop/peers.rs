//! Connected peers and their connections: the `connect`, `disconnect` and `peers` commands, the
//! answers to the dials they ask for, round-trip times, peers found on the LAN, and the
//! connection manager that keeps the count between the water marks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionError, ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId, Swarm, ping};
use stargate_http_gateway::{ConnectedPeer, Direction, NetworkError};
use tokio::sync::oneshot;

use super::peering::Peering;
use crate::p2p::behaviour::Behaviour;
use crate::p2p::command::PeerCommand;
use crate::p2p::metrics::Metrics;
use crate::p2p::settings::{Limits, split_peer};

/// One connection to a peer.
#[derive(Debug)]
struct Connection {
    id: ConnectionId,
    remote: Multiaddr,
    direction: Direction,
    since: Instant,
}

/// What we know of a connected peer's connections.
#[derive(Debug, Default)]
struct Peer {
    connections: Vec<Connection>,
    rtt: Option<Duration>,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Peers {
    peers: HashMap<PeerId, Peer>,
    /// `connect` commands waiting for their dial's outcome.
    dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetworkError>>>,
    limits: Limits,
}

impl Peers {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            peers: HashMap::new(),
            dials: HashMap::new(),
            limits,
        }
    }

    pub(super) fn on_command(&mut self, swarm: &mut Swarm<Behaviour>, command: PeerCommand) {
        match command {
            PeerCommand::Connect { addr, reply } => self.connect(swarm, addr, reply),
            PeerCommand::Disconnect { peer, reply } => {
                let answer = swarm
                    .disconnect_peer_id(peer)
                    .map_err(|()| NetworkError::Failed(format!("not connected to {peer}")));
                let _ = reply.send(answer);
            }
            PeerCommand::List { reply } => {
                let _ = reply.send(self.list());
            }
        }
    }

    pub(super) fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// The connected peers.
    pub(super) fn ids(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// The remote addresses of `peer`'s connections.
    pub(super) fn remotes(&self, peer: &PeerId) -> impl Iterator<Item = &Multiaddr> {
        self.peers
            .get(peer)
            .into_iter()
            .flat_map(|p| p.connections.iter().map(|c| &c.remote))
    }

    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn connection_count(&self) -> usize {
        self.peers.values().map(|p| p.connections.len()).sum()
    }

    /// A connection was established: recorded, its dial answered, and the connection count
    /// trimmed if it reached the high water mark.
    pub(super) fn connected(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
        peering: &Peering,
    ) {
        let (mut remote, direction) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (address.clone(), Direction::Outbound),
            ConnectedPoint::Listener { send_back_addr, .. } => {
                (send_back_addr.clone(), Direction::Inbound)
            }
        };
        // Dialled addresses may end in the peer ID; peers are listed with it apart.
        if matches!(remote.iter().last(), Some(Protocol::P2p(_))) {
            remote.pop();
        }
        tracing::debug!(%peer, %remote, ?direction, "connected");
        self.peers
            .entry(peer)
            .or_default()
            .connections
            .push(Connection {
                id,
                remote,
                direction,
                since: Instant::now(),
            });
        if let Some(reply) = self.dials.remove(&id) {
            let _ = reply.send(Ok(peer));
        }
        if self.connection_count() >= self.limits.high_water as usize {
            self.trim(swarm, peering);
        }
    }

    /// A connection closed; `remaining` are still open to the peer.
    pub(super) fn closed(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remaining: u32,
        cause: Option<&ConnectionError>,
    ) {
        tracing::debug!(%peer, ?cause, "connection closed");
        if let Some(p) = self.peers.get_mut(&peer) {
            p.connections.retain(|c| c.id != id);
        }
        if remaining == 0 {
            self.peers.remove(&peer);
        }
    }

    pub(super) fn dial_failed(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        error: &DialError,
    ) {
        tracing::debug!(?peer, %error, "dial failed");
        if let Some(reply) = self.dials.remove(&id) {
            let _ = reply.send(Err(NetworkError::Failed(format!("dial failed: {error}"))));
        }
    }

    pub(super) fn on_ping(&mut self, event: ping::Event) {
        if let (Ok(rtt), Some(p)) = (event.result, self.peers.get_mut(&event.peer)) {
            p.rtt = Some(rtt);
        }
    }

    /// Peers found on the LAN: handed to the DHT, and dialled while below the low water mark.
    pub(super) fn discovered(
        &self,
        swarm: &mut Swarm<Behaviour>,
        found: impl IntoIterator<Item = (PeerId, Multiaddr)>,
    ) {
        for (peer, addr) in found {
            swarm.behaviour_mut().kad.add_address(&peer, addr);
            if !swarm.is_connected(&peer)
                && self.connection_count() < self.limits.low_water as usize
            {
                let _ = swarm.dial(
                    DialOpts::peer_id(peer)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build(),
                );
            }
        }
    }

    pub(super) fn on_tick(
        &self,
        swarm: &mut Swarm<Behaviour>,
        peering: &Peering,
        metrics: &Metrics,
    ) {
        self.trim(swarm, peering);
        metrics.set_connections(self.connection_count());
    }

    /// At the high water mark, closes peers (newest first, none within the grace period, no
    /// peering peer) until the low water mark is reached.
    fn trim(&self, swarm: &mut Swarm<Behaviour>, peering: &Peering) {
        let limits = self.limits;
        let count = self.connection_count();
        if count < limits.high_water as usize {
            return;
        }
        let now = Instant::now();
        let mut candidates: Vec<(Instant, PeerId, usize)> = self
            .peers
            .iter()
            .filter(|(id, _)| !peering.contains(id))
            .filter_map(|(id, p)| {
                let newest = p.connections.iter().map(|c| c.since).max()?;
                (now.duration_since(newest) >= limits.grace_period).then_some((
                    newest,
                    *id,
                    p.connections.len(),
                ))
            })
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut excess = count - limits.low_water as usize;
        let mut closed = 0;
        for (_, peer, n) in candidates {
            if excess == 0 {
                break;
            }
            let _ = swarm.disconnect_peer_id(peer);
            excess = excess.saturating_sub(n);
            closed += 1;
        }
        tracing::debug!(connections = count, closed, "trimmed connections");
    }

    fn connect(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetworkError>>,
    ) {
        let dial = match split_peer(&addr) {
            Some((peer, transport)) => {
                if swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, transport.clone());
                DialOpts::peer_id(peer)
                    .addresses(vec![transport])
                    .condition(PeerCondition::Always)
                    .build()
            }
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let id = dial.connection_id();
        match swarm.dial(dial) {
            Ok(()) => {
                self.dials.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NetworkError::Failed(format!(
                    "connect {addr} failure: {e}"
                ))));
            }
        }
    }

    fn list(&self) -> Vec<ConnectedPeer> {
        let mut out: Vec<_> = self
            .peers
            .iter()
            .flat_map(|(id, p)| {
                p.connections.iter().map(move |c| {
                    ConnectedPeer::new(id.to_string(), c.remote.to_string(), c.direction, p.rtt)
                })
            })
            .collect();
        out.sort_by(|a, b| a.peer.cmp(&b.peer).then(a.addr.cmp(&b.addr)));
        out
    }
}

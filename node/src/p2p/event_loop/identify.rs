//! Identities: ours as `id` shows it, the connected peers' as they identified themselves, which
//! of them are Stargate nodes, who waits to know, and who is told as they come and go.

use std::collections::HashMap;

use base64::Engine as _;
use libp2p::identity::PublicKey;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Swarm, identify};
use stargate_http_gateway::{NetworkError, PeerIdentity};
use tokio::sync::{mpsc, oneshot};

use super::addresses::Addresses;
use super::peers::Peers;
use crate::p2p::behaviour::{Behaviour, PROTOCOL_VERSION, agent_version, is_stargate_agent};
use crate::p2p::command::IdentifyCommand;
use crate::p2p::command::StargatePeer;

/// Questions "is this peer a Stargate node?" waiting for identify messages; more are answered
/// "no" at once.
const MAX_IDENTIFY_WAITERS: usize = 1024;

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Identify {
    public_key: PublicKey,
    /// What connected peers said of themselves; dropped when their last connection closes.
    infos: HashMap<PeerId, identify::Info>,
    /// Who waits to know whether a peer is a Stargate node, until it identifies itself.
    waiters: HashMap<PeerId, Vec<oneshot::Sender<Option<bool>>>>,
    /// Who is told of Stargate peers coming and going (the sync protocol).
    watchers: Vec<mpsc::Sender<StargatePeer>>,
}

impl Identify {
    pub(super) fn new(public_key: PublicKey) -> Self {
        Self {
            public_key,
            infos: HashMap::new(),
            waiters: HashMap::new(),
            watchers: Vec::new(),
        }
    }

    pub(super) fn on_command(
        &mut self,
        swarm: &Swarm<Behaviour>,
        peers: &Peers,
        addresses: &Addresses,
        command: IdentifyCommand,
    ) {
        match command {
            IdentifyCommand::Identity { peer, reply } => {
                let answer = match peer {
                    None => Ok(self.own_identity(swarm, addresses)),
                    Some(p) if p == *swarm.local_peer_id() => {
                        Ok(self.own_identity(swarm, addresses))
                    }
                    Some(p) => self.peer_identity(&p),
                };
                let _ = reply.send(answer);
            }
            IdentifyCommand::StargatePeers { reply } => {
                let (mut stargate, mut pending) = (Vec::new(), Vec::new());
                for id in peers.ids() {
                    match self.infos.get(id) {
                        Some(i) if is_stargate_agent(&i.agent_version) => stargate.push(*id),
                        Some(_) => {}
                        None => pending.push(*id),
                    }
                }
                let _ = reply.send((stargate, pending));
            }
            IdentifyCommand::IsStargate { peer, reply } => self.is_stargate(peers, peer, reply),
            IdentifyCommand::WatchStargate { events } => {
                for (peer, info) in &self.infos {
                    if is_stargate_agent(&info.agent_version) {
                        let _ = events.try_send(StargatePeer::Connected(*peer));
                    }
                }
                self.watchers.push(events);
            }
        }
    }

    /// What `peer` said of itself, if it is connected and identified itself.
    pub(super) fn info(&self, peer: &PeerId) -> Option<&identify::Info> {
        self.infos.get(peer)
    }

    /// `peer` identified itself. Kept (and returns true) only while it is connected.
    pub(super) fn identified(&mut self, peers: &Peers, peer: PeerId, info: identify::Info) -> bool {
        if !peers.is_connected(&peer) {
            return false;
        }
        let stargate = is_stargate_agent(&info.agent_version);
        let known = self.infos.insert(peer, info).is_some();
        self.answer_waiters(&peer, Some(stargate));
        if stargate && !known {
            self.tell_watchers(StargatePeer::Connected(peer));
        }
        true
    }

    /// `peer`'s last connection closed.
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        let was = self.infos.remove(peer);
        self.answer_waiters(peer, None);
        if was.is_some_and(|i| is_stargate_agent(&i.agent_version)) {
            self.tell_watchers(StargatePeer::Disconnected(*peer));
        }
    }

    /// A full watcher misses the event (it must cope); a closed one is dropped.
    fn tell_watchers(&mut self, event: StargatePeer) {
        self.watchers
            .retain(|w| !matches!(w.try_send(event), Err(mpsc::error::TrySendError::Closed(_))));
    }

    fn is_stargate(&mut self, peers: &Peers, peer: PeerId, reply: oneshot::Sender<Option<bool>>) {
        if !peers.is_connected(&peer) {
            let _ = reply.send(None);
            return;
        }
        if let Some(info) = self.infos.get(&peer) {
            let _ = reply.send(Some(is_stargate_agent(&info.agent_version)));
            return;
        }
        if self.waiters.len() >= MAX_IDENTIFY_WAITERS {
            self.waiters.retain(|_, w| w.iter().any(|r| !r.is_closed()));
        }
        if self.waiters.len() >= MAX_IDENTIFY_WAITERS {
            let _ = reply.send(Some(false));
            return;
        }
        self.waiters.entry(peer).or_default().push(reply);
    }

    /// Answers who waited to know whether `peer` is a Stargate node.
    fn answer_waiters(&mut self, peer: &PeerId, stargate: Option<bool>) {
        for reply in self.waiters.remove(peer).unwrap_or_default() {
            let _ = reply.send(stargate);
        }
    }

    fn own_identity(&self, swarm: &Swarm<Behaviour>, addresses: &Addresses) -> PeerIdentity {
        let local = *swarm.local_peer_id();
        PeerIdentity::new(
            local.to_string(),
            encode_key(&self.public_key),
            addresses
                .own(swarm)
                .iter()
                .map(|a| with_peer(a, local))
                .collect(),
            agent_version(),
            PROTOCOL_VERSION.to_owned(),
            swarm.behaviour().protocols(),
        )
    }

    fn peer_identity(&self, peer: &PeerId) -> Result<PeerIdentity, NetworkError> {
        let info = self.infos.get(peer).ok_or_else(|| {
            NetworkError::Failed(format!(
                "{peer} is not connected or has not identified itself yet"
            ))
        })?;
        Ok(PeerIdentity::new(
            peer.to_string(),
            encode_key(&info.public_key),
            info.listen_addrs
                .iter()
                .map(|a| with_peer(a, *peer))
                .collect(),
            info.agent_version.clone(),
            info.protocol_version.clone(),
            info.protocols.iter().map(ToString::to_string).collect(),
        ))
    }
}

/// A public key as Kubo's `id` shows it: protobuf, base64.
fn encode_key(key: &PublicKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.encode_protobuf())
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer(addr: &Multiaddr, peer: PeerId) -> String {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.to_string()
    } else {
        addr.clone().with(Protocol::P2p(peer)).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_suffix_is_added_once() {
        let peer = PeerId::random();
        let bare: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let full = bare.clone().with(Protocol::P2p(peer));
        assert_eq!(with_peer(&bare, peer), full.to_string());
        assert_eq!(with_peer(&full, peer), full.to_string());
    }
}

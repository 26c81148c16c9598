//! Peering peers: kept connected, redialled with a backoff when they go away or cannot be
//! reached.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm};

use crate::p2p::behaviour::Behaviour;

/// Peering redials back off from the first value, doubling up to the second.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(600));

/// One peering peer.
#[derive(Debug)]
struct Peer {
    addrs: Vec<Multiaddr>,
    next_dial: Instant,
    backoff: Duration,
}

impl Peer {
    /// The last dial failed: wait, and wait longer next time.
    fn failed(&mut self, now: Instant) {
        self.next_dial = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF.1);
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Peering {
    peers: HashMap<PeerId, Peer>,
}

impl Peering {
    /// The peers of `[swarm] peering`, all due for a dial.
    pub(super) fn new(peers: &[(PeerId, Vec<Multiaddr>)]) -> Self {
        let now = Instant::now();
        let peers = peers
            .iter()
            .map(|(peer, addrs)| {
                (
                    *peer,
                    Peer {
                        addrs: addrs.clone(),
                        next_dial: now,
                        backoff: BACKOFF.0,
                    },
                )
            })
            .collect();
        Self { peers }
    }

    pub(super) fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    /// Dials the peering peers that are due and not connected.
    pub(super) fn dial(&mut self, swarm: &mut Swarm<Behaviour>) {
        let now = Instant::now();
        let due: Vec<(PeerId, Vec<Multiaddr>)> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.next_dial <= now)
            .map(|(id, p)| {
                // Pushed back until the dial's outcome says otherwise.
                p.next_dial = now + BACKOFF.1;
                (*id, p.addrs.clone())
            })
            .collect();
        for (peer, addrs) in due {
            if swarm.is_connected(&peer) {
                continue;
            }
            let dial = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = swarm.dial(dial) {
                tracing::debug!(%peer, error = %e, "peering dial failed");
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.failed(now);
                }
            }
        }
    }

    pub(super) fn connected(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.backoff = BACKOFF.0;
        }
    }

    /// `peer`'s last connection closed.
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            // Redial soon, not at once: the peer may be restarting.
            p.next_dial = Instant::now() + p.backoff;
        }
    }

    pub(super) fn dial_failed(&mut self, peer: &PeerId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.failed(Instant::now());
        }
    }
}

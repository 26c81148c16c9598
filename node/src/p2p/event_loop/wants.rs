//! Blocks wanted over Bitswap: who waits for each, which of the peers asked at first have yet to
//! answer, and Bitswap's counters for the metrics.

use std::collections::{HashMap, HashSet};

use libp2p::{PeerId, Swarm};
use stargate_http_gateway::NetworkError;
use stargate_protocol::{Block, Cid};
use tokio::sync::oneshot;

use super::bans::BAN;
use super::peers::Peers;
use crate::p2p::behaviour::Behaviour;
use crate::p2p::bitswap::{self, WantError};
use crate::p2p::command::WantCommand;
use crate::p2p::metrics::Metrics;

/// A block wanted over Bitswap, and who waits for it.
#[derive(Debug, Default)]
struct Wanted {
    waiters: Vec<oneshot::Sender<Result<Block, NetworkError>>>,
    /// Peers asked when the want began that have not yet said they lack the block.
    asked: HashSet<PeerId>,
    /// Told once `asked` is empty: time to look for providers.
    exhausted: Vec<oneshot::Sender<()>>,
}

impl Wanted {
    /// Drops waiters that went away; whether any remain.
    fn has_waiters(&mut self) -> bool {
        self.waiters.retain(|w| !w.is_closed());
        !self.waiters.is_empty()
    }

    fn peer_lacks(&mut self, peer: &PeerId) {
        if self.asked.remove(peer) && self.asked.is_empty() {
            for e in self.exhausted.drain(..) {
                let _ = e.send(());
            }
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Wants {
    wants: HashMap<Cid, Wanted>,
    /// Bitswap's counters when the metrics were last set.
    stats: bitswap::Stats,
}

impl Wants {
    pub(super) fn on_command(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peers: &Peers,
        command: WantCommand,
    ) {
        match command {
            WantCommand::Want {
                cid,
                block,
                exhausted,
            } => self.want(swarm, peers, cid, block, exhausted),
            WantCommand::AddPeers { cid, peers } => {
                if self.wants.contains_key(&cid) {
                    swarm.behaviour_mut().bitswap.add_peers(&cid, &peers);
                }
            }
            WantCommand::Abandoned { cid } => {
                if let Some(w) = self.wants.get_mut(&cid)
                    && !w.has_waiters()
                {
                    self.wants.remove(&cid);
                    swarm.behaviour_mut().bitswap.cancel(&cid);
                }
            }
        }
    }

    /// Hands arrived blocks to their waiters. Returns a peer that broke the protocol, to be
    /// banned.
    pub(super) fn on_event(&mut self, event: bitswap::Event) -> Option<PeerId> {
        match event {
            bitswap::Event::Block { block, from } => {
                tracing::trace!(cid = %block.cid(), peer = %from, "block arrived");
                if let Some(w) = self.wants.remove(block.cid()) {
                    for waiter in w.waiters {
                        let _ = waiter.send(Ok(block.clone()));
                    }
                }
            }
            bitswap::Event::DontHave { cid, peer } => {
                if let Some(w) = self.wants.get_mut(&cid) {
                    w.peer_lacks(&peer);
                }
            }
            bitswap::Event::Have { cid, peer } => {
                tracing::trace!(%cid, %peer, "peer has a wanted block");
            }
            bitswap::Event::Misbehaved { peer, reason } => {
                tracing::info!(%peer, %reason, ban = ?BAN, "banned a misbehaving Bitswap peer");
                self.disconnected(&peer);
                return Some(peer);
            }
        }
        None
    }

    /// `peer` is gone: it will not answer.
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        for w in self.wants.values_mut() {
            w.peer_lacks(peer);
        }
    }

    /// Withdraws the wants nobody waits for any more and brings the Bitswap metrics up to date.
    pub(super) fn on_tick(&mut self, swarm: &mut Swarm<Behaviour>, metrics: &Metrics) {
        let mut abandoned = Vec::new();
        self.wants.retain(|cid, w| {
            let keep = w.has_waiters();
            if !keep {
                abandoned.push(*cid);
            }
            keep
        });
        for cid in abandoned {
            swarm.behaviour_mut().bitswap.cancel(&cid);
        }
        let stats = swarm.behaviour().bitswap.stats();
        metrics.set_bitswap(&self.stats, &stats);
        self.stats = stats;
    }

    /// Asks every connected peer for `cid` (Bitswap asks one for the block and the others
    /// whether they have it).
    fn want(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peers: &Peers,
        cid: Cid,
        block: oneshot::Sender<Result<Block, NetworkError>>,
        exhausted: oneshot::Sender<()>,
    ) {
        let peers: Vec<PeerId> = peers.ids().copied().collect();
        if let Err(e) = swarm.behaviour_mut().bitswap.want(cid, &peers) {
            let error = match e {
                WantError::Unsupported { .. } => NetworkError::Invalid {
                    input: cid.to_string(),
                    reason: e.to_string(),
                },
                _ => NetworkError::Failed(e.to_string()),
            };
            let _ = block.send(Err(error));
            return;
        }
        let wanted = self.wants.entry(cid).or_default();
        if wanted.waiters.is_empty() {
            wanted.asked = peers.into_iter().collect();
        }
        wanted.waiters.push(block);
        if wanted.asked.is_empty() {
            let _ = exhausted.send(());
        } else {
            wanted.exhausted.push(exhausted);
        }
    }
}

//! Misbehaving peers, refused for a while.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use libp2p::{PeerId, Swarm};

use crate::p2p::behaviour::Behaviour;

/// A peer that sent a corrupt block or a malformed message is refused for this long.
pub(super) const BAN: Duration = Duration::from_secs(600);
/// Banned peers remembered at once; past this the oldest ban is lifted early.
const MAX_BANNED: usize = 1024;

/// Banned peers, oldest ban first, with when each ban ends.
#[derive(Debug, Default)]
pub(super) struct Bans {
    banned: VecDeque<(PeerId, Instant)>,
}

impl Bans {
    /// Refuses every connection with `peer` for [`BAN`] (the DHT would otherwise dial it again).
    pub(super) fn ban(&mut self, swarm: &mut Swarm<Behaviour>, peer: PeerId) {
        if self.banned.len() >= MAX_BANNED
            && let Some((oldest, _)) = self.banned.pop_front()
        {
            swarm.behaviour_mut().banned.unblock_peer(oldest);
        }
        self.banned.retain(|(p, _)| *p != peer);
        self.banned.push_back((peer, Instant::now() + BAN));
        swarm.behaviour_mut().banned.block_peer(peer);
    }

    /// Lifts the bans that end by `now`.
    pub(super) fn lift(&mut self, swarm: &mut Swarm<Behaviour>, now: Instant) {
        while let Some(&(peer, until)) = self.banned.front() {
            if until > now {
                return;
            }
            self.banned.pop_front();
            swarm.behaviour_mut().banned.unblock_peer(peer);
        }
    }
}

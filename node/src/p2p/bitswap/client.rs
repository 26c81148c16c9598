//! The client side: our wants, which peer was asked what, and what arrives.
//!
//! A want is keyed by multihash (the store's key; a CIDv0 and a CIDv1 of the same bytes are one
//! want). For each want, one peer at a time is asked for the block (want-block); the other
//! candidates are asked whether they have it (want-have), all with send-dont-have. The block
//! peer is preferably one that said HAVE, otherwise the one with the fewest want-blocks in
//! flight; when it answers DONT_HAVE or goes away, the next is asked. Want-blocks in flight per
//! peer are bounded; a want with no peer able to take it waits (`stalled`) until one can.
//!
//! Nothing here times out: the retrieval layer decides when to give up and cancels. What we
//! asked a peer is forgotten when it disconnects; it stays a candidate, so a peer that
//! reconnects is asked again.
//!
//! A block is accepted from any peer while it is wanted. A block that is not wanted is a
//! duplicate if its want ended recently (we cancelled it with that peer, or it arrived from
//! another), and otherwise was never asked for, which is how a corrupted block shows up (its
//! bytes hash to a CID nobody asked for): the peer misbehaves.

use std::collections::{HashMap, HashSet, VecDeque};

use libp2p::PeerId;
use stargate_protocol::bitswap::{
    BlockPresence, PresenceType, ProtocolVersion, WantEntry, WantType,
};
use stargate_protocol::{Block, Cid, Multihash, check_supported};

use super::event::{Event, WantError};

/// Most candidate peers one want keeps.
const MAX_CANDIDATES: usize = 64;

#[derive(Debug, Clone, Copy)]
pub(super) struct ClientLimits {
    pub(super) max_wants: usize,
    pub(super) max_wants_per_peer: usize,
    pub(super) max_block_wants_per_peer: usize,
}

/// What a received block is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrival {
    Wanted,
    /// Its want ended recently (cancelled, or satisfied by another copy).
    Duplicate,
    /// Never asked for: a corrupted or unsolicited block.
    Unsolicited,
}

#[derive(Debug)]
struct Want {
    /// The CIDs asked for under this multihash, in the order asked; the first goes on the wire.
    cids: Vec<Cid>,
    priority: i32,
    candidates: Vec<PeerId>,
    asked: HashMap<PeerId, WantType>,
    block_peer: Option<PeerId>,
    have: HashSet<PeerId>,
    dont_have: HashSet<PeerId>,
    stalled: bool,
}

#[derive(Debug)]
struct PeerWants {
    supports_have: bool,
    block_wants: usize,
    /// Wants this peer holds for us.
    sent: HashSet<Multihash>,
    /// Wants that ended with this peer, the oldest first (bounded).
    ended: VecDeque<Multihash>,
    ended_set: HashSet<Multihash>,
}

impl PeerWants {
    fn new() -> Self {
        Self {
            supports_have: true,
            block_wants: 0,
            sent: HashSet::new(),
            ended: VecDeque::new(),
            ended_set: HashSet::new(),
        }
    }

    fn end(&mut self, mh: Multihash, memory: usize) {
        self.sent.remove(&mh);
        if self.ended_set.insert(mh) {
            self.ended.push_back(mh);
            while self.ended.len() > memory {
                if let Some(old) = self.ended.pop_front() {
                    self.ended_set.remove(&old);
                }
            }
        }
    }
}

#[derive(Debug)]
pub(super) struct Client {
    limits: ClientLimits,
    wants: HashMap<Multihash, Want>,
    stalled: VecDeque<Multihash>,
    peers: HashMap<PeerId, PeerWants>,
    next_priority: i32,
    outbox: HashMap<PeerId, Vec<WantEntry>>,
    events: VecDeque<Event>,
    dials: Vec<PeerId>,
    duplicates: u64,
}

impl Client {
    pub(super) fn new(limits: ClientLimits) -> Self {
        Self {
            limits,
            wants: HashMap::new(),
            stalled: VecDeque::new(),
            peers: HashMap::new(),
            next_priority: i32::MAX,
            outbox: HashMap::new(),
            events: VecDeque::new(),
            dials: Vec::new(),
            duplicates: 0,
        }
    }

    pub(super) fn want(&mut self, cid: Cid, peers: &[PeerId]) -> Result<(), WantError> {
        check_supported(&cid).map_err(|e| WantError::Unsupported {
            cid,
            reason: e.to_string(),
        })?;
        if Block::from_identity(&cid).is_some() {
            return Err(WantError::Unsupported {
                cid,
                reason: "an identity CID holds its block; there is nothing to fetch".to_owned(),
            });
        }
        let mh = *cid.hash();
        if !self.wants.contains_key(&mh) {
            if self.wants.len() >= self.limits.max_wants {
                return Err(WantError::TooMany {
                    max: self.limits.max_wants,
                });
            }
            let priority = self.next_priority;
            self.next_priority = match priority.checked_sub(1) {
                Some(p) if p > 0 => p,
                _ => i32::MAX,
            };
            self.wants.insert(
                mh,
                Want {
                    cids: Vec::new(),
                    priority,
                    candidates: Vec::new(),
                    asked: HashMap::new(),
                    block_peer: None,
                    have: HashSet::new(),
                    dont_have: HashSet::new(),
                    stalled: false,
                },
            );
        }
        if let Some(want) = self.wants.get_mut(&mh)
            && !want.cids.contains(&cid)
        {
            want.cids.push(cid);
        }
        self.add_candidates(mh, peers);
        Ok(())
    }

    pub(super) fn add_peers(&mut self, cid: &Cid, peers: &[PeerId]) {
        let mh = *cid.hash();
        if self.wants.contains_key(&mh) {
            self.add_candidates(mh, peers);
        }
    }

    fn add_candidates(&mut self, mh: Multihash, peers: &[PeerId]) {
        let Some(want) = self.wants.get_mut(&mh) else {
            return;
        };
        for peer in peers {
            if want.candidates.len() >= MAX_CANDIDATES {
                break;
            }
            if !want.candidates.contains(peer) {
                want.candidates.push(*peer);
                if !self.peers.contains_key(peer) && !self.dials.contains(peer) {
                    self.dials.push(*peer);
                }
            }
        }
        self.dispatch_or_stall(mh);
    }

    pub(super) fn cancel(&mut self, cid: &Cid) {
        let mh = *cid.hash();
        let Some(want) = self.wants.get_mut(&mh) else {
            return;
        };
        let wire = want.cids.first().copied().unwrap_or(*cid);
        want.cids.retain(|c| c != cid);
        if want.cids.is_empty()
            && let Some(want) = self.wants.remove(&mh)
        {
            self.end(mh, &want, wire, None);
        }
    }

    /// Ends a want with every peer asked: they are sent a cancel of `wire` (the CID they were
    /// asked with), except `except`, which just answered it, and remember it as ended.
    fn end(&mut self, mh: Multihash, want: &Want, wire: Cid, except: Option<PeerId>) {
        let memory = self.limits.max_wants_per_peer * 2;
        for peer in want.asked.keys() {
            let Some(state) = self.peers.get_mut(peer) else {
                continue;
            };
            if want.block_peer == Some(*peer) {
                state.block_wants = state.block_wants.saturating_sub(1);
            }
            state.end(mh, memory);
            if Some(*peer) != except {
                self.outbox
                    .entry(*peer)
                    .or_default()
                    .push(WantEntry::cancel(wire));
            }
        }
    }

    pub(super) fn connected(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_insert_with(PeerWants::new);
        self.dials.retain(|p| *p != peer);
        let mine: Vec<Multihash> = self
            .wants
            .iter()
            .filter(|(_, w)| w.candidates.contains(&peer))
            .map(|(mh, _)| *mh)
            .collect();
        for mh in mine {
            self.dispatch_or_stall(mh);
        }
    }

    /// Forgets what `peer` was asked; it stays a candidate and is asked again on reconnecting.
    pub(super) fn disconnected(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.outbox.remove(&peer);
        let mut orphaned = Vec::new();
        for (mh, want) in &mut self.wants {
            want.asked.remove(&peer);
            want.have.remove(&peer);
            want.dont_have.remove(&peer);
            if want.block_peer == Some(peer) {
                want.block_peer = None;
                orphaned.push(*mh);
            }
        }
        for mh in orphaned {
            self.dispatch_or_stall(mh);
        }
    }

    /// A peer that does not speak Bitswap, or misbehaved: never asked again for these wants.
    pub(super) fn drop_peer(&mut self, peer: PeerId) {
        for want in self.wants.values_mut() {
            want.candidates.retain(|p| *p != peer);
        }
        self.disconnected(peer);
    }

    pub(super) fn set_version(&mut self, peer: PeerId, version: ProtocolVersion) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.supports_have = version.supports_have();
        }
    }

    pub(super) fn arrival(&self, peer: &PeerId, block: &Block) -> Arrival {
        let mh = block.cid().hash();
        if self.wants.contains_key(mh) {
            Arrival::Wanted
        } else if self
            .peers
            .get(peer)
            .is_some_and(|p| p.ended_set.contains(mh))
        {
            Arrival::Duplicate
        } else {
            Arrival::Unsolicited
        }
    }

    /// A verified block from `peer`; `false` if it was not wanted (a duplicate).
    pub(super) fn block(&mut self, peer: PeerId, block: Block) -> bool {
        let mh = *block.cid().hash();
        let Some(want) = self.wants.remove(&mh) else {
            self.duplicates += 1;
            return false;
        };
        self.end(
            mh,
            &want,
            want.cids.first().copied().unwrap_or(*block.cid()),
            Some(peer),
        );
        for cid in &want.cids {
            // Same multihash, so the bytes match; only the codec or version differ.
            let block = if cid == block.cid() {
                Ok(block.clone())
            } else {
                Block::new(*cid, block.data().clone())
            };
            match block {
                Ok(block) => self.events.push_back(Event::Block { block, from: peer }),
                Err(e) => tracing::warn!(%cid, error = %e, "block does not fit a CID asked for"),
            }
        }
        true
    }

    pub(super) fn presence(&mut self, peer: PeerId, presence: &BlockPresence) {
        let mh = *presence.cid.hash();
        let memory = self.limits.max_wants_per_peer * 2;
        let Some(want) = self.wants.get_mut(&mh) else {
            return;
        };
        match presence.kind {
            PresenceType::Have => {
                want.have.insert(peer);
                for cid in &want.cids {
                    self.events.push_back(Event::Have { cid: *cid, peer });
                }
                if want.block_peer.is_none() {
                    self.dispatch_or_stall(mh);
                }
            }
            PresenceType::DontHave => {
                want.dont_have.insert(peer);
                want.have.remove(&peer);
                want.asked.remove(&peer);
                let was_block_peer = want.block_peer == Some(peer);
                if was_block_peer {
                    want.block_peer = None;
                }
                for cid in &want.cids {
                    self.events.push_back(Event::DontHave { cid: *cid, peer });
                }
                if let Some(state) = self.peers.get_mut(&peer) {
                    if was_block_peer {
                        state.block_wants = state.block_wants.saturating_sub(1);
                    }
                    state.end(mh, memory);
                }
                if was_block_peer {
                    self.dispatch_or_stall(mh);
                }
            }
        }
    }

    fn dispatch_or_stall(&mut self, mh: Multihash) {
        if !self.dispatch(mh)
            && let Some(want) = self.wants.get_mut(&mh)
            && !want.stalled
        {
            want.stalled = true;
            self.stalled.push_back(mh);
        }
    }

    /// Asks the block of one candidate and whether they have it of the others. Returns whether
    /// some peer is asked for the block.
    fn dispatch(&mut self, mh: Multihash) -> bool {
        let limits = self.limits;
        let Some(want) = self.wants.get_mut(&mh) else {
            return true;
        };
        let Some(&cid) = want.cids.first() else {
            return true;
        };
        let has_room = |state: &PeerWants| {
            state.sent.contains(&mh) || state.sent.len() < limits.max_wants_per_peer
        };
        if want.block_peer.is_none() {
            let best = want
                .candidates
                .iter()
                .filter(|p| !want.dont_have.contains(p))
                .filter_map(|p| self.peers.get(p).map(|s| (p, s)))
                .filter(|(_, s)| s.block_wants < limits.max_block_wants_per_peer && has_room(s))
                .min_by_key(|(p, s)| (!want.have.contains(p), s.block_wants))
                .map(|(p, _)| *p);
            if let Some(peer) = best
                && let Some(state) = self.peers.get_mut(&peer)
            {
                state.block_wants += 1;
                state.sent.insert(mh);
                want.block_peer = Some(peer);
                want.asked.insert(peer, WantType::Block);
                self.outbox.entry(peer).or_default().push(WantEntry::want(
                    cid,
                    WantType::Block,
                    want.priority,
                    true,
                ));
            }
        }
        for peer in &want.candidates {
            if want.asked.contains_key(peer) || want.dont_have.contains(peer) {
                continue;
            }
            let Some(state) = self.peers.get_mut(peer) else {
                continue;
            };
            if !state.supports_have || !has_room(state) {
                continue;
            }
            state.sent.insert(mh);
            want.asked.insert(*peer, WantType::Have);
            self.outbox.entry(*peer).or_default().push(WantEntry::want(
                cid,
                WantType::Have,
                want.priority,
                true,
            ));
        }
        want.block_peer.is_some()
    }

    /// Gives waiting wants to peers that have room again, oldest first.
    pub(super) fn redispatch_stalled(&mut self) {
        let max = self.limits.max_block_wants_per_peer;
        for _ in 0..self.stalled.len() {
            if !self.peers.values().any(|p| p.block_wants < max) {
                return;
            }
            let Some(mh) = self.stalled.pop_front() else {
                return;
            };
            if self.wants.get(&mh).is_none_or(|w| w.block_peer.is_some()) {
                if let Some(w) = self.wants.get_mut(&mh) {
                    w.stalled = false;
                }
                continue;
            }
            if self.dispatch(mh) {
                if let Some(w) = self.wants.get_mut(&mh) {
                    w.stalled = false;
                }
            } else {
                self.stalled.push_back(mh);
            }
        }
    }

    pub(super) fn take_outbox(&mut self) -> Vec<(PeerId, Vec<WantEntry>)> {
        self.outbox.drain().collect()
    }

    pub(super) fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(super) fn take_dials(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.dials)
    }

    /// Whether `peer` holds wants of ours (the connection must stay).
    pub(super) fn needs(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| !p.sent.is_empty())
    }

    pub(super) fn wants(&self) -> usize {
        self.wants.len()
    }

    #[cfg(test)]
    pub(super) fn wants_with(&self, peer: &PeerId) -> usize {
        self.peers.get(peer).map_or(0, |p| p.sent.len())
    }

    pub(super) fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stargate_protocol::{Codec, HashCode, Version};

    fn limits() -> ClientLimits {
        ClientLimits {
            max_wants: 8,
            max_wants_per_peer: 4,
            max_block_wants_per_peer: 2,
        }
    }

    fn block(i: u8) -> Block {
        Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![i; 3]).unwrap()
    }

    fn sent(client: &mut Client) -> HashMap<PeerId, Vec<WantEntry>> {
        client.take_outbox().into_iter().collect()
    }

    #[test]
    fn want_block_to_one_want_have_to_the_others() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut c = Client::new(limits());
        c.connected(a);
        c.connected(b);
        let blk = block(1);
        c.want(*blk.cid(), &[a, b]).unwrap();
        let out = sent(&mut c);
        let types: Vec<_> = [a, b].iter().map(|p| out[p][0].want_type).collect();
        assert!(types.contains(&WantType::Block) && types.contains(&WantType::Have));
        assert!(
            out.values()
                .flatten()
                .all(|e| e.send_dont_have && !e.cancel)
        );

        // The block arrives from the want-block peer; the other gets a cancel.
        let block_peer = if types[0] == WantType::Block { a } else { b };
        let other = if block_peer == a { b } else { a };
        assert_eq!(c.arrival(&block_peer, &blk), Arrival::Wanted);
        assert!(c.block(block_peer, blk.clone()));
        let out = sent(&mut c);
        assert_eq!(out.len(), 1);
        assert!(out[&other][0].cancel);
        assert!(matches!(c.next_event(), Some(Event::Block { .. })));
        // A late copy is a duplicate from either peer; a block nobody asked for is not.
        assert_eq!(c.arrival(&other, &blk), Arrival::Duplicate);
        assert_eq!(c.arrival(&other, &block(2)), Arrival::Unsolicited);
        assert!(!c.needs(&a) && !c.needs(&b));
    }

    #[test]
    fn dont_have_moves_the_want_block_on() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut c = Client::new(limits());
        c.connected(a);
        let blk = block(1);
        c.want(*blk.cid(), &[a]).unwrap();
        let _ = sent(&mut c);
        c.presence(
            a,
            &BlockPresence {
                cid: *blk.cid(),
                kind: PresenceType::DontHave,
            },
        );
        assert!(matches!(c.next_event(), Some(Event::DontHave { .. })));
        assert!(sent(&mut c).is_empty(), "no other candidate yet");
        c.add_peers(blk.cid(), &[b]);
        assert_eq!(c.take_dials(), vec![b]);
        c.connected(b);
        let out = sent(&mut c);
        assert_eq!(out[&b][0].want_type, WantType::Block);
    }

    #[test]
    fn in_flight_want_blocks_are_bounded_and_stalled_wants_resume() {
        let a = PeerId::random();
        let mut c = Client::new(limits());
        c.connected(a);
        let blocks: Vec<Block> = (0..4).map(block).collect();
        for b in &blocks {
            c.want(*b.cid(), &[a]).unwrap();
        }
        let out = sent(&mut c);
        let want_blocks = out[&a]
            .iter()
            .filter(|e| e.want_type == WantType::Block)
            .count();
        assert_eq!(want_blocks, 2, "{:?}", out[&a]);
        // Priorities count down in the order wanted.
        assert!(out[&a].windows(2).all(|w| w[0].priority > w[1].priority));
        assert!(c.block(a, blocks[0].clone()));
        c.redispatch_stalled();
        let out = sent(&mut c);
        assert_eq!(out[&a].len(), 1);
        assert_eq!(out[&a][0].want_type, WantType::Block);
        assert_eq!(out[&a][0].cid, *blocks[2].cid());
    }

    #[test]
    fn reconnect_resends_and_cancel_cancels() {
        let a = PeerId::random();
        let mut c = Client::new(limits());
        c.connected(a);
        let blk = block(1);
        c.want(*blk.cid(), &[a]).unwrap();
        let _ = sent(&mut c);
        c.disconnected(a);
        assert!(!c.needs(&a));
        c.connected(a);
        assert_eq!(sent(&mut c)[&a][0].cid, *blk.cid());
        assert!(c.needs(&a));
        c.cancel(blk.cid());
        let out = sent(&mut c);
        assert!(out[&a][0].cancel);
        assert_eq!(c.wants(), 0);
        assert_eq!(c.arrival(&a, &blk), Arrival::Duplicate);
    }

    #[test]
    fn limits_and_unsupported_cids() {
        let mut c = Client::new(limits());
        for i in 0..8 {
            c.want(*block(i).cid(), &[]).unwrap();
        }
        assert!(matches!(
            c.want(*block(9).cid(), &[]),
            Err(WantError::TooMany { max: 8 })
        ));
        // Wanting again what is wanted is no new want.
        c.want(*block(0).cid(), &[]).unwrap();
        let identity = stargate_protocol::parse_cid("bafkqaaa").unwrap();
        assert!(matches!(
            c.want(identity, &[]),
            Err(WantError::Unsupported { .. })
        ));
    }

    #[test]
    fn cidv0_and_v1_of_the_same_bytes_are_one_want() {
        let a = PeerId::random();
        let mut c = Client::new(limits());
        c.connected(a);
        let v0 =
            Block::encode(Version::V0, Codec::DagPb, HashCode::Sha2_256, vec![1u8; 4]).unwrap();
        let v1 = Cid::new_v1(Codec::Raw.code(), *v0.cid().hash());
        c.want(*v0.cid(), &[a]).unwrap();
        c.want(v1, &[a]).unwrap();
        assert_eq!(c.wants(), 1);
        assert_eq!(sent(&mut c)[&a].len(), 1);
        assert!(c.block(a, v0.clone()));
        let mut got = Vec::new();
        while let Some(Event::Block { block, .. }) = c.next_event() {
            got.push(*block.cid());
        }
        assert_eq!(got, vec![*v0.cid(), v1]);
    }
}

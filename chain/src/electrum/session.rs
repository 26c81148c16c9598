//! What one Electrum connection knows of the chain and of the wallet's scripts, and the rounds
//! of a sync.
//!
//! bdk_electrum 0.24's sync asks for each transaction in a request of its own, one after the
//! other, and every history again at each sync; through e-x, 500 coinbase outputs took 8 min
//! 35 s that way (`docs/electrum-sync.md`). Here:
//! - the first round on a connection checks the genesis block, subscribes to headers and reads
//!   the first scripts' histories in one batch, then reads each keychain's scripts from index 0
//!   up to a gap of [`STOP_GAP`] unused ones; what the histories lead to goes out in one more
//!   batch ([`Fetch`]);
//! - the revealed scripts are subscribed at the next round, once the wallet is up to date; a
//!   status that differs from the history the wallet took marks the script to be read again.
//!   Afterwards only the scripts whose status the server reports as changed are read again,
//!   and a round with no change and no new block asks nothing but a ping.

use std::collections::{BTreeSet, HashMap};

use bdk_wallet::{KeychainKind, Wallet};
use bitcoin::hashes::{Hash as _, sha256};
use bitcoin::{BlockHash, ScriptBuf, Txid};
use electrum_client::{Client, ElectrumApi, Error, GetHistoryRes};
use stargate_protocol::anchor::Network;

use super::requests::{Answer, Pacer, Request, tip_of};
use super::update::{Fetch, Histories, Proofs};
use crate::ChainError;
use crate::backend::{ProofParts, SyncEvents, Tip, backend_error, check_network};
use crate::progress::{SyncProgress, SyncStage};

/// Consecutive unused addresses after which the address scan stops (the usual gap limit).
const STOP_GAP: u32 = 20;
/// Scripts of each keychain read per round of the address scan.
const SCAN_CHUNK: usize = 50;

/// A script's Electrum status: the hash of its history, `None` when it has none.
type Status = Option<[u8; 32]>;

/// One connection's knowledge.
#[derive(Debug)]
pub(crate) struct Session {
    /// `electrum <url>`, for errors.
    backend: String,
    network: Network,
    /// `None` until the first round (which also checks the genesis block).
    tip: Option<Tip>,
    /// Scripts subscribed on this connection, with the status of the history the wallet last
    /// took from them.
    statuses: HashMap<ScriptBuf, Status>,
    /// The status of histories the wallet took from scripts not subscribed yet.
    taken: HashMap<ScriptBuf, Status>,
    /// Scripts to read again.
    dirty: BTreeSet<ScriptBuf>,
    /// Whether the keychains were scanned for used addresses on this connection.
    scanned: bool,
    /// The confirmations the last update brought.
    proofs: Proofs,
    pacer: Pacer,
}

impl Session {
    pub(crate) fn new(backend: String, network: Network) -> Self {
        Self {
            backend,
            network,
            tip: None,
            statuses: HashMap::new(),
            taken: HashMap::new(),
            dirty: BTreeSet::new(),
            scanned: false,
            proofs: Proofs::new(),
            pacer: Pacer::default(),
        }
    }

    fn fail(&self, context: &'static str) -> impl Fn(Error) -> ChainError + use<> {
        backend_error(self.backend.clone(), context)
    }

    /// The server's tip. The first call checks the genesis block and subscribes to headers;
    /// later ones ping, which brings in the notifications pushed since the last request.
    ///
    /// # Errors
    /// When a request fails or the server follows another network.
    pub(crate) fn tip(&mut self, client: &Client) -> Result<Tip, ChainError> {
        if self.tip.is_none() {
            let answers = self
                .pacer
                .call(client, &opening(), |_| {})
                .map_err(self.fail("reading the genesis block and the tip"))?;
            self.opened(answers)?;
        } else {
            client.ping().map_err(self.fail("reading notifications"))?;
        }
        self.latest_tip(client)
    }

    /// Sends `requests` at the session's pace.
    ///
    /// # Errors
    /// As [`Pacer::call`].
    pub(crate) fn call(
        &mut self,
        client: &Client,
        requests: &[Request],
    ) -> Result<Vec<Answer>, Error> {
        self.pacer.call(client, requests, |_| {})
    }

    /// The tip as last seen, without asking.
    pub(crate) fn last_tip(&self) -> Option<Tip> {
        self.tip
    }

    /// `txid`'s place in its block at `height`, if the last update checked it.
    pub(crate) fn proof(&self, txid: Txid, height: u32) -> Option<ProofParts> {
        self.proofs
            .get(&txid)
            .filter(|(at, _)| *at == height)
            .map(|(_, parts)| parts.clone())
    }

    /// Checks the genesis block and takes the tip from the answers to [`opening`].
    fn opened(&mut self, answers: Vec<Answer>) -> Result<(), ChainError> {
        let mut genesis = None;
        for answer in answers {
            match answer {
                Answer::Headers(0, headers) => genesis = headers.first().map(|h| h.block_hash()),
                Answer::Tip(tip) => self.tip = Some(tip),
                _ => {}
            }
        }
        let found = genesis.unwrap_or_else(BlockHash::all_zeros);
        check_network(&self.backend, self.network, found)
    }

    /// The tip of the last header notification read.
    fn latest_tip(&mut self, client: &Client) -> Result<Tip, ChainError> {
        while let Some(newer) = client
            .block_headers_pop()
            .map_err(self.fail("reading notifications"))?
        {
            self.tip = Some(tip_of(&newer));
        }
        self.tip.ok_or_else(|| ChainError::Backend {
            backend: self.backend.clone(),
            context: "reading the tip",
            reason: "the server sent no header".to_owned(),
        })
    }

    /// Brings `wallet` up to the server's tip, which it returns: from the scripts that changed
    /// since the last round, or all used ones on a new connection.
    ///
    /// # Errors
    /// When a request fails, the server answers something malformed or follows another
    /// network, or the update does not connect to the wallet's chain.
    pub(crate) fn sync(
        &mut self,
        client: &Client,
        wallet: &mut Wallet,
        events: &mut dyn SyncEvents,
    ) -> Result<Tip, ChainError> {
        let started = now_secs();
        let mut histories = Histories::new();
        if self.scanned {
            self.tip(client)?;
            self.subscribe_revealed(client, wallet)
                .map_err(self.fail("subscribing to the wallet's addresses"))?;
            self.take_notifications(client)
                .map_err(self.fail("reading notifications"))?;
            // Read again until an update from them is applied.
            let stale: Vec<ScriptBuf> = self.dirty.iter().cloned().collect();
            let requests: Vec<Request> = stale.iter().cloned().map(Request::History).collect();
            let answers = self
                .pacer
                .call(client, &requests, |_| {})
                .map_err(self.fail("reading histories"))?;
            histories.extend(stale.into_iter().zip(answers).filter_map(history));
        } else {
            // Subscriptions wait for the next round: the wallet is up to date one round trip
            // sooner, and a change in between shows as a status that differs from the one taken.
            self.scan(client, wallet, &mut histories, events)?;
        }
        let tip = self.latest_tip(client)?;
        if !histories.is_empty() || wallet.latest_checkpoint().hash() != tip.hash {
            let (update, proofs) = Fetch::plan(wallet, &histories, tip, started)
                .run(client, &mut self.pacer, wallet, events)
                .map_err(self.fail("fetching the wallet's transactions"))?;
            wallet
                .apply_update(update)
                .map_err(|e| ChainError::Wallet {
                    reason: format!("applying an Electrum update: {e}"),
                })?;
            self.proofs = proofs;
        }
        self.scanned = true;
        for (spk, history) in histories {
            self.dirty.remove(&spk);
            let status = status_of(&history);
            match self.statuses.get_mut(&spk) {
                Some(watched) => *watched = status,
                None => {
                    self.taken.insert(spk, status);
                }
            }
        }
        Ok(tip)
    }

    /// Reads each keychain's histories from index 0 until [`STOP_GAP`] unused scripts follow
    /// the last used one (and the last revealed one), both keychains in the same round trip
    /// (the first one also opens the connection), and reveals up to the last used one.
    fn scan(
        &mut self,
        client: &Client,
        wallet: &mut Wallet,
        histories: &mut Histories,
        events: &mut dyn SyncEvents,
    ) -> Result<(), ChainError> {
        struct Keychain<I> {
            keychain: KeychainKind,
            spks: I,
            last_revealed: Option<u32>,
            last_used: Option<u32>,
            gap: u32,
        }
        let index = wallet.spk_index();
        let mut keychains: Vec<_> = [KeychainKind::External, KeychainKind::Internal]
            .into_iter()
            .filter_map(|keychain| {
                Some(Keychain {
                    keychain,
                    spks: index.unbounded_spk_iter(keychain)?,
                    last_revealed: index.last_revealed_index(keychain),
                    last_used: None,
                    gap: 0,
                })
            })
            .collect();
        let mut checked = 0u64;
        loop {
            let mut round: Vec<(usize, u32, ScriptBuf)> = Vec::new();
            for (k, chain) in keychains.iter_mut().enumerate() {
                if chain.gap < STOP_GAP {
                    let next = chain.spks.by_ref().take(SCAN_CHUNK);
                    round.extend(next.map(|(i, spk)| (k, i, spk)));
                }
            }
            if round.is_empty() {
                break;
            }
            let mut requests = if self.tip.is_none() {
                opening()
            } else {
                Vec::new()
            };
            requests.extend(
                round
                    .iter()
                    .map(|(_, _, spk)| Request::History(spk.clone())),
            );
            let mut answers = self
                .pacer
                .call(client, &requests, |_| {})
                .map_err(self.fail("scanning the wallet's addresses"))?;
            let read = answers.split_off(requests.len() - round.len());
            if !answers.is_empty() {
                self.opened(answers)?;
            }
            checked += round.len() as u64;
            for ((k, i, spk), answer) in round.into_iter().zip(read) {
                let Some((spk, history)) = history((spk, answer)) else {
                    continue;
                };
                let chain = &mut keychains[k];
                if !history.is_empty() {
                    (chain.last_used, chain.gap) = (Some(i), 0);
                } else if chain.last_revealed.is_none_or(|r| i > r) {
                    chain.gap += 1;
                }
                histories.insert(spk, history);
            }
            events.progress(SyncProgress {
                stage: SyncStage::Addresses,
                done: checked,
                total: None,
            });
        }
        for chain in keychains {
            if let Some(i) = chain.last_used {
                wallet.reveal_addresses_to(chain.keychain, i).for_each(drop);
            }
        }
        Ok(())
    }

    /// Marks the scripts whose status the server reported as changed.
    fn take_notifications(&mut self, client: &Client) -> Result<(), Error> {
        for (spk, status) in &self.statuses {
            let mut latest = None;
            while let Some(next) = client.script_pop(spk)? {
                latest = Some(*next);
            }
            if latest.is_some() && latest != *status {
                self.dirty.insert(spk.clone());
            }
        }
        Ok(())
    }

    /// Subscribes the revealed scripts not watched yet; one whose status differs from the
    /// history the wallet took from it (none, if it never did) is read again.
    fn subscribe_revealed(&mut self, client: &Client, wallet: &Wallet) -> Result<(), Error> {
        let fresh: Vec<ScriptBuf> = wallet
            .spk_index()
            .revealed_spks(..)
            .map(|(_, spk)| spk)
            .filter(|spk| !self.statuses.contains_key(spk))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let statuses = client.batch_script_subscribe(fresh.iter().map(ScriptBuf::as_script))?;
        for (spk, status) in fresh.into_iter().zip(statuses) {
            let taken = self.taken.remove(&spk).flatten();
            if status.map(|s| *s) != taken {
                self.dirty.insert(spk.clone());
            }
            self.statuses.insert(spk, taken);
        }
        Ok(())
    }
}

/// What a new connection asks first: the genesis block (to check the network) and the tip
/// (which subscribes to headers).
fn opening() -> Vec<Request> {
    vec![Request::Headers(0, 1), Request::Tip]
}

/// A script and its history, from a history answer.
fn history((spk, answer): (ScriptBuf, Answer)) -> Option<(ScriptBuf, Vec<GetHistoryRes>)> {
    match answer {
        Answer::History(history) => Some((spk, history)),
        _ => None,
    }
}

/// The Electrum status of a history: the SHA-256 of `txid:height:` for each entry, in the
/// server's order.
fn status_of(history: &[GetHistoryRes]) -> Status {
    if history.is_empty() {
        return None;
    }
    let text: String = history
        .iter()
        .map(|entry| format!("{}:{}:", entry.tx_hash, entry.height))
        .collect();
    Some(sha256::Hash::hash(text.as_bytes()).to_byte_array())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_protocols_history_hash() {
        assert_eq!(status_of(&[]), None);
        let txid: Txid = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
            .parse()
            .unwrap();
        let entry = |height| GetHistoryRes {
            height,
            tx_hash: txid,
            fee: None,
        };
        let text = format!("{txid}:7:{txid}:0:");
        assert_eq!(
            status_of(&[entry(7), entry(0)]),
            Some(sha256::Hash::hash(text.as_bytes()).to_byte_array())
        );
    }
}

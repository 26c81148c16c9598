//! The DHT's record store, bounded for a small machine.
//!
//! - Provider records of other peers (ADD_PROVIDER sent to us as a DHT server) are kept in
//!   memory, at most [`MAX_PROVIDER_RECORDS`] in all, [`MAX_PROVIDERS_PER_KEY`] per key and
//!   [`MAX_ADDRS`] addresses each; expired ones are dropped by [`ProviderStore::prune`]. Past
//!   the bound, new records are dropped and counted ([`ProviderStore::refused`]) rather than
//!   refused with an error: kad logs every refusal at info, one line per ADD_PROVIDER, and
//!   ADD_PROVIDER has no answer on the wire, so the sender sees the same either way.
//! - Our own provider records are not kept: the reprovider (`providing.rs`) announces from the
//!   block store on its schedule, so a node providing millions of blocks does not hold them all
//!   in memory, and kad's own republishing (which walks `provided()`) has nothing to do.
//! - Value records (PUT_VALUE: IPNS and public keys) are refused: this node does not validate
//!   them, and storing unvalidated records would serve forgeries.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::store::{Error, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use stargate_protocol::Cid;

/// Provider records of other peers kept at most (about 250 bytes each).
pub(crate) const MAX_PROVIDER_RECORDS: usize = 65_536;
/// Providers kept per key (the DHT's replication factor).
pub(crate) const MAX_PROVIDERS_PER_KEY: usize = 20;
/// Addresses kept per provider record.
pub(crate) const MAX_ADDRS: usize = 8;

/// The DHT key of a CID: its multihash, as Kubo keys provider records.
pub(crate) fn dht_key(cid: &Cid) -> RecordKey {
    RecordKey::new(&cid.hash().to_bytes())
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ProviderStore {
    local: PeerId,
    providers: HashMap<RecordKey, Vec<ProviderRecord>>,
    /// Records in `providers`, all keys together.
    count: usize,
    /// Records of others dropped because the store was full, since start.
    refused: u64,
    /// Whether the store being full was logged since it last had room.
    full_logged: bool,
}

impl ProviderStore {
    pub(crate) fn new(local: PeerId) -> Self {
        Self {
            local,
            providers: HashMap::new(),
            count: 0,
            refused: 0,
            full_logged: false,
        }
    }

    /// Drops expired records.
    pub(crate) fn prune(&mut self, now: Instant) {
        let mut removed = 0;
        self.providers.retain(|_, records| {
            let before = records.len();
            records.retain(|r| !r.is_expired(now));
            removed += before - records.len();
            !records.is_empty()
        });
        self.count -= removed;
        if self.count < MAX_PROVIDER_RECORDS {
            self.full_logged = false;
        }
    }

    /// Provider records held (others' only).
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Records of others dropped because the store was full, since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }

    fn refuse(&mut self) -> Result<()> {
        self.refused += 1;
        if !self.full_logged {
            self.full_logged = true;
            tracing::warn!(
                max = MAX_PROVIDER_RECORDS,
                "the DHT provider record store is full; other peers' new records are dropped \
                 until some expire (stargate_dht_provider_records_refused_total counts them)"
            );
        }
        Ok(())
    }
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = std::iter::Empty<Cow<'a, Record>>;
    type ProvidedIter<'a> = std::iter::Empty<Cow<'a, ProviderRecord>>;

    fn get(&self, _: &RecordKey) -> Option<Cow<'_, Record>> {
        None
    }

    fn put(&mut self, _: Record) -> Result<()> {
        Err(Error::MaxRecords)
    }

    fn remove(&mut self, _: &RecordKey) {}

    fn records(&self) -> Self::RecordsIter<'_> {
        std::iter::empty()
    }

    fn add_provider(&mut self, mut record: ProviderRecord) -> Result<()> {
        if record.provider == self.local {
            return Ok(());
        }
        record.addresses.truncate(MAX_ADDRS);
        let full = self.count >= MAX_PROVIDER_RECORDS;
        let records = match self.providers.get_mut(&record.key) {
            Some(records) => records,
            None if full => return self.refuse(),
            None => self.providers.entry(record.key.clone()).or_default(),
        };
        if let Some(existing) = records.iter_mut().find(|r| r.provider == record.provider) {
            *existing = record;
            return Ok(());
        }
        if full {
            return self.refuse();
        }
        // As kad's MemoryStore does: a full key keeps its providers, which blunts floods of
        // fake records for one key.
        if records.len() < MAX_PROVIDERS_PER_KEY {
            records.push(record);
            self.count += 1;
        }
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.providers.get(key).cloned().unwrap_or_default()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        std::iter::empty()
    }

    fn remove_provider(&mut self, key: &RecordKey, provider: &PeerId) {
        if let Some(records) = self.providers.get_mut(key) {
            let before = records.len();
            records.retain(|r| &r.provider != provider);
            self.count -= before - records.len();
            if records.is_empty() {
                self.providers.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(key: u32, provider: PeerId, expires: Option<Instant>) -> ProviderRecord {
        ProviderRecord {
            key: RecordKey::new(&key.to_be_bytes()),
            provider,
            expires,
            addresses: vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap(); 20],
        }
    }

    #[test]
    fn keeps_others_records_within_bounds() {
        let local = PeerId::random();
        let mut store = ProviderStore::new(local);
        store.add_provider(record(1, local, None)).unwrap();
        assert_eq!(store.len(), 0, "our own records are not kept");

        let peers: Vec<_> = (0..MAX_PROVIDERS_PER_KEY + 5)
            .map(|_| PeerId::random())
            .collect();
        for p in &peers {
            store.add_provider(record(2, *p, None)).unwrap();
        }
        let held = store.providers(&RecordKey::new(&2u32.to_be_bytes()));
        assert_eq!(held.len(), MAX_PROVIDERS_PER_KEY);
        assert!(held.iter().all(|r| r.addresses.len() == MAX_ADDRS));
        // Updating an existing provider does not add a record.
        store.add_provider(record(2, peers[0], None)).unwrap();
        assert_eq!(store.len(), MAX_PROVIDERS_PER_KEY);

        store.remove_provider(&RecordKey::new(&2u32.to_be_bytes()), &peers[0]);
        assert_eq!(store.len(), MAX_PROVIDERS_PER_KEY - 1);
    }

    #[test]
    fn total_is_bounded_and_prune_frees_room() {
        let mut store = ProviderStore::new(PeerId::random());
        let peer = PeerId::random();
        let past = Instant::now();
        let later = Instant::now() + Duration::from_secs(3600);
        for key in 0..MAX_PROVIDER_RECORDS as u32 {
            let expires = if key % 2 == 0 { past } else { later };
            store
                .add_provider(record(key, peer, Some(expires)))
                .unwrap();
        }
        store.add_provider(record(u32::MAX, peer, None)).unwrap();
        assert_eq!(
            store.len(),
            MAX_PROVIDER_RECORDS,
            "a full store drops new records"
        );
        assert!(
            store
                .providers(&RecordKey::new(&u32::MAX.to_be_bytes()))
                .is_empty()
        );
        assert_eq!(store.refused(), 1);
        store.prune(Instant::now() + Duration::from_millis(1));
        assert_eq!(store.len(), MAX_PROVIDER_RECORDS / 2);
        store.add_provider(record(u32::MAX, peer, None)).unwrap();
        assert_eq!(store.len(), MAX_PROVIDER_RECORDS / 2 + 1);
        assert_eq!(store.refused(), 1);
    }

    #[test]
    fn values_are_refused() {
        let mut store = ProviderStore::new(PeerId::random());
        let r = Record::new(RecordKey::new(b"/ipns/x"), b"v".to_vec());
        assert!(store.put(r).is_err());
        assert!(store.get(&RecordKey::new(b"/ipns/x")).is_none());
    }
}

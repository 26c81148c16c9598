//! The last gossipsub sequence number this node published with. Kubo (0.40 and later) remembers
//! the highest sequence number it has seen from each peer and drops anything not above it, so
//! a node must never reuse one, not even after a restart with a clock that stepped back: the
//! node checks its counter against this record before it publishes.

use redb::ReadableTable;

use crate::error::db_err;
use crate::tables::{GOSSIP_META, open_read, open_write};
use crate::{Store, StoreError};

const LAST_SEQNO: &str = "last_seqno";

impl Store {
    /// The highest sequence number recorded by [`Store::gossip_record_seqno`], if any.
    ///
    /// # Errors
    /// A database error.
    pub fn gossip_last_seqno(&self) -> Result<Option<u64>, StoreError> {
        self.read(|txn| {
            let meta = open_read(txn, GOSSIP_META)?;
            Ok(meta
                .get(LAST_SEQNO)
                .map_err(db_err("reading the last gossip sequence number"))?
                .map(|v| v.value()))
        })
    }

    /// Records `seqno` as used; a lower value than the one recorded changes nothing (records
    /// may arrive out of order).
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn gossip_record_seqno(&self, seqno: u64) -> Result<(), StoreError> {
        let ctx = "recording the last gossip sequence number";
        self.write(|txn| {
            let mut meta = open_write(txn, GOSSIP_META)?;
            let last = meta
                .get(LAST_SEQNO)
                .map_err(db_err(ctx))?
                .map(|v| v.value());
            if last.is_none_or(|last| seqno > last) {
                meta.insert(LAST_SEQNO, seqno).map_err(db_err(ctx))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions};

    #[test]
    fn the_last_seqno_only_grows_and_survives_a_reopen() {
        let (dir, store) = crate::testutil::open();
        assert_eq!(store.gossip_last_seqno().unwrap(), None);
        store.gossip_record_seqno(10).unwrap();
        store.gossip_record_seqno(7).unwrap();
        assert_eq!(store.gossip_last_seqno().unwrap(), Some(10));
        store.gossip_record_seqno(11).unwrap();
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.gossip_last_seqno().unwrap(), Some(11));
    }
}

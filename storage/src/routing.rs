//! When the node last announced all it provides in the DHT. Records live 48 h and a reprovide
//! repeats them every 22 h; a node that restarts in between has nothing to repeat yet, so, as
//! Kubo does, it schedules its next reprovide from this time instead of announcing everything
//! again at every start (a DAG added while it was away is announced when it is added).

use crate::error::db_err;
use crate::tables::{ROUTING_META, open_read, open_write};
use crate::{Store, StoreError};

const LAST_REPROVIDE: &str = "last_reprovide";

impl Store {
    /// When the last reprovide recorded by [`Store::record_reprovide`] ended, Unix seconds.
    ///
    /// # Errors
    /// A database error.
    pub fn last_reprovide(&self) -> Result<Option<u64>, StoreError> {
        self.read(|txn| {
            let meta = open_read(txn, ROUTING_META)?;
            Ok(meta
                .get(LAST_REPROVIDE)
                .map_err(db_err("reading the last reprovide time"))?
                .map(|v| v.value()))
        })
    }

    /// Records that a reprovide ended at `at` (Unix seconds).
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn record_reprovide(&self, at: u64) -> Result<(), StoreError> {
        self.write(|txn| {
            open_write(txn, ROUTING_META)?
                .insert(LAST_REPROVIDE, at)
                .map_err(db_err("recording the last reprovide time"))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions};

    #[test]
    fn the_last_reprovide_survives_a_reopen() {
        let (dir, store) = crate::testutil::open();
        assert_eq!(store.last_reprovide().unwrap(), None);
        store.record_reprovide(1_000).unwrap();
        store.record_reprovide(2_000).unwrap();
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(store.last_reprovide().unwrap(), Some(2_000));
    }
}

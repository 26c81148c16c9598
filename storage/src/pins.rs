//! The pin API of the store: pin, unpin, list, and ask how a CID is pinned.
//!
//! Pins decide which DAGs survive GC and cannot be removed block by block; how they are kept is
//! `pin_table.rs`'s business.

use std::collections::HashSet;
use std::ops::ControlFlow;

use stargate_protocol::Cid;

use crate::dag::node_key;
use crate::error::db_err;
use crate::pin_table::{PinMode, PinType, all_pins};
use crate::tables::{PINS, open_read, open_write, read_tables};
use crate::{Store, StoreError};

/// Which pins [`Store::pins`] lists (Kubo's `pin ls --type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PinFilter {
    /// Recursive, then direct, then indirect.
    #[default]
    All,
    /// Recursive pins only.
    Recursive,
    /// Direct pins only.
    Direct,
    /// Blocks below recursive pins that have no pin of their own.
    Indirect,
}

impl Store {
    /// Pins `cid`. A recursive pin first checks that the whole DAG is stored and fails naming
    /// the first missing block; a direct pin needs the block. Pinning recursively what is
    /// pinned directly turns the pin recursive; pinning again what is pinned the same way is a
    /// no-op; a direct pin of a recursive pin is an error, as in Kubo.
    ///
    /// To store blocks and pin them atomically, use [`Store::writer`] and
    /// [`BlockWriter::finish`](crate::BlockWriter::finish).
    ///
    /// # Errors
    /// [`StoreError::MissingBlock`], [`StoreError::AlreadyPinnedRecursively`], or a database
    /// error.
    pub fn pin(&self, cid: &Cid, mode: PinMode) -> Result<(), StoreError> {
        self.writer().finish(Some((*cid, mode))).map(|_| ())
    }

    /// Removes the pin of `cid` (whichever mode it has) and returns its mode. The blocks stay
    /// until the next GC.
    ///
    /// # Errors
    /// [`StoreError::NotPinned`] if `cid` has no pin record of its own.
    pub fn unpin(&self, cid: &Cid) -> Result<PinMode, StoreError> {
        let removed = self.write(|txn| {
            let mut pins = open_write(txn, PINS)?;
            let old = pins
                .remove(cid.to_bytes().as_slice())
                .map_err(db_err("removing a pin"))?
                .map(|v| v.value());
            Ok(old)
        })?;
        match removed.and_then(PinMode::from_byte) {
            Some(mode) => Ok(mode),
            None => {
                self.counters().reject();
                Err(StoreError::NotPinned {
                    cid: cid.to_string(),
                })
            }
        }
    }

    /// Lists pins of the given kind. Indirect pins are found by walking every recursive DAG,
    /// which takes time and memory in proportion to the pinned blocks.
    ///
    /// # Errors
    /// A database error.
    pub fn pins(&self, filter: PinFilter) -> Result<Vec<(Cid, PinType)>, StoreError> {
        self.read(|txn| {
            let pins = all_pins(&open_read(txn, PINS)?)?;
            let mut out = Vec::new();
            for wanted in [PinMode::Recursive, PinMode::Direct] {
                if filter == PinFilter::All || filter == PinFilter::from(wanted) {
                    out.extend(
                        pins.iter()
                            .filter(|(_, m)| *m == wanted)
                            .map(|(c, m)| (*c, PinType::from(*m))),
                    );
                }
            }
            if matches!(filter, PinFilter::All | PinFilter::Indirect) {
                let tables = read_tables(txn)?;
                // A CID with a pin of its own is listed as that, never as indirect too.
                let own: HashSet<Cid> = pins.iter().map(|(c, _)| node_key(c)).collect();
                let mut visited = HashSet::new();
                for (root, _) in pins.iter().filter(|(_, m)| *m == PinMode::Recursive) {
                    tables.walk(root, &mut visited, |cid, _| {
                        if !own.contains(&node_key(cid)) {
                            out.push((*cid, PinType::Indirect { via: *root }));
                        }
                        ControlFlow::Continue(())
                    })?;
                }
            }
            Ok(out)
        })
    }

    /// How `cid` is pinned, if at all: its own pin record, else whether its bytes lie below a
    /// recursive pin (which walks the pinned DAGs).
    ///
    /// # Errors
    /// A database error.
    pub fn pin_type(&self, cid: &Cid) -> Result<Option<PinType>, StoreError> {
        self.read(|txn| {
            let table = open_read(txn, PINS)?;
            if let Some(v) = table
                .get(cid.to_bytes().as_slice())
                .map_err(db_err("reading a pin"))?
            {
                return Ok(PinMode::from_byte(v.value()).map(PinType::from));
            }
            let pins = all_pins(&table)?;
            let mh = cid.hash().to_bytes();
            let mut how = read_tables(txn)?.pinned_how(&pins, std::slice::from_ref(&mh))?;
            Ok(how.remove(&mh))
        })
    }
}

impl From<PinMode> for PinFilter {
    fn from(mode: PinMode) -> Self {
        match mode {
            PinMode::Recursive => Self::Recursive,
            PinMode::Direct => Self::Direct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cids, node, open, raw};
    use ipld_core::ipld::Ipld;
    use stargate_protocol::{Block, Codec, HashCode, Version};

    #[test]
    fn recursive_pin_needs_the_whole_dag_and_names_what_is_missing() {
        let (_dir, store) = open();
        let (a, b) = (raw(&b"a"[..]), raw(&b"b"[..]));
        let mid = node(&[&b], b"mid");
        let root = node(&[&a, &mid], b"root");
        store
            .put_many([root.clone(), mid.clone(), a.clone()])
            .unwrap();
        let err = store.pin(root.cid(), PinMode::Recursive).unwrap_err();
        assert_eq!(
            err,
            StoreError::MissingBlock {
                root: root.cid().to_string(),
                missing: b.cid().to_string()
            }
        );
        assert_eq!(store.pin_type(root.cid()).unwrap(), None);
        assert_eq!(store.metrics().rejected_writes, 1);
        store.put(b.clone()).unwrap();
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        assert_eq!(
            store.pin_type(root.cid()).unwrap(),
            Some(PinType::Recursive)
        );
        assert_eq!(
            store.pin_type(b.cid()).unwrap(),
            Some(PinType::Indirect { via: *root.cid() })
        );
        // Pinning again is a no-op.
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        assert_eq!(store.pins(PinFilter::Recursive).unwrap().len(), 1);
    }

    #[test]
    fn direct_pins_follow_kubo() {
        let (_dir, store) = open();
        let a = raw(&b"a"[..]);
        let root = node(&[&a], b"r");
        let err = store.pin(a.cid(), PinMode::Direct).unwrap_err();
        assert!(matches!(err, StoreError::MissingBlock { .. }));
        store.put_many([a.clone(), root.clone()]).unwrap();
        store.pin(root.cid(), PinMode::Direct).unwrap();
        // Recursive over direct upgrades the pin.
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        assert_eq!(
            store.pin_type(root.cid()).unwrap(),
            Some(PinType::Recursive)
        );
        // Direct over recursive is refused.
        assert_eq!(
            store.pin(root.cid(), PinMode::Direct).unwrap_err(),
            StoreError::AlreadyPinnedRecursively {
                cid: root.cid().to_string()
            }
        );
        assert_eq!(store.unpin(root.cid()).unwrap(), PinMode::Recursive);
        assert!(matches!(
            store.unpin(root.cid()).unwrap_err(),
            StoreError::NotPinned { .. }
        ));
        assert_eq!(store.pin_type(a.cid()).unwrap(), None);
    }

    #[test]
    fn listing_gives_each_cid_once_with_its_strongest_kind() {
        let (_dir, store) = open();
        let (a, b, c) = (raw(&b"a"[..]), raw(&b"b"[..]), raw(&b"c"[..]));
        let inner = node(&[&b, &c], b"inner");
        let root = node(&[&a, &inner, &a], b"root");
        store
            .put_many([a.clone(), b.clone(), c.clone(), inner.clone(), root.clone()])
            .unwrap();
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        store.pin(inner.cid(), PinMode::Direct).unwrap();
        let all = store.pins(PinFilter::All).unwrap();
        assert_eq!(
            all,
            vec![
                (*root.cid(), PinType::Recursive),
                (*inner.cid(), PinType::Direct),
                (*a.cid(), PinType::Indirect { via: *root.cid() }),
                (*b.cid(), PinType::Indirect { via: *root.cid() }),
                (*c.cid(), PinType::Indirect { via: *root.cid() }),
            ]
        );
        let indirect: Vec<Cid> = store
            .pins(PinFilter::Indirect)
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(indirect, cids(&[&a, &b, &c]));
        assert_eq!(
            store.pins(PinFilter::Direct).unwrap(),
            vec![(*inner.cid(), PinType::Direct)]
        );
    }

    #[test]
    fn dag_cbor_dags_pin_through_their_links() {
        let (_dir, store) = open();
        let leaf = raw(&b"leaf"[..]);
        let doc = Ipld::Map(
            [("l".to_owned(), Ipld::List(vec![Ipld::Link(*leaf.cid())]))]
                .into_iter()
                .collect(),
        );
        let root = Block::encode(
            Version::V1,
            Codec::DagCbor,
            HashCode::Sha2_256,
            serde_ipld_dagcbor::to_vec(&doc).unwrap(),
        )
        .unwrap();
        store.put(root.clone()).unwrap();
        assert!(matches!(
            store.pin(root.cid(), PinMode::Recursive),
            Err(StoreError::MissingBlock { .. })
        ));
        store.put(leaf.clone()).unwrap();
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        assert_eq!(
            store.pin_type(leaf.cid()).unwrap(),
            Some(PinType::Indirect { via: *root.cid() })
        );
    }

    #[test]
    fn bytes_stored_as_raw_and_pinned_as_dag_pb_are_walked_as_dag_pb() {
        let (_dir, store) = open();
        let leaf = raw(&b"leaf"[..]);
        let root = node(&[&leaf], b"root");
        let as_raw = Block::new(
            Cid::new_v1(Codec::Raw.code(), *root.cid().hash()),
            root.data().clone(),
        )
        .unwrap();
        store.put(as_raw).unwrap();
        // As raw it has no links, so it pins; as dag-pb its leaf is missing.
        store
            .pin(
                &Cid::new_v1(Codec::Raw.code(), *root.cid().hash()),
                PinMode::Recursive,
            )
            .unwrap();
        assert!(matches!(
            store.pin(root.cid(), PinMode::Recursive),
            Err(StoreError::MissingBlock { missing, .. }) if missing == leaf.cid().to_string()
        ));
        store.put(leaf).unwrap();
        store.pin(root.cid(), PinMode::Recursive).unwrap();
    }

    #[test]
    fn identity_cids_inside_dags_count_as_present() {
        let (_dir, store) = open();
        let inline =
            Block::encode(Version::V1, Codec::Raw, HashCode::Identity, &b"tiny"[..]).unwrap();
        let root = node(&[&inline], b"root");
        store.put(root.clone()).unwrap();
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        store.pin(inline.cid(), PinMode::Direct).unwrap();
    }
}

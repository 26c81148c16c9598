//! Random sequences of put / delete / pin / unpin / GC against a plain model of what the store
//! must hold afterwards.
// Helpers outside #[test] functions fail the test by unwrapping too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

mod common;

use common::{node, raw};
use proptest::prelude::*;
use stargate_protocol::{Block, Cid};
use stargate_storage::{PinFilter, PinMode, PinType, Store, StoreError, StoreOptions};

/// The blocks the sequences work on: leaves 0..6, two inner nodes, three roots (one of them
/// sharing an inner node with another).
struct Universe {
    blocks: Vec<Block>,
    children: Vec<Vec<usize>>,
}

impl Universe {
    fn new() -> Self {
        let mut blocks = Vec::new();
        let mut children = Vec::new();
        for i in 0..6u8 {
            blocks.push(raw(vec![i; 10 + i as usize]));
            children.push(vec![]);
        }
        for kids in [vec![0, 1], vec![2, 3], vec![6, 4], vec![7, 6], vec![5]] {
            let refs: Vec<&Block> = kids.iter().map(|&k: &usize| &blocks[k]).collect();
            let block = node(&refs, &[blocks.len() as u8]);
            blocks.push(block);
            children.push(kids);
        }
        Self { blocks, children }
    }

    fn cid(&self, i: usize) -> &Cid {
        self.blocks[i].cid()
    }

    /// `i` and everything below it.
    fn dag(&self, i: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::from([i]);
        for &c in &self.children[i] {
            out.extend(self.dag(c));
        }
        out
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize),
    Delete(usize),
    Pin(usize, PinMode),
    Unpin(usize),
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..11usize;
    prop_oneof![
        4 => i.clone().prop_map(Op::Put),
        2 => i.clone().prop_map(Op::Delete),
        3 => (i.clone(), prop_oneof![Just(PinMode::Recursive), Just(PinMode::Direct)])
            .prop_map(|(i, m)| Op::Pin(i, m)),
        2 => i.prop_map(Op::Unpin),
        1 => Just(Op::Gc),
    ]
}

#[derive(Default)]
struct Model {
    present: BTreeSet<usize>,
    pins: BTreeMap<usize, PinMode>,
}

impl Model {
    fn protected(&self, u: &Universe) -> BTreeSet<usize> {
        let mut live = BTreeSet::new();
        for (&p, &mode) in &self.pins {
            match mode {
                PinMode::Direct => {
                    live.insert(p);
                }
                PinMode::Recursive => live.extend(u.dag(p)),
            }
        }
        live
    }

    fn indirect(&self, u: &Universe) -> BTreeSet<usize> {
        let mut below = BTreeSet::new();
        for (&p, &mode) in &self.pins {
            if mode == PinMode::Recursive {
                below.extend(u.dag(p));
            }
        }
        below.retain(|i| !self.pins.contains_key(i));
        below
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let u = Universe::new();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mut m = Model::default();
    for op in ops {
        match *op {
            Op::Put(i) => {
                let new = store.put(u.blocks[i].clone()).unwrap();
                prop_assert_eq!(new, m.present.insert(i));
            }
            Op::Delete(i) => {
                let result = store.delete(u.cid(i));
                if m.protected(&u).contains(&i) {
                    prop_assert!(
                        matches!(result, Err(StoreError::Pinned { .. })),
                        "{result:?}"
                    );
                } else {
                    prop_assert_eq!(result, Ok(m.present.remove(&i)));
                }
            }
            Op::Pin(i, mode) => {
                let result = store.pin(u.cid(i), mode);
                let existing = m.pins.get(&i).copied();
                let complete = match mode {
                    PinMode::Recursive => u.dag(i).is_subset(&m.present),
                    PinMode::Direct => m.present.contains(&i),
                };
                if mode == PinMode::Direct && existing == Some(PinMode::Recursive) {
                    prop_assert!(
                        matches!(result, Err(StoreError::AlreadyPinnedRecursively { .. })),
                        "{:?}",
                        result
                    );
                } else if existing == Some(mode) || complete {
                    prop_assert_eq!(result, Ok(()));
                    m.pins.insert(i, mode);
                } else {
                    prop_assert!(
                        matches!(result, Err(StoreError::MissingBlock { .. })),
                        "{result:?}"
                    );
                }
            }
            Op::Unpin(i) => {
                let result = store.unpin(u.cid(i));
                match m.pins.remove(&i) {
                    Some(mode) => prop_assert_eq!(result, Ok(mode)),
                    None => prop_assert!(
                        matches!(result, Err(StoreError::NotPinned { .. })),
                        "{:?}",
                        result
                    ),
                }
            }
            Op::Gc => {
                let live = m.protected(&u);
                let removed = m.present.iter().filter(|i| !live.contains(i)).count();
                let summary = store.gc().unwrap();
                m.present.retain(|i| live.contains(i));
                prop_assert_eq!(summary.blocks_removed, removed as u64);
                prop_assert_eq!(summary.blocks_kept, m.present.len() as u64);
            }
        }
        check(&store, &u, &m)?;
    }
    let report = store.verify(|_| {}).unwrap();
    prop_assert!(report.corrupt.is_empty());
    prop_assert_eq!(report.blocks_checked, m.present.len() as u64);
    Ok(())
}

fn check(store: &Store, u: &Universe, m: &Model) -> Result<(), TestCaseError> {
    for i in 0..u.blocks.len() {
        prop_assert_eq!(
            store.has(u.cid(i)).unwrap(),
            m.present.contains(&i),
            "block {}",
            i
        );
    }
    let listed: BTreeMap<Cid, PinType> = store.pins(PinFilter::All).unwrap().into_iter().collect();
    let mut want: BTreeMap<Cid, PinType> = m
        .pins
        .iter()
        .map(|(&i, &mode)| (*u.cid(i), PinType::from(mode)))
        .collect();
    let indirect = m.indirect(u);
    for &i in &indirect {
        // Which root it is attributed to depends on walk order; compare the kind only.
        let via = match listed.get(u.cid(i)) {
            Some(PinType::Indirect { via }) => *via,
            other => {
                return Err(TestCaseError::fail(format!(
                    "block {i} listed as {other:?}"
                )));
            }
        };
        want.insert(*u.cid(i), PinType::Indirect { via });
    }
    prop_assert_eq!(&listed, &want);
    prop_assert_eq!(
        store.pins(PinFilter::All).unwrap().len(),
        m.pins.len() + indirect.len(),
        "each CID listed once"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_store_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}

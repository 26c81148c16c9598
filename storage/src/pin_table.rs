//! How pins lie in the pins table, and the checks and walks over it that the writer, GC and
//! the pin API share.
//!
//! A pin is keyed by its CID, as in Kubo, with its mode in one byte. A recursive pin keeps its
//! whole DAG, a direct pin keeps one block; blocks below a recursive pin are pinned
//! indirectly, which is computed by walking the DAGs when asked, never stored.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use redb::{ReadableTable, Table};
use stargate_protocol::Cid;

use crate::StoreError;
use crate::error::db_err;
use crate::tables::{Tables, WriteTables};

/// How a pin holds its CID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinMode {
    /// The block and every block below it.
    Recursive,
    /// The block alone.
    Direct,
}

impl PinMode {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Recursive => 1,
            Self::Direct => 2,
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Recursive),
            2 => Some(Self::Direct),
            _ => None,
        }
    }
}

/// How a CID is pinned, with Kubo's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinType {
    /// It has a recursive pin.
    Recursive,
    /// It has a direct pin.
    Direct,
    /// It lies below a recursive pin.
    Indirect {
        /// The recursive pin it was found under (the first, if several hold it).
        via: Cid,
    },
}

impl PinType {
    /// Kubo's word for it: `recursive`, `direct` or `indirect`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Recursive => "recursive",
            Self::Direct => "direct",
            Self::Indirect { .. } => "indirect",
        }
    }
}

impl From<PinMode> for PinType {
    fn from(mode: PinMode) -> Self {
        match mode {
            PinMode::Recursive => Self::Recursive,
            PinMode::Direct => Self::Direct,
        }
    }
}

/// Every pin record, in key order.
pub(crate) fn all_pins<P: ReadableTable<&'static [u8], u8>>(
    pins: &P,
) -> Result<Vec<(Cid, PinMode)>, StoreError> {
    let ctx = "listing pins";
    let mut out = Vec::new();
    for item in pins.range::<&[u8]>(..).map_err(db_err(ctx))? {
        let (k, v) = item.map_err(db_err(ctx))?;
        let cid = Cid::try_from(k.value()).map_err(|e| StoreError::Corrupt {
            reason: format!("a pin record has an invalid CID: {e}"),
        })?;
        let mode = PinMode::from_byte(v.value()).ok_or_else(|| StoreError::Corrupt {
            reason: format!("the pin of {cid} has an unknown mode {}", v.value()),
        })?;
        out.push((cid, mode));
    }
    Ok(out)
}

/// Adds pins after checking that what each protects is stored: the whole DAG for a recursive
/// pin, the block for a direct one. All or none: the first pin that cannot be added fails the
/// lot and nothing is written. Called inside the write transaction that commits them.
pub(crate) fn insert_pins(
    tables: &WriteTables<'_>,
    pins: &mut Table<'_, &'static [u8], u8>,
    wanted: &[(Cid, PinMode)],
) -> Result<(), StoreError> {
    let ctx = "writing a pin";
    let mut planned: Vec<(Vec<u8>, PinMode)> = Vec::new();
    for (cid, mode) in wanted {
        let key = cid.to_bytes();
        let existing = match planned.iter().rev().find(|(k, _)| *k == key) {
            Some((_, m)) => Some(*m),
            None => pins
                .get(key.as_slice())
                .map_err(db_err(ctx))?
                .and_then(|v| PinMode::from_byte(v.value())),
        };
        match (mode, existing) {
            (PinMode::Recursive, Some(PinMode::Recursive))
            | (PinMode::Direct, Some(PinMode::Direct)) => continue,
            (PinMode::Direct, Some(PinMode::Recursive)) => {
                return Err(StoreError::AlreadyPinnedRecursively {
                    cid: cid.to_string(),
                });
            }
            _ => {}
        }
        let missing = match mode {
            PinMode::Recursive => tables.first_missing(cid)?,
            PinMode::Direct => (!tables.contains(cid)?).then_some(*cid),
        };
        if let Some(missing) = missing {
            return Err(StoreError::MissingBlock {
                root: cid.to_string(),
                missing: missing.to_string(),
            });
        }
        planned.push((key, *mode));
    }
    for (key, mode) in planned {
        pins.insert(key.as_slice(), mode.to_byte())
            .map_err(db_err(ctx))?;
    }
    Ok(())
}

impl<I, D, L, T> Tables<I, D, L, T>
where
    I: ReadableTable<&'static [u8], (u32, u64)>,
    D: ReadableTable<&'static [u8], &'static [u8]>,
    L: ReadableTable<&'static [u8], &'static [u8]>,
{
    /// The multihashes of every stored block a pin protects.
    pub(crate) fn live_set(&self, pins: &[(Cid, PinMode)]) -> Result<HashSet<Vec<u8>>, StoreError> {
        let mut live = HashSet::new();
        let mut visited = HashSet::new();
        for (root, mode) in pins {
            match mode {
                PinMode::Direct => {
                    live.insert(root.hash().to_bytes());
                }
                PinMode::Recursive => {
                    self.walk(root, &mut visited, |cid, present| {
                        if present {
                            live.insert(cid.hash().to_bytes());
                        } else {
                            tracing::warn!(%root, missing = %cid, "a block of a pinned DAG is missing");
                        }
                        ControlFlow::Continue(())
                    })?;
                }
            }
        }
        Ok(live)
    }

    /// How each of `targets` (multihash bytes) is pinned, for those that are: a pin record
    /// with that multihash first, else the first recursive pin whose DAG holds it.
    pub(crate) fn pinned_how(
        &self,
        pins: &[(Cid, PinMode)],
        targets: &[Vec<u8>],
    ) -> Result<HashMap<Vec<u8>, PinType>, StoreError> {
        let targets: HashSet<&Vec<u8>> = targets.iter().collect();
        let mut found = HashMap::new();
        for (cid, mode) in pins {
            let mh = cid.hash().to_bytes();
            if targets.contains(&mh) {
                found.entry(mh).or_insert(PinType::from(*mode));
            }
        }
        let mut remaining: HashSet<&Vec<u8>> = targets
            .into_iter()
            .filter(|t| !found.contains_key(*t))
            .collect();
        let mut visited = HashSet::new();
        for (root, _) in pins.iter().filter(|(_, m)| *m == PinMode::Recursive) {
            if remaining.is_empty() {
                break;
            }
            self.walk(root, &mut visited, |cid, _| {
                let mh = cid.hash().to_bytes();
                if remaining.remove(&mh) {
                    found.insert(mh, PinType::Indirect { via: *root });
                }
                if remaining.is_empty() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
        }
        Ok(found)
    }
}

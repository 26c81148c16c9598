//! Both sides of a Negentropy reconciliation over a snapshot of the set, with the round limit.

use std::sync::Arc;

use negentropy::{Bound, Id, Item, Negentropy, NegentropyStorageBase};
use thiserror::Error;

use super::limits::{MAX_RECONCILE_SIZE, MAX_ROUNDS, NEGENTROPY_FRAME_LIMIT};
use crate::mirror::EntryId;

/// The set as one reconciliation sees it: ids sorted and distinct, each the item `(0, id)`.
/// Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(Arc<[EntryId]>);

impl Snapshot {
    /// The snapshot of `ids` (in any order, duplicates allowed).
    pub fn new(mut ids: Vec<EntryId>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        Self(ids.into())
    }

    /// The ids, sorted.
    pub fn ids(&self) -> &[EntryId] {
        &self.0
    }

    /// Whether `id` is in the snapshot.
    pub fn contains(&self, id: &EntryId) -> bool {
        self.0.binary_search(id).is_ok()
    }

    fn item(id: &EntryId) -> Item {
        Item::with_timestamp_and_id(0, Id::from_byte_array(*id))
    }
}

impl NegentropyStorageBase for Snapshot {
    fn size(&self) -> Result<usize, negentropy::Error> {
        Ok(self.0.len())
    }

    fn get_item(&self, i: usize) -> Result<Option<Item>, negentropy::Error> {
        Ok(self.0.get(i).map(Self::item))
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> Result<bool, negentropy::Error>,
    ) -> Result<(), negentropy::Error> {
        let ids = self.0.get(begin..end).ok_or(negentropy::Error::BadRange)?;
        for (i, id) in ids.iter().enumerate() {
            if !cb(Self::item(id), begin + i)? {
                break;
            }
        }
        Ok(())
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        let range = self.0.get(first..last).unwrap_or_default();
        first + range.partition_point(|id| Self::item(id) < value.item)
    }
}

/// Why a reconciliation failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconcileError {
    /// The peer's round message is not a Negentropy message we can answer.
    #[error("bad reconciliation message: {0}")]
    Negentropy(String),
    /// The session needed more rounds than allowed.
    #[error("reconciliation took over {MAX_ROUNDS} rounds")]
    TooManyRounds,
    /// A round message would exceed the size limit (a bug of the frame limit, never the peer's).
    #[error("reconciliation message of {0} bytes is over the limit of {MAX_RECONCILE_SIZE}")]
    TooLarge(usize),
}

fn negentropy_error(e: negentropy::Error) -> ReconcileError {
    ReconcileError::Negentropy(e.to_string())
}

fn checked(message: Vec<u8>) -> Result<Vec<u8>, ReconcileError> {
    if message.len() > MAX_RECONCILE_SIZE {
        return Err(ReconcileError::TooLarge(message.len()));
    }
    Ok(message)
}

/// What the initiator learned: the ids only it holds and the ids only the peer holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Ids the initiator holds and the peer lacks, sorted.
    pub have: Vec<EntryId>,
    /// Ids the peer holds and the initiator lacks, sorted.
    pub need: Vec<EntryId>,
}

/// The initiator's next move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this round message and feed the answer to [`Initiator::step`].
    Next(Vec<u8>),
    /// The sets are reconciled.
    Done(Reconciled),
}

/// The side that starts a session and learns the differences.
#[derive(Debug)]
pub struct Initiator {
    negentropy: Negentropy<'static, Snapshot>,
    snapshot: Snapshot,
    rounds: usize,
    have: Vec<Id>,
    need: Vec<Id>,
}

impl Initiator {
    /// Starts a reconciliation of `snapshot`: the initiator and its first round message.
    ///
    /// # Errors
    /// Only if the Negentropy crate refuses the frame limit (a bug).
    pub fn start(snapshot: Snapshot) -> Result<(Self, Vec<u8>), ReconcileError> {
        let mut negentropy = Negentropy::owned(snapshot.clone(), NEGENTROPY_FRAME_LIMIT)
            .map_err(negentropy_error)?;
        let first = checked(negentropy.initiate().map_err(negentropy_error)?)?;
        Ok((
            Self {
                negentropy,
                snapshot,
                rounds: 1,
                have: Vec::new(),
                need: Vec::new(),
            },
            first,
        ))
    }

    /// Rounds sent so far.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// Takes the peer's answer to the last round message.
    ///
    /// # Errors
    /// A malformed answer, or one more round than [`MAX_ROUNDS`].
    pub fn step(&mut self, answer: &[u8]) -> Result<Step, ReconcileError> {
        let next = self
            .negentropy
            .reconcile_with_ids(answer, &mut self.have, &mut self.need)
            .map_err(negentropy_error)?;
        match next {
            Some(message) => {
                if self.rounds >= MAX_ROUNDS {
                    return Err(ReconcileError::TooManyRounds);
                }
                self.rounds += 1;
                Ok(Step::Next(checked(message)?))
            }
            None => Ok(Step::Done(self.reconciled())),
        }
    }

    /// The differences, each list sorted and distinct. A peer may list ids in ranges they do
    /// not belong to; what it claims we lack but we hold is dropped.
    fn reconciled(&mut self) -> Reconciled {
        let mut have: Vec<EntryId> = self.have.drain(..).map(Id::to_bytes).collect();
        have.sort_unstable();
        have.dedup();
        let mut need: Vec<EntryId> = self
            .need
            .drain(..)
            .map(Id::to_bytes)
            .filter(|id| !self.snapshot.contains(id))
            .collect();
        need.sort_unstable();
        need.dedup();
        Reconciled { have, need }
    }
}

/// The side that answers a session's rounds.
#[derive(Debug)]
pub struct Responder {
    negentropy: Negentropy<'static, Snapshot>,
    rounds: usize,
}

impl Responder {
    /// A responder over `snapshot`.
    ///
    /// # Errors
    /// Only if the Negentropy crate refuses the frame limit (a bug).
    pub fn new(snapshot: Snapshot) -> Result<Self, ReconcileError> {
        Ok(Self {
            negentropy: Negentropy::owned(snapshot, NEGENTROPY_FRAME_LIMIT)
                .map_err(negentropy_error)?,
            rounds: 0,
        })
    }

    /// Answers one round message.
    ///
    /// # Errors
    /// A malformed message, or one more round than [`MAX_ROUNDS`].
    pub fn answer(&mut self, query: &[u8]) -> Result<Vec<u8>, ReconcileError> {
        if self.rounds >= MAX_ROUNDS {
            return Err(ReconcileError::TooManyRounds);
        }
        self.rounds += 1;
        checked(self.negentropy.reconcile(query).map_err(negentropy_error)?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn id(n: u32) -> EntryId {
        crate::sha2_256(&n.to_be_bytes())
    }

    /// Runs a whole reconciliation; returns what the initiator learned, the rounds and the
    /// bytes each way.
    fn run(ours: &[EntryId], theirs: &[EntryId]) -> (Reconciled, usize, usize, usize) {
        let (mut initiator, mut message) = Initiator::start(Snapshot::new(ours.to_vec())).unwrap();
        let mut responder = Responder::new(Snapshot::new(theirs.to_vec())).unwrap();
        let (mut sent, mut received) = (0, 0);
        loop {
            sent += message.len();
            let answer = responder.answer(&message).unwrap();
            received += answer.len();
            match initiator.step(&answer).unwrap() {
                Step::Next(m) => message = m,
                Step::Done(r) => return (r, initiator.rounds(), sent, received),
            }
        }
    }

    #[test]
    fn sets_in_sync_take_one_round_of_a_few_hundred_bytes() {
        let ids: Vec<EntryId> = (0..2000).map(id).collect();
        let (r, rounds, sent, received) = run(&ids, &ids);
        assert_eq!(r, Reconciled::default());
        assert_eq!(rounds, 1);
        assert!(sent + received < 400, "{sent} + {received}");
    }

    #[test]
    fn a_large_difference_spans_several_bounded_rounds() {
        let theirs: Vec<EntryId> = (0..6000).map(id).collect();
        let (r, rounds, _, _) = run(&[], &theirs);
        assert_eq!(r.need.len(), 6000);
        assert!(rounds > 2, "{rounds}");
        let (r, _, _, _) = run(&theirs, &[]);
        assert_eq!(r.have.len(), 6000);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut responder = Responder::new(Snapshot::new((0..100).map(id).collect())).unwrap();
        for bad in [&[][..], &[0x61, 0xff, 0xff], &[0x61, 1, 200, 1], &[0x10]] {
            let _ = responder.answer(bad);
        }
        let (mut initiator, _) = Initiator::start(Snapshot::default()).unwrap();
        assert!(initiator.step(&[0x61, 5, 0, 7]).is_err());
    }

    #[test]
    fn rounds_are_bounded() {
        let mut responder = Responder::new(Snapshot::default()).unwrap();
        let (_, first) = Initiator::start(Snapshot::default()).unwrap();
        for _ in 0..MAX_ROUNDS {
            responder.answer(&first).unwrap();
        }
        assert_eq!(responder.answer(&first), Err(ReconcileError::TooManyRounds));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the two sets, the initiator learns exactly the two differences.
        #[test]
        fn learns_exactly_the_differences(
            common in 0u32..3000,
            only_ours in prop::collection::btree_set(3000u32..4000, 0..300),
            only_theirs in prop::collection::btree_set(4000u32..5000, 0..300),
        ) {
            let ours: Vec<EntryId> = (0..common).chain(only_ours.iter().copied()).map(id).collect();
            let theirs: Vec<EntryId> = (0..common).chain(only_theirs.iter().copied()).map(id).collect();
            let (r, rounds, _, _) = run(&ours, &theirs);
            let want_have: BTreeSet<EntryId> = only_ours.iter().copied().map(id).collect();
            let want_need: BTreeSet<EntryId> = only_theirs.iter().copied().map(id).collect();
            prop_assert_eq!(r.have.into_iter().collect::<BTreeSet<_>>(), want_have);
            prop_assert_eq!(r.need.into_iter().collect::<BTreeSet<_>>(), want_need);
            prop_assert!(rounds <= MAX_ROUNDS);
        }

        /// A responder fed anything answers or refuses, within the size limit.
        #[test]
        fn responder_never_panics(query in prop::collection::vec(any::<u8>(), 0..2048)) {
            let mut responder = Responder::new(Snapshot::new((0..300).map(id).collect())).unwrap();
            if let Ok(answer) = responder.answer(&query) {
                prop_assert!(answer.len() <= MAX_RECONCILE_SIZE);
            }
        }
    }
}

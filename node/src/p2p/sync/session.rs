//! One session, either side: Negentropy rounds, then the initiator asks for the entries it
//! lacks and pushes those the responder lacks.

use std::collections::HashSet;
use std::sync::Arc;

use libp2p::PeerId;
use stargate_protocol::mirror::{Entry, EntryId};
use stargate_protocol::reconcile::{
    Initiator, MAX_ENTRIES_PER_MESSAGE, Reconciled, Responder, Step, SyncMessage,
};

use super::context::{Context, Learned};
use super::wire::{SyncError, Wire};

/// What a finished session moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Summary {
    /// Entries learned from the peer.
    pub(super) learned: usize,
    /// Entries sent to the peer.
    pub(super) sent: usize,
}

/// Runs a session as the initiator on `wire`, a stream just opened to `peer`.
pub(super) async fn initiate(
    ctx: &Context,
    peer: PeerId,
    wire: &mut Wire,
) -> Result<Summary, SyncError> {
    let (mut initiator, first) = Initiator::start(ctx.set.snapshot())
        .map_err(|e| SyncError::Io(format!("cannot start a reconciliation: {e}")))?;
    wire.send(&SyncMessage::Reconcile(first)).await?;
    ctx.metrics.round();
    let reconciled = loop {
        let answer = match wire.recv().await? {
            SyncMessage::Reconcile(answer) => answer,
            SyncMessage::Busy => return Err(SyncError::Busy),
            other => return Err(unexpected(&other)),
        };
        match initiator
            .step(&answer)
            .map_err(|e| SyncError::misbehaving("bad_round", e))?
        {
            Step::Next(message) => {
                wire.send(&SyncMessage::Reconcile(message)).await?;
                ctx.metrics.round();
            }
            Step::Done(reconciled) => break reconciled,
        }
    };
    let Reconciled { have, need } = reconciled;
    let cap = ctx.config.max_entries_per_session;
    let mut summary = Summary::default();
    for ids in need[..need.len().min(cap)].chunks(MAX_ENTRIES_PER_MESSAGE) {
        wire.send(&SyncMessage::Want(ids.to_vec())).await?;
        let entries = match wire.recv().await? {
            SyncMessage::Entries(entries) => entries,
            other => return Err(unexpected(&other)),
        };
        check_asked(ids, &entries)?;
        summary.learned += entries.len();
        hand_over(ctx, peer, entries).await?;
    }
    for ids in have[..have.len().min(cap)].chunks(MAX_ENTRIES_PER_MESSAGE) {
        let entries = lookup(ctx, ids).await?;
        if !entries.is_empty() {
            summary.sent += entries.len();
            wire.send(&SyncMessage::Entries(entries)).await?;
        }
    }
    wire.send(&SyncMessage::Done).await?;
    Ok(summary)
}

/// Answers a session whose first message, `first`, arrived from `peer` on `wire`.
pub(super) async fn respond(
    ctx: &Context,
    peer: PeerId,
    wire: &mut Wire,
    first: Vec<u8>,
) -> Result<Summary, SyncError> {
    let mut responder = Responder::new(ctx.set.snapshot())
        .map_err(|e| SyncError::Io(format!("cannot answer a reconciliation: {e}")))?;
    let mut query = Some(first);
    let mut summary = Summary::default();
    // Rounds come before any entry moves.
    let mut reconciling = true;
    loop {
        if let Some(q) = query.take() {
            let answer = responder
                .answer(&q)
                .map_err(|e| SyncError::misbehaving("bad_round", e))?;
            ctx.metrics.round();
            wire.send(&SyncMessage::Reconcile(answer)).await?;
        }
        match wire.recv().await? {
            SyncMessage::Reconcile(q) if reconciling => query = Some(q),
            SyncMessage::Want(ids) => {
                reconciling = false;
                let entries = lookup(ctx, &ids).await?;
                summary.sent += entries.len();
                wire.send(&SyncMessage::Entries(entries)).await?;
            }
            SyncMessage::Entries(entries) => {
                reconciling = false;
                summary.learned += entries.len();
                if summary.learned > ctx.config.max_entries_per_session {
                    return Err(SyncError::misbehaving(
                        "too_many_entries",
                        format!("over {} entries pushed", ctx.config.max_entries_per_session),
                    ));
                }
                check_distinct(&entries)?;
                // Entries learned meanwhile (from gossip) are not news.
                let news: Vec<Entry> = entries
                    .into_iter()
                    .filter(|e| !ctx.set.contains(&e.id()))
                    .collect();
                hand_over(ctx, peer, news).await?;
            }
            SyncMessage::Done => return Ok(summary),
            other => return Err(unexpected(&other)),
        }
    }
}

fn unexpected(message: &SyncMessage) -> SyncError {
    SyncError::misbehaving(
        "unexpected_message",
        format!("a {} out of turn", message.name()),
    )
}

/// An answer to a `Want` holds only ids asked for, each once.
fn check_asked(asked: &[EntryId], entries: &[Entry]) -> Result<(), SyncError> {
    let mut open: HashSet<&EntryId> = asked.iter().collect();
    for entry in entries {
        if !open.remove(&entry.id()) {
            return Err(SyncError::misbehaving(
                "unasked_entry",
                format!("{} was not asked for, or twice", entry.cid),
            ));
        }
    }
    Ok(())
}

fn check_distinct(entries: &[Entry]) -> Result<(), SyncError> {
    let mut seen = HashSet::with_capacity(entries.len());
    if entries.iter().all(|e| seen.insert(e.id())) {
        Ok(())
    } else {
        Err(SyncError::misbehaving(
            "unasked_entry",
            "an entry pushed twice",
        ))
    }
}

/// The entries of `ids` this node holds, read off the runtime (the mirror reads its store).
async fn lookup(ctx: &Context, ids: &[EntryId]) -> Result<Vec<Entry>, SyncError> {
    let source = Arc::clone(&ctx.entries);
    let asked = ids.to_vec();
    let mut entries = tokio::task::spawn_blocking(move || source.entries(&asked))
        .await
        .map_err(|_| SyncError::Stopped)?;
    // The source answers only what was asked, at most once each, whatever it holds.
    let mut open: HashSet<&EntryId> = ids.iter().collect();
    entries.retain(|e| open.remove(&e.id()));
    Ok(entries)
}

/// Hands learned entries to the mirror's intake (waiting for room: the session's time limit
/// bounds the wait).
async fn hand_over(ctx: &Context, peer: PeerId, entries: Vec<Entry>) -> Result<(), SyncError> {
    if entries.is_empty() {
        return Ok(());
    }
    ctx.metrics.learned(entries.len());
    ctx.learned
        .send(Learned { peer, entries })
        .await
        .map_err(|_| SyncError::Stopped)
}

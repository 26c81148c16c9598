//! The store writer of a fetch, and the hand-off of walked blocks to it.

use stargate_protocol::{Block, Cid};
use stargate_storage::{PinMode, Store, StoreError, WriteSummary};
use tokio::sync::{mpsc, oneshot};

use super::error::TransferError;

/// Walked blocks are handed to the store writer in groups of about this many bytes: a handoff
/// per block would wake the writer's thread once per block.
pub(super) const HANDOFF_BYTES: usize = 1 << 20;
/// Groups queued for the store writer.
const WRITER_QUEUE: usize = 4;

/// Asks the writer to commit what it holds; answered once it has.
pub(super) type Flush = oneshot::Sender<()>;

/// What the store writer is told.
pub(super) enum ToWriter {
    Put(Vec<Block>),
    Flush(Flush),
    Finish {
        pin: Option<Cid>,
        reply: oneshot::Sender<Result<WriteSummary, StoreError>>,
    },
}

/// Starts a store writer on the blocking pool; it stops once told to finish, or when every
/// sender is gone (keeping what it was given, unpinned).
pub(super) fn start(store: Store) -> mpsc::Sender<ToWriter> {
    let (to_writer, queue) = mpsc::channel(WRITER_QUEUE);
    tokio::task::spawn_blocking(move || write(&store, queue));
    to_writer
}

/// Walked blocks on their way to the store writer, in groups. Those not yet handed over are the
/// last ones walked, fewer bytes than `Arrivals` keeps of those, so a walk that needs one again
/// finds it there and never asks the store for a block the writer has not been given.
pub(super) struct Handoff {
    writer: mpsc::Sender<ToWriter>,
    blocks: Vec<Block>,
    bytes: usize,
}

impl Handoff {
    pub(super) fn new(writer: mpsc::Sender<ToWriter>) -> Self {
        Self {
            writer,
            blocks: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds a block, handing the group over once it is big enough.
    pub(super) async fn push(&mut self, block: Block) -> Result<(), TransferError> {
        self.bytes += block.data().len();
        self.blocks.push(block);
        if self.bytes >= HANDOFF_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Hands over what is held, then has the writer commit everything (pinning `pin`, if
    /// given) and say what it stored.
    ///
    /// # Errors
    /// The first store error of the fetch, or the writer stopping.
    pub(super) async fn finish(mut self, pin: Option<Cid>) -> Result<WriteSummary, TransferError> {
        self.flush().await?;
        let (reply, summary) = oneshot::channel();
        self.writer
            .send(ToWriter::Finish { pin, reply })
            .await
            .map_err(|_| writer_gone())?;
        summary
            .await
            .map_err(|_| writer_gone())?
            .map_err(|e| TransferError::Store {
                reason: e.to_string(),
            })
    }

    /// Hands over what is held.
    async fn flush(&mut self) -> Result<(), TransferError> {
        if let Some(group) = self.take() {
            self.writer
                .send(ToWriter::Put(group))
                .await
                .map_err(|_| writer_gone())?;
        }
        Ok(())
    }

    fn take(&mut self) -> Option<Vec<Block>> {
        self.bytes = 0;
        (!self.blocks.is_empty()).then(|| std::mem::take(&mut self.blocks))
    }
}

impl Drop for Handoff {
    /// A fetch that ends early keeps what it walked, as the writer keeps what it was given: the
    /// rest goes over if the queue has room.
    fn drop(&mut self) {
        if let Some(group) = self.take() {
            let _ = self.writer.try_send(ToWriter::Put(group));
        }
    }
}
fn writer_gone() -> TransferError {
    TransferError::Store {
        reason: "the store writer stopped".to_owned(),
    }
}
/// The store writer: one `BlockWriter` (renewed when a block is needed back before it would
/// commit on its own), pinning at the end if asked. Runs on the blocking pool.
fn write(store: &Store, mut queue: mpsc::Receiver<ToWriter>) {
    let mut writer = store.writer();
    let mut summary = WriteSummary::default();
    let mut failed: Option<StoreError> = None;
    while let Some(message) = queue.blocking_recv() {
        match message {
            ToWriter::Put(blocks) => {
                for block in blocks {
                    if let Err(e) = writer.put(block) {
                        failed.get_or_insert(e);
                    }
                }
            }
            ToWriter::Flush(done) => {
                let full = std::mem::replace(&mut writer, store.writer());
                match full.finish(None) {
                    Ok(s) => add(&mut summary, s),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
                let _ = done.send(());
            }
            ToWriter::Finish { pin, reply } => {
                let result = match failed {
                    Some(e) => Err(e),
                    None => writer
                        .finish(pin.map(|cid| (cid, PinMode::Recursive)))
                        .map(|s| {
                            add(&mut summary, s);
                            summary
                        }),
                };
                let _ = reply.send(result);
                return;
            }
        }
    }
    // The fetch was dropped: what arrived stays stored, unpinned.
    if let Err(e) = writer.finish(None) {
        tracing::warn!(error = %e, "storing the blocks of a cancelled transfer failed");
    }
}

fn add(total: &mut WriteSummary, more: WriteSummary) {
    total.blocks_new += more.blocks_new;
    total.bytes_new += more.bytes_new;
    total.blocks_present += more.blocks_present;
}

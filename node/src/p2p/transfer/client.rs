//! The receiver side: streams from the provider feed [`Arrivals`]; the walk over it decides what
//! is stored and when the transfer is complete; broken streams are resumed.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use stargate_protocol::car::{CarError, CarReader};
use stargate_protocol::transfer::{
    MAX_RESPONSE_SIZE, TransferRequest, TransferResponse, TransferStatus,
};
use stargate_protocol::unixfs::export::{
    BlockSource, DEFAULT_WINDOW, DagScope, ExportError, WalkOptions, resolve, walk_blocks,
};
use stargate_protocol::{Block, Cid};
use stargate_storage::{PinMode, Store, StoreError, WriteSummary};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::compat::FuturesAsyncReadCompatExt;
use tokio_util::task::AbortOnDropHandle;

use super::arrivals::{Arrivals, Flush};
use super::{FrameError, PROTOCOL, Transfer, TransferError, read_frame};

/// Blocks handed to the caller's stream ahead of its reading.
const OUT_QUEUE: usize = 16;
/// Walked blocks are handed to the store writer in groups of about this many bytes: a handoff
/// per block would wake the writer's thread once per block.
const HANDOFF_BYTES: usize = 1 << 20;
const _: () = assert!(
    HANDOFF_BYTES <= super::arrivals::RECENT_BYTES,
    "blocks not yet handed over must still be among the recent ones (see Handoff)"
);
/// Groups queued for the store writer.
const WRITER_QUEUE: usize = 4;
/// Resumes of one fetch in all, progress or not.
const MAX_TOTAL_RESUMES: u32 = 64;

/// What the store writer is told.
pub(super) enum ToWriter {
    Put(Vec<Block>),
    Flush(Flush),
    Finish {
        pin: Option<Cid>,
        reply: oneshot::Sender<Result<WriteSummary, StoreError>>,
    },
}

/// How a stream ended.
enum End {
    /// Cleanly: the provider sent all it had.
    Eof,
    /// The stream broke (reset, lost connection, cut mid-frame): resume.
    Broken(String),
    /// No stream could be opened.
    Open(String),
    /// The provider answered without a CAR.
    Refused(TransferStatus, String),
    /// The provider broke the protocol.
    Violation(String),
}

/// The task reading a stream; aborted when dropped, so that a finished or cancelled fetch leaves
/// no reader behind.
type Receiving = AbortOnDropHandle<End>;

pub(super) fn fetch(
    transfer: Transfer,
    peer: PeerId,
    request: TransferRequest,
    pin: bool,
) -> BoxStream<'static, Result<Block, TransferError>> {
    let (out, blocks) = mpsc::channel(OUT_QUEUE);
    let runtime = transfer.runtime.clone();
    runtime.spawn(async move {
        if let Err(e) = drive(&transfer, peer, request, pin, &out).await
            && e != TransferError::Stopped
        {
            tracing::info!(%peer, error = %e, "transfer failed");
            let _ = out.send(Err(e)).await;
        }
    });
    futures::stream::unfold(
        blocks,
        |mut b| async move { b.recv().await.map(|v| (v, b)) },
    )
    .boxed()
}

async fn drive(
    transfer: &Transfer,
    peer: PeerId,
    mut request: TransferRequest,
    pin: bool,
    out: &mpsc::Sender<Result<Block, TransferError>>,
) -> Result<(), TransferError> {
    let root = request.root;
    if pin
        && (!request.path.is_empty()
            || request.scope != DagScope::All
            || request.entity_bytes.is_some())
    {
        return Err(TransferError::BadRequest {
            root: root.to_string(),
            reason: "only a whole DAG (no path, dag-scope all, no entity-bytes) can be pinned"
                .to_owned(),
        });
    }
    request.skip = 0;
    let _slot = Arc::clone(&transfer.fetches)
        .acquire_owned()
        .await
        .map_err(|_| TransferError::Stopped)?;
    let config = &*transfer.config;
    let (to_writer, writer_queue) = mpsc::channel(WRITER_QUEUE);
    let store = transfer.store.clone();
    let writer = tokio::task::spawn_blocking(move || write(&store, writer_queue));
    let arrivals = Arc::new(Arrivals::new(
        transfer.store.clone(),
        config.max_in_flight_bytes,
        to_writer.clone(),
    ));
    let source: Arc<dyn BlockSource> = arrivals.clone();
    let mut walk = walk(source, request.clone());
    let mut receiving = Some(start(transfer, peer, request.clone(), &arrivals));
    let mut resumes = Resumes::default();
    let mut walked = 0u64;
    let mut handoff = Handoff::new(to_writer.clone());
    let mut deadline = Instant::now() + config.stall_timeout;
    let misbehaved = |reason: String| {
        (transfer.penalise)(peer, &reason);
        TransferError::Misbehaved { peer, reason }
    };
    // Opens the next stream, skipping what arrived, unless resuming has stopped helping.
    let resume = |why: String, resumes: &mut Resumes| {
        resumes.total += 1;
        resumes.in_a_row += 1;
        if resumes.in_a_row > config.max_resumes || resumes.total > MAX_TOTAL_RESUMES {
            return Err(TransferError::Incomplete {
                peer,
                resumes: resumes.total - 1,
                reason: why,
            });
        }
        let mut next = request.clone();
        next.skip = arrivals.received();
        tracing::debug!(%peer, %root, skip = next.skip, reason = %why, "resuming transfer");
        Ok(Some(start(transfer, peer, next, &arrivals)))
    };
    loop {
        tokio::select! {
            item = walk.next() => match item {
                Some(Ok(block)) => {
                    arrivals.walked(&block).map_err(misbehaved)?;
                    walked += 1;
                    resumes.in_a_row = 0;
                    handoff.push(block.clone()).await?;
                    out.send(Ok(block)).await.map_err(|_| TransferError::Stopped)?;
                    // After the sends: a slow consumer or store is not a stalled provider.
                    deadline = Instant::now() + config.stall_timeout;
                }
                Some(Err(e)) => {
                    return Err(match arrivals.failure() {
                        Some(reason) => misbehaved(reason),
                        None => walk_error(root, &e),
                    });
                }
                None => break,
            },
            end = async { receiving.as_mut()?.await.ok() }, if receiving.is_some() => {
                receiving = None;
                arrivals.set_receiving(false);
                match end {
                    Some(End::Eof) => {}
                    Some(End::Broken(why)) => receiving = resume(why, &mut resumes)?,
                    None => receiving = resume(why_aborted(), &mut resumes)?,
                    Some(End::Open(reason)) if arrivals.received() == 0 && resumes.total == 0 => {
                        return Err(TransferError::Open { peer, reason });
                    }
                    Some(End::Open(why)) => receiving = resume(why, &mut resumes)?,
                    Some(End::Refused(status, message)) => {
                        return Err(TransferError::Refused { peer, status, message });
                    }
                    Some(End::Violation(reason)) => {
                        arrivals.fail(reason.clone());
                        return Err(misbehaved(reason));
                    }
                }
            },
            // A wake-up from before the last blocks were walked is stale: the walk asks again.
            () = arrivals.starving(), if receiving.is_none() && arrivals.drained() => {
                receiving = resume(
                    format!("the stream ended after block {walked} of the walk"),
                    &mut resumes,
                )?;
            },
            () = tokio::time::sleep_until(deadline) => {
                deadline = Instant::now() + config.stall_timeout;
                drop(receiving.take());
                arrivals.set_receiving(false);
                receiving = resume(format!("no block for {:?}", config.stall_timeout), &mut resumes)?;
            },
        }
    }
    // An honest provider closes right after the last block: whatever it sent until then must
    // have been used.
    if let Some(mut last) = receiving.take()
        && tokio::time::timeout(config.stall_timeout, &mut last)
            .await
            .is_err()
    {
        tracing::debug!(%peer, %root, "the provider kept the stream open after the last block");
    }
    if !arrivals.all_used() {
        return Err(misbehaved(
            "sent blocks beyond the end of the walk".to_owned(),
        ));
    }
    handoff.flush().await?;
    let (reply, summary) = oneshot::channel();
    to_writer
        .send(ToWriter::Finish {
            pin: pin.then_some(root),
            reply,
        })
        .await
        .map_err(|_| writer_gone())?;
    let summary = summary.await.map_err(|_| writer_gone())?;
    drop(writer);
    let summary = summary.map_err(|e| TransferError::Store {
        reason: e.to_string(),
    })?;
    tracing::debug!(
        %peer,
        %root,
        blocks = walked,
        new = summary.blocks_new,
        resumes = resumes.total,
        "transfer complete"
    );
    Ok(())
}

/// Walked blocks on their way to the store writer, in groups. Those not yet handed over are the
/// last ones walked, fewer bytes than [`Arrivals`] keeps of those, so a walk that needs one again
/// finds it there and never asks the store for a block the writer has not been given.
struct Handoff {
    writer: mpsc::Sender<ToWriter>,
    blocks: Vec<Block>,
    bytes: usize,
}

impl Handoff {
    fn new(writer: mpsc::Sender<ToWriter>) -> Self {
        Self {
            writer,
            blocks: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds a block, handing the group over once it is big enough.
    async fn push(&mut self, block: Block) -> Result<(), TransferError> {
        self.bytes += block.data().len();
        self.blocks.push(block);
        if self.bytes >= HANDOFF_BYTES {
            self.flush().await?;
        }
        Ok(())
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

/// Streams opened again for one fetch.
#[derive(Debug, Default)]
struct Resumes {
    total: u32,
    /// Since the walk last moved.
    in_a_row: u32,
}

fn why_aborted() -> String {
    "the stream reader stopped".to_owned()
}

fn writer_gone() -> TransferError {
    TransferError::Store {
        reason: "the store writer stopped".to_owned(),
    }
}

fn walk_error(root: Cid, e: &ExportError) -> TransferError {
    TransferError::BadRequest {
        root: root.to_string(),
        reason: e.to_string(),
    }
}

/// The walk the provider runs, over what arrives.
fn walk(
    source: Arc<dyn BlockSource>,
    request: TransferRequest,
) -> BoxStream<'static, Result<Block, ExportError>> {
    futures::stream::once(async move {
        match resolve(&*source, request.root, &request.path).await {
            Ok(resolved) => walk_blocks(
                source,
                &resolved,
                WalkOptions {
                    scope: request.scope,
                    entity_bytes: request.entity_bytes,
                    window: DEFAULT_WINDOW,
                },
            )
            .boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    })
    .flatten()
    .boxed()
}

/// Starts reading a stream for `request` into `arrivals`.
fn start(
    transfer: &Transfer,
    peer: PeerId,
    request: TransferRequest,
    arrivals: &Arc<Arrivals>,
) -> Receiving {
    arrivals.set_receiving(true);
    let control = transfer.control.clone();
    let arrivals = Arc::clone(arrivals);
    let stall = transfer.config.stall_timeout;
    AbortOnDropHandle::new(tokio::spawn(async move {
        receive(control, peer, request, &arrivals, stall).await
    }))
}

async fn receive(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    request: TransferRequest,
    arrivals: &Arc<Arrivals>,
    stall: std::time::Duration,
) -> End {
    let mut stream = match tokio::time::timeout(stall, control.open_stream(peer, PROTOCOL)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return End::Open(e.to_string()),
        Err(_) => return End::Open(format!("no stream within {stall:?}")),
    };
    let sent = tokio::time::timeout(stall, async {
        stream.write_all(&request.encode()).await?;
        stream.close().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return End::Broken("sending the request failed".to_owned());
    }
    let response = match tokio::time::timeout(stall, read_frame(&mut stream, MAX_RESPONSE_SIZE))
        .await
    {
        Ok(Ok(body)) => match TransferResponse::decode(&body) {
            Ok(r) => r,
            Err(e) => return End::Violation(e.to_string()),
        },
        Ok(Err(e @ (FrameError::Ended | FrameError::Io(_)))) => return End::Broken(e.to_string()),
        Ok(Err(e @ FrameError::Length(_))) => {
            return End::Violation(format!("bad response header: {e}"));
        }
        Err(_) => return End::Broken(format!("no response within {stall:?}")),
    };
    if response.status != TransferStatus::Ok {
        return End::Refused(response.status, response.message);
    }
    let mut car = match CarReader::new(stream.compat()).await {
        Ok(car) => car,
        Err(e) => return car_end(e),
    };
    if car.roots() != [request.root] {
        return End::Violation(format!(
            "the CAR's roots {:?} are not the requested {}",
            car.roots(),
            request.root
        ));
    }
    loop {
        match car.next_frame().await {
            Ok(Some((cid, data))) => {
                let Some(permit) = arrivals.reserve(data.len()).await else {
                    return End::Broken("the fetch ended".to_owned());
                };
                arrivals.arrived(cid);
                let shared = Arc::clone(arrivals);
                // Hashing is the receiver's main cost: spread it over rayon's threads.
                rayon::spawn(move || {
                    let block = Block::new(cid, data);
                    shared.verified(cid, block, permit);
                });
                if let Some(reason) = arrivals.failure() {
                    return End::Violation(reason);
                }
            }
            Ok(None) => return End::Eof,
            Err(e) => return car_end(e),
        }
    }
}

fn car_end(e: CarError) -> End {
    match e {
        CarError::Io { .. } | CarError::Truncated { .. } => End::Broken(e.to_string()),
        other => End::Violation(other.to_string()),
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

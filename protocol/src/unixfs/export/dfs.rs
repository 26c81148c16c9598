//! Depth-first, pre-order, link-order traversal with a bounded prefetch window.
//!
//! Every export (file reads, listings of sharded directories, CAR and `get` walks) is this walk
//! with a different [`Visitor`]. Blocks are visited strictly in DFS order, but the next
//! `window` children of the deepest node are fetched concurrently, so a slow source (the network,
//! in step 2) is pipelined. Ancestors keep at most one prefetched child each (the next sibling,
//! which hides the hop back up), so at most `window + depth` blocks are held at any time.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::future::BoxFuture;

use super::source::fetch;
use super::{BlockSource, ExportError, SourceError};
use crate::limits::MAX_DAG_DEPTH;
use crate::{Block, Cid};

/// Prefetched children kept by each ancestor of the deepest node.
const PARENT_LOOKAHEAD: usize = 1;

/// What a walk does with each block, in DFS order.
pub(crate) trait Visitor: Send + Unpin + 'static {
    /// What the walk carries from a parent to each child (an offset, a path, a role).
    type Ctx: Send + Unpin + 'static;
    /// What the walk yields.
    type Out;
    /// Handles `block`: what to yield for it, and which children to visit after it, in order.
    fn visit(
        &mut self,
        block: Block,
        ctx: Self::Ctx,
    ) -> Result<Visit<Self::Ctx, Self::Out>, ExportError>;
}

/// The result of visiting one block.
pub(crate) struct Visit<C, O> {
    /// Children to visit next, before any later sibling of the block.
    pub(crate) children: Vec<(Cid, C)>,
    /// What to yield now, if anything.
    pub(crate) out: Option<O>,
}

type Fetch = BoxFuture<'static, Result<Block, SourceError>>;

enum Slot<C> {
    Waiting(Cid, C),
    Fetching(Cid, C, Fetch),
    Ready(Cid, C, Result<Block, SourceError>),
    /// Only while a slot is being rewritten.
    Moved,
}

/// The children of one node still to visit; the first `started` are fetching or fetched.
struct Frame<C> {
    slots: VecDeque<Slot<C>>,
    started: usize,
}

impl<C> Frame<C> {
    fn new(children: Vec<(Cid, C)>) -> Self {
        Self {
            slots: children
                .into_iter()
                .map(|(cid, ctx)| Slot::Waiting(cid, ctx))
                .collect(),
            started: 0,
        }
    }

    fn start(&mut self, limit: usize, source: &Arc<dyn BlockSource>) {
        while self.started < limit.min(self.slots.len()) {
            let slot = &mut self.slots[self.started];
            if let Slot::Waiting(cid, ctx) = std::mem::replace(slot, Slot::Moved) {
                let source = Arc::clone(source);
                let fut: Fetch = Box::pin(async move { fetch(&*source, cid).await });
                *slot = Slot::Fetching(cid, ctx, fut);
            }
            self.started += 1;
        }
    }

    fn drive(&mut self, cx: &mut Context<'_>) {
        for slot in self.slots.iter_mut().take(self.started) {
            if let Slot::Fetching(_, _, fut) = slot
                && let Poll::Ready(res) = fut.as_mut().poll(cx)
                && let Slot::Fetching(cid, ctx, _) = std::mem::replace(slot, Slot::Moved)
            {
                *slot = Slot::Ready(cid, ctx, res);
            }
        }
    }

    /// Gives back all but the first `keep` started slots (their fetches are dropped).
    fn truncate(&mut self, keep: usize) {
        for slot in self.slots.iter_mut().take(self.started).skip(keep) {
            match std::mem::replace(slot, Slot::Moved) {
                Slot::Fetching(cid, ctx, _) | Slot::Ready(cid, ctx, _) => {
                    *slot = Slot::Waiting(cid, ctx);
                }
                other => *slot = other,
            }
        }
        self.started = self.started.min(keep);
    }
}

/// A walk: a stream of the visitor's outputs in DFS order. It ends at the first error.
pub(crate) struct Dfs<V: Visitor> {
    source: Arc<dyn BlockSource>,
    visitor: V,
    window: usize,
    stack: Vec<Frame<V::Ctx>>,
    finished: bool,
}

impl<V: Visitor> std::fmt::Debug for Dfs<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dfs")
            .field("window", &self.window)
            .field("depth", &self.stack.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<V: Visitor> Dfs<V> {
    /// A walk over `roots` (visited in order), fetching up to `window` blocks ahead.
    pub(crate) fn new(
        source: Arc<dyn BlockSource>,
        visitor: V,
        window: usize,
        roots: Vec<(Cid, V::Ctx)>,
    ) -> Self {
        Self {
            source,
            visitor,
            window: window.max(1),
            stack: vec![Frame::new(roots)],
            finished: false,
        }
    }

    /// A walk starting from a block already in hand.
    pub(crate) fn from_block(
        source: Arc<dyn BlockSource>,
        visitor: V,
        window: usize,
        root: Block,
        ctx: V::Ctx,
    ) -> Self {
        let cid = *root.cid();
        let frame = Frame {
            slots: VecDeque::from([Slot::Ready(cid, ctx, Ok(root))]),
            started: 1,
        };
        Self {
            source,
            visitor,
            window: window.max(1),
            stack: vec![frame],
            finished: false,
        }
    }

    fn fail(&mut self, e: ExportError) -> Poll<Option<Result<V::Out, ExportError>>> {
        self.finished = true;
        self.stack.clear();
        Poll::Ready(Some(Err(e)))
    }
}

impl<V: Visitor> Stream for Dfs<V> {
    type Item = Result<V::Out, ExportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let depth = this.stack.len();
            for (i, frame) in this.stack.iter_mut().enumerate() {
                let limit = if i + 1 == depth {
                    this.window
                } else {
                    PARENT_LOOKAHEAD
                };
                frame.start(limit, &this.source);
                frame.drive(cx);
            }
            let Some(top) = this.stack.last_mut() else {
                this.finished = true;
                return Poll::Ready(None);
            };
            match top.slots.front() {
                None => {
                    this.stack.pop();
                    continue;
                }
                Some(Slot::Ready(..)) => {}
                Some(_) => return Poll::Pending,
            }
            let Some(Slot::Ready(_, ctx, res)) = top.slots.pop_front() else {
                continue;
            };
            top.started -= 1;
            let block = match res {
                Ok(b) => b,
                Err(e) => return this.fail(e.into()),
            };
            let cid = *block.cid();
            let visit = match this.visitor.visit(block, ctx) {
                Ok(v) => v,
                Err(e) => return this.fail(e),
            };
            if !visit.children.is_empty() {
                if depth >= MAX_DAG_DEPTH {
                    return this.fail(ExportError::malformed(
                        &cid,
                        format!("DAG deeper than {MAX_DAG_DEPTH} levels"),
                    ));
                }
                top.truncate(PARENT_LOOKAHEAD);
                this.stack.push(Frame::new(visit.children));
            }
            if let Some(out) = visit.out {
                return Poll::Ready(Some(Ok(out)));
            }
        }
    }
}

/// A walk whose visitor yields batches, as a stream of their items.
pub(crate) struct Flat<V: Visitor<Out = Vec<T>>, T> {
    walk: Dfs<V>,
    pending: VecDeque<T>,
}

impl<V: Visitor<Out = Vec<T>>, T> Flat<V, T> {
    pub(crate) fn new(walk: Dfs<V>) -> Self {
        Self {
            walk,
            pending: VecDeque::new(),
        }
    }
}

impl<V: Visitor<Out = Vec<T>>, T> std::fmt::Debug for Flat<V, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flat")
            .field("walk", &self.walk)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<V: Visitor<Out = Vec<T>>, T: Unpin> Stream for Flat<V, T> {
    type Item = Result<T, ExportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            match Pin::new(&mut self.walk).poll_next(cx) {
                Poll::Ready(Some(Ok(batch))) => self.pending.extend(batch),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

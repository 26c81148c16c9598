//! The store as a [`BlockSource`]: what exports read from when no network is involved.

use futures::future::BoxFuture;
use stargate_protocol::unixfs::export::{BlockSource, SourceError};
use stargate_protocol::{Block, Cid};
use tokio::sync::{mpsc, oneshot};

use crate::{Store, StoreError};

/// Reads a [`StoreReader`] has been asked for and not yet started.
const READ_QUEUE: usize = 16;

impl BlockSource for Store {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        // A cached block needs no blocking thread: answering on the executor saves a hand-off
        // per block, most of a hot file's cost.
        if let Some(block) = self.cached(&cid) {
            return Box::pin(std::future::ready(Ok(block)));
        }
        let store = self.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || store.get(&cid)).await {
                Ok(read) => answer(cid, read),
                Err(e) => Err(unavailable(cid, format!("store task failed: {e}"))),
            }
        })
    }
}

type Read = (Cid, oneshot::Sender<Result<Option<Block>, StoreError>>);

/// The store as a [`BlockSource`] for one long walk (a transfer served to a peer): reads run
/// in the order asked on one blocking thread of its own, which stays busy while the walk keeps
/// asking, instead of a blocking task per block that wakes an idle thread every time.
#[derive(Debug)]
pub struct StoreReader {
    store: Store,
    reads: mpsc::Sender<Read>,
}

impl Store {
    /// A [`StoreReader`]; its thread (from the current runtime's blocking pool) ends when the
    /// reader is dropped.
    #[must_use]
    pub fn reader(&self) -> StoreReader {
        let (reads, mut queue) = mpsc::channel::<Read>(READ_QUEUE);
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            while let Some((cid, reply)) = queue.blocking_recv() {
                // The walk may have stopped wanting it.
                if !reply.is_closed() {
                    let _ = reply.send(store.get(&cid));
                }
            }
        });
        StoreReader {
            store: self.clone(),
            reads,
        }
    }
}

impl BlockSource for StoreReader {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        if let Some(block) = self.store.cached(&cid) {
            return Box::pin(std::future::ready(Ok(block)));
        }
        Box::pin(async move {
            let gone = || unavailable(cid, "the store reader stopped".to_owned());
            let (reply, read) = oneshot::channel();
            self.reads.send((cid, reply)).await.map_err(|_| gone())?;
            answer(cid, read.await.map_err(|_| gone())?)
        })
    }
}

fn answer(cid: Cid, read: Result<Option<Block>, StoreError>) -> Result<Block, SourceError> {
    match read {
        Ok(Some(block)) => Ok(block),
        Ok(None) => Err(SourceError::NotFound {
            cid: cid.to_string(),
        }),
        Err(e @ StoreError::CorruptBlock { .. }) => Err(SourceError::Invalid {
            cid: cid.to_string(),
            reason: e.to_string(),
        }),
        Err(e) => Err(unavailable(cid, e.to_string())),
    }
}

fn unavailable(cid: Cid, reason: String) -> SourceError {
    SourceError::Unavailable {
        cid: cid.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stargate_protocol::{Codec, HashCode, Version};

    /// Both sources answer alike: the block, not found, invalid for damaged bytes; a block
    /// read once comes from the cache.
    async fn check(make: fn(&Store) -> Box<dyn BlockSource>) {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::StoreOptions {
            hash_on_read: true,
            ..crate::StoreOptions::default()
        };
        let store = Store::open(dir.path(), options).unwrap();
        let source = make(&store);
        let block = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"x"[..]).unwrap();
        assert!(matches!(
            source.get(*block.cid()).await,
            Err(SourceError::NotFound { .. })
        ));
        store.put(block.clone()).unwrap();
        assert_eq!(source.get(*block.cid()).await.unwrap(), block);
        // The second read is answered from the cache.
        assert_eq!(source.get(*block.cid()).await.unwrap(), block);
        let m = store.metrics();
        assert_eq!((m.cache_hits, m.blocks_read), (1, 2));

        let damaged =
            Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"y"[..]).unwrap();
        store.put(damaged.clone()).unwrap();
        crate::blocks::tests::flip_a_byte(&store, damaged.cid());
        assert!(matches!(
            source.get(*damaged.cid()).await,
            Err(SourceError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn the_store_serves_stored_blocks_and_reports_missing_and_damaged_ones() {
        check(|store| Box::new(store.clone())).await;
    }

    #[tokio::test]
    async fn a_store_reader_answers_as_the_store_does() {
        check(|store| Box::new(store.reader())).await;
    }

    #[tokio::test]
    async fn a_store_reader_answers_reads_asked_at_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::StoreOptions::default()).unwrap();
        let blocks: Vec<Block> = (0..40u8)
            .map(|i| {
                Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![i; 100]).unwrap()
            })
            .collect();
        store.put_many(blocks.clone()).unwrap();
        let reader = store.reader();
        // More at once than the queue holds, as a walk with a wide window asks.
        let got = futures::future::join_all(blocks.iter().map(|b| reader.get(*b.cid()))).await;
        let got: Vec<Block> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, blocks);
    }
}

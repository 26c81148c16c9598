//! The store as a [`BlockSource`]: what exports read from when no network is involved.

use futures::future::BoxFuture;
use stargate_protocol::unixfs::export::{BlockSource, SourceError};
use stargate_protocol::{Block, Cid};

use crate::{Store, StoreError};

impl BlockSource for Store {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        // A cached block needs no blocking thread: answering on the executor saves a hand-off
        // per block, most of a hot file's cost.
        if let Some(block) = self.cached(&cid) {
            return Box::pin(std::future::ready(Ok(block)));
        }
        let store = self.clone();
        Box::pin(async move {
            let unavailable = |reason: String| SourceError::Unavailable {
                cid: cid.to_string(),
                reason,
            };
            match tokio::task::spawn_blocking(move || store.get(&cid)).await {
                Ok(Ok(Some(block))) => Ok(block),
                Ok(Ok(None)) => Err(SourceError::NotFound {
                    cid: cid.to_string(),
                }),
                Ok(Err(e @ StoreError::CorruptBlock { .. })) => Err(SourceError::Invalid {
                    cid: cid.to_string(),
                    reason: e.to_string(),
                }),
                Ok(Err(e)) => Err(unavailable(e.to_string())),
                Err(e) => Err(unavailable(format!("store task failed: {e}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stargate_protocol::{Codec, HashCode, Version};

    #[tokio::test]
    async fn serves_stored_blocks_and_reports_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), crate::StoreOptions::default()).unwrap();
        let block = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, &b"x"[..]).unwrap();
        assert!(matches!(
            BlockSource::get(&store, *block.cid()).await,
            Err(SourceError::NotFound { .. })
        ));
        store.put(block.clone()).unwrap();
        assert_eq!(BlockSource::get(&store, *block.cid()).await.unwrap(), block);
        // The second read is answered from the cache.
        assert_eq!(BlockSource::get(&store, *block.cid()).await.unwrap(), block);
        let m = store.metrics();
        assert_eq!((m.cache_hits, m.blocks_read), (1, 2));
    }
}

//! Chunk buffers reused from batch to batch.
//!
//! Allocating a fresh buffer per chunk made the kernel map, zero and unmap pages for every chunk:
//! about a fifth of an add's CPU time under perf. A block's bytes keep their buffer until the
//! last reference to the block is dropped (by the sink, or whoever it hands blocks on to); the
//! buffer then returns here instead of to the allocator.
//!
//! Buffers are kept full-length (initialised once, when allocated), so that a chunk can be read
//! into one by position without zeroing it again each time.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Free buffers of one capacity, at most `max_free` of them kept.
#[derive(Debug)]
pub(super) struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    capacity: usize,
    max_free: usize,
}

impl BufferPool {
    pub(super) fn new(capacity: usize, max_free: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            capacity,
            max_free,
        })
    }

    /// A buffer of the pool's capacity whose length is its capacity, holding whatever it held
    /// before (zeros when new).
    pub(super) fn take(&self) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut free| free.pop());
        reused.unwrap_or_else(|| vec![0; self.capacity])
    }

    /// Gives a buffer back (dropped if the pool is full or it is not one of ours).
    pub(super) fn put(&self, mut buf: Vec<u8>) {
        if buf.capacity() != self.capacity {
            return;
        }
        if let Ok(mut free) = self.free.lock()
            && free.len() < self.max_free
        {
            // Only the bytes past the old length are written.
            buf.resize(self.capacity, 0);
            free.push(buf);
        }
    }

    /// `buf` as shared bytes that return it to the pool when the last reference is dropped.
    pub(super) fn share(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: Arc::clone(self),
        })
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_reference_goes() {
        let pool = BufferPool::new(16, 1);
        let mut buf = pool.take();
        assert_eq!(buf.len(), 16);
        buf.truncate(0);
        buf.extend_from_slice(b"hello");
        let ptr = buf.as_ptr();
        let bytes = pool.share(buf);
        let slice = bytes.slice(1..);
        drop(bytes);
        assert_eq!(&slice[..], b"ello");
        drop(slice);
        let again = pool.take();
        assert_eq!(&again[..5], b"hello");
        assert_eq!(
            (again.as_ptr(), again.len(), again.capacity()),
            (ptr, 16, 16)
        );
    }

    #[test]
    fn keeps_at_most_max_free() {
        let pool = BufferPool::new(8, 1);
        let (a, b) = (pool.take(), pool.take());
        pool.put(a);
        pool.put(b);
        pool.put(Vec::with_capacity(3));
        assert_eq!(pool.free.lock().map(|f| f.len()).unwrap_or(0), 1);
    }
}

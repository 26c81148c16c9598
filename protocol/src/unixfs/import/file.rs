//! Importing one file: fixed-size chunks, leaves hashed on every core, a balanced DAG.
//!
//! Hashing is the whole cost of an add, so leaves are hashed in parallel on rayon's pool while the
//! calling thread plans the next batch and hands the previous one to the sink: three batches at
//! most, so memory stays bounded by `3 × BATCH_BYTES` whatever the file size, and the output
//! order is the input order.
//! Each chunk is read straight into the buffer that becomes its block, with room left in front
//! for the leaf's dag-pb/UnixFS header, so no chunk byte is copied after the read.
//!
//! Input is either a stream ([`import_file`]: the calling thread reads each batch in order) or a
//! file read by position ([`import_file_at`]: chunks are fixed-size, so chunk i is the bytes at
//! `i × chunk size`, and each pool thread reads the chunks it hashes; reading then runs on every
//! core too). Both feed the same loop, encoder and tree.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use rayon::prelude::*;

use super::balanced::{Balanced, Child};
use super::error::{ImportError, put};
use super::node::write_node;
use super::options::ImportOptions;
use super::pool::BufferPool;
use super::sink::BlockSink;
use crate::unixfs::{DataType, UnixFsData};
use crate::{Block, BlockError, Cid, Codec, HashCode, Version};

/// Input bytes per batch of chunks.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Most chunks per batch, so that tiny chunk sizes do not mean millions of buffers in flight.
const MAX_BATCH_CHUNKS: usize = 1024;

/// Room in front of a chunk for `0a len(node) 08 02 12 len(chunk)`: three bytes of tags and
/// field numbers plus two varints of at most 3 bytes each (chunks are at most 1 MiB + a few bytes).
const HEAD_ROOM: usize = 10;
/// Room after a chunk for `18 len(chunk)` (UnixFS filesize).
const TAIL_ROOM: usize = 4;

/// A file (or symlink) as its directory links to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportedFile {
    /// The root of its DAG.
    pub cid: Cid,
    /// Its content size in bytes (the target's length for a symlink).
    pub size: u64,
    /// The encoded size of its whole DAG, as dag-pb links record it.
    pub tsize: u64,
}

/// Something whose bytes can be read at any offset, from several threads at once: a file.
pub trait ReadAt: Sync {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the input (or on a
    /// short read, which the importer retries), 0 at or past the end.
    ///
    /// # Errors
    /// What the underlying read reports.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// Imports the bytes of `reader` as one UnixFS file, as `ipfs add` does with the same options.
///
/// Every block goes to `sink`, children before parents; `progress` is called with the number of
/// input bytes processed so far after each batch.
///
/// # Errors
/// [`ImportError::Read`] when the reader fails, [`ImportError::Sink`] when the sink refuses a
/// block.
pub fn import_file<R, S, P>(
    reader: R,
    opts: &ImportOptions,
    sink: &mut S,
    progress: P,
) -> Result<ImportedFile, ImportError>
where
    R: Read,
    S: BlockSink + ?Sized,
    P: FnMut(u64),
{
    import(Feed::Reader(reader), None::<&[u8]>, opts, sink, progress)
}

/// Imports the first `len` bytes of `file` as [`import_file`] does, reading chunks by position
/// on the hashing threads, so that reads run on every core alongside the hashing. Same CIDs and
/// blocks as [`import_file`] over the same bytes.
///
/// `len` is the file's size when the add began; bytes appended later are not imported.
///
/// # Errors
/// [`ImportError::Read`] when a read fails or the file ends before `len` bytes (it shrank during
/// the import), [`ImportError::Sink`] when the sink refuses a block.
pub fn import_file_at<F, S, P>(
    file: &F,
    len: u64,
    opts: &ImportOptions,
    sink: &mut S,
    progress: P,
) -> Result<ImportedFile, ImportError>
where
    F: ReadAt + ?Sized,
    S: BlockSink + ?Sized,
    P: FnMut(u64),
{
    let feed = Feed::<std::io::Empty>::At { end: len };
    import(feed, Some(file), opts, sink, progress)
}

/// The one import loop behind [`import_file`] and [`import_file_at`].
fn import<R, F, S, P>(
    feed: Feed<R>,
    file: Option<&F>,
    opts: &ImportOptions,
    sink: &mut S,
    mut progress: P,
) -> Result<ImportedFile, ImportError>
where
    R: Read,
    F: ReadAt + ?Sized,
    S: BlockSink + ?Sized,
    P: FnMut(u64),
{
    let per_batch = (BATCH_BYTES / opts.chunk_size()).clamp(1, MAX_BATCH_CHUNKS);
    // One batch being read, one hashed, one with the sink.
    let leaves = LeafEncoder::new(opts, 3 * per_batch);
    let mut input = Input {
        feed,
        chunk_size: opts.chunk_size(),
        room: leaves.room(),
        pool: Arc::clone(&leaves.pool),
        offset: 0,
        eof: false,
    };
    let mut tree = Balanced::new(opts.cid_version());
    let mut fed = 0u64;

    let mut read = input.read_batch(per_batch)?;
    let mut hashed: Vec<(Block, Child)> = Vec::new();
    while !read.is_empty() || !hashed.is_empty() {
        let to_hash = std::mem::take(&mut read);
        let to_feed = std::mem::take(&mut hashed);
        let mut encoded = None;
        // The pool hashes this batch while the calling thread hands the previous one to the sink
        // and reads the next: slow sinks and readers never hold up a hashing thread, and neither
        // needs to be `Send`.
        let next = rayon::in_place_scope(|scope| {
            scope.spawn(|_| encoded = Some(leaves.encode_all(to_hash, file)));
            for (block, child) in to_feed {
                fed += child.filesize;
                put(sink, block)?;
                tree.push_leaf(child, sink)?;
            }
            progress(fed);
            input.read_batch(per_batch)
        });
        read = next?;
        // The scope has joined the spawned job, so `encoded` is set.
        hashed = encoded.transpose()?.unwrap_or_default();
    }

    let root = match tree.finish(sink)? {
        Some(root) => root,
        None => leaves.empty_file(sink)?,
    };
    Ok(ImportedFile {
        cid: root.cid,
        size: root.filesize,
        tsize: root.tsize,
    })
}

/// Where chunks come from.
enum Feed<R> {
    /// A stream, read in order by the calling thread.
    Reader(R),
    /// A file of `end` bytes, read by position on the hashing threads.
    At { end: u64 },
}

/// A chunk's buffer, with the leaf encoder's room in front, and the bytes it still needs.
struct Pending {
    buf: Vec<u8>,
    /// `(offset, len)` to read from the file, or `None` when the buffer holds the chunk already.
    read_at: Option<(u64, usize)>,
}

/// Cuts the input into chunks, each in a buffer with the leaf encoder's room around it.
struct Input<R> {
    feed: Feed<R>,
    chunk_size: usize,
    room: (usize, usize),
    pool: Arc<BufferPool>,
    offset: u64,
    eof: bool,
}

impl<R: Read> Input<R> {
    /// Takes up to `max` chunks (read, or placed for reading by position); fewer (or none) at
    /// the end of the input. Every chunk but the file's last is full, as Kubo's size splitter
    /// makes them.
    fn read_batch(&mut self, max: usize) -> Result<Vec<Pending>, ImportError> {
        let (head, tail) = self.room;
        let mut chunks = Vec::new();
        while !self.eof && chunks.len() < max {
            let mut buf = self.pool.take();
            debug_assert!(buf.capacity() >= head + self.chunk_size + tail);
            let reader = match &mut self.feed {
                Feed::Reader(reader) => {
                    buf.truncate(head);
                    reader
                }
                Feed::At { end } => {
                    let left = *end - self.offset;
                    // Below `chunk_size`, which is a `usize`.
                    let len = left.min(self.chunk_size as u64) as usize;
                    if len == 0 {
                        self.eof = true;
                        self.pool.put(buf);
                        break;
                    }
                    chunks.push(Pending {
                        buf,
                        read_at: Some((self.offset, len)),
                    });
                    self.offset += len as u64;
                    continue;
                }
            };
            // `read_to_end` fills the spare capacity without zeroing it first and retries short
            // reads, so a chunk is full unless the input ended.
            let n = reader
                .take(self.chunk_size as u64)
                .read_to_end(&mut buf)
                .map_err(|source| ImportError::Read {
                    offset: self.offset,
                    source,
                })?;
            self.offset += n as u64;
            if n < self.chunk_size {
                self.eof = true;
            }
            if n > 0 {
                chunks.push(Pending { buf, read_at: None });
            } else {
                self.pool.put(buf);
            }
        }
        Ok(chunks)
    }
}

/// Turns chunks into leaf blocks: raw blocks, or dag-pb nodes holding a UnixFS File.
#[derive(Debug)]
struct LeafEncoder {
    raw: bool,
    version: Version,
    pool: Arc<BufferPool>,
}

impl LeafEncoder {
    /// An encoder whose pool keeps up to `buffers` chunk buffers for reuse.
    fn new(opts: &ImportOptions, buffers: usize) -> Self {
        let raw = opts.raw_leaves();
        let (head, tail) = Self::room_for(raw);
        Self {
            raw,
            version: opts.cid_version(),
            pool: BufferPool::new(head + opts.chunk_size() + tail, buffers),
        }
    }

    /// Bytes to leave before and after each chunk.
    fn room(&self) -> (usize, usize) {
        Self::room_for(self.raw)
    }

    fn room_for(raw: bool) -> (usize, usize) {
        if raw { (0, 0) } else { (HEAD_ROOM, TAIL_ROOM) }
    }

    fn encode_all<F: ReadAt + ?Sized>(
        &self,
        chunks: Vec<Pending>,
        file: Option<&F>,
    ) -> Result<Vec<(Block, Child)>, ImportError> {
        chunks
            .into_par_iter()
            .map(|chunk| {
                let buf = match (chunk.read_at, file) {
                    (Some((offset, len)), Some(file)) => {
                        fill(file, chunk.buf, self.room().0, offset, len)?
                    }
                    _ => chunk.buf,
                };
                self.encode(buf).map_err(ImportError::from)
            })
            .collect()
    }

    /// Encodes one chunk, laid out as [`Input::read_batch`] leaves it.
    fn encode(&self, mut buf: Vec<u8>) -> Result<(Block, Child), BlockError> {
        let (head, _) = self.room();
        let len = buf.len() - head;
        let start = if self.raw {
            0
        } else {
            let (prefix, suffix) = leaf_framing(len);
            let start = head - prefix.len();
            buf[start..head].copy_from_slice(&prefix);
            buf.extend_from_slice(&suffix);
            start
        };
        // The file's last chunk may be far smaller than its buffer; a sink that batches blocks
        // should not hold the slack.
        let bytes = if buf.capacity() > 2 * buf.len() {
            let small = Bytes::copy_from_slice(&buf[start..]);
            self.pool.put(buf);
            small
        } else {
            self.pool.share(buf).slice(start..)
        };
        let block = if self.raw {
            // Kubo makes raw leaves CIDv1 even when the file's nodes are CIDv0.
            Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, bytes)?
        } else {
            Block::encode(self.version, Codec::DagPb, HashCode::Sha2_256, bytes)?
        };
        let child = Child {
            cid: *block.cid(),
            tsize: block.data().len() as u64,
            filesize: len as u64,
        };
        Ok((block, child))
    }

    /// The single block of an empty file, given to `sink`.
    fn empty_file<S: BlockSink + ?Sized>(&self, sink: &mut S) -> Result<Child, ImportError> {
        let (cid, tsize) = if self.raw {
            let block = Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, Bytes::new())?;
            let written = (*block.cid(), 0);
            put(sink, block)?;
            written
        } else {
            let mut data = UnixFsData::new(DataType::File);
            data.filesize = Some(0);
            write_node(Vec::new(), &data, self.version, sink)?
        };
        Ok(Child {
            cid,
            tsize,
            filesize: 0,
        })
    }
}

/// Reads the `len` bytes of `file` at `offset` into `buf` after its first `head` bytes (the
/// pool's buffers are full-length, so nothing is zeroed first); a file that ends before them has
/// shrunk since its size was taken.
fn fill<F: ReadAt + ?Sized>(
    file: &F,
    mut buf: Vec<u8>,
    head: usize,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, ImportError> {
    if buf.len() < head + len {
        buf.resize(head + len, 0);
    }
    let mut done = 0;
    while done < len {
        let at = offset + done as u64;
        match file.read_at(&mut buf[head + done..head + len], at) {
            Ok(0) => {
                return Err(ImportError::Read {
                    offset: at,
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was being added",
                    ),
                });
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ImportError::Read { offset: at, source }),
        }
    }
    buf.truncate(head + len);
    Ok(buf)
}

/// The bytes around a chunk of `len > 0` bytes that make it a dag-pb node whose only field is
/// `Data = UnixFS { Type: File, Data: chunk, filesize: len }`, exactly as [`PbNode::encode`] and
/// [`UnixFsData::encode`] write it (a unit test holds them equal).
fn leaf_framing(len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut vbuf = unsigned_varint::encode::usize_buffer();
    let len_varint = unsigned_varint::encode::usize(len, &mut vbuf).to_vec();
    let mut suffix = Vec::with_capacity(TAIL_ROOM);
    suffix.push(0x18);
    suffix.extend_from_slice(&len_varint);
    // UnixFS message: 08 02 | 12 varint(len) chunk | 18 varint(len)
    let unixfs_len = 2 + 1 + len_varint.len() + len + suffix.len();
    let mut prefix = Vec::with_capacity(HEAD_ROOM);
    prefix.push(0x0a);
    prefix.extend_from_slice(unsigned_varint::encode::usize(unixfs_len, &mut vbuf));
    prefix.extend_from_slice(&[0x08, 0x02, 0x12]);
    prefix.extend_from_slice(&len_varint);
    (prefix, suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PbNode;
    use crate::limits::MAX_CHUNK_SIZE;
    use crate::unixfs::DiscardBlocks;

    #[test]
    fn leaf_framing_equals_the_generic_encoders() {
        for len in [1, 2, 127, 128, 16_383, 16_384, 262_144, MAX_CHUNK_SIZE] {
            let chunk: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut data = UnixFsData::new(DataType::File);
            data.data = Some(Bytes::from(chunk.clone()));
            data.filesize = Some(len as u64);
            let expected = PbNode {
                links: Vec::new(),
                data: Some(Bytes::from(data.encode())),
            }
            .encode();
            let (prefix, suffix) = leaf_framing(len);
            assert!(prefix.len() <= HEAD_ROOM && suffix.len() <= TAIL_ROOM);
            assert_eq!([prefix, chunk, suffix].concat(), expected, "len {len}");
        }
    }

    fn import(input: &[u8], opts: &ImportOptions) -> (ImportedFile, Vec<Block>) {
        let mut blocks = Vec::new();
        let file = import_file(input, opts, &mut blocks, |_| {}).unwrap();
        (file, blocks)
    }

    #[test]
    fn empty_files_are_kubos() {
        let (f, blocks) = import(b"", &ImportOptions::default());
        assert_eq!(
            f.cid.to_string(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        );
        assert_eq!((f.size, f.tsize, blocks.len()), (0, 6, 1));
        let v1 = ImportOptions::default().with_cid_version(Version::V1);
        let (f, _) = import(b"", &v1);
        assert_eq!(
            f.cid.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn small_file_is_a_single_leaf() {
        // `echo hello | ipfs add` in Kubo.
        let (f, blocks) = import(b"hello\n", &ImportOptions::default());
        assert_eq!(
            f.cid.to_string(),
            "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
        );
        assert_eq!(blocks.len(), 1);
        assert_eq!((f.size, f.tsize), (6, 14));
    }

    #[test]
    fn chunks_are_full_but_the_last() {
        let opts = ImportOptions::default().with_chunker("size-10").unwrap();
        let input = vec![7u8; 25];
        let (f, blocks) = import(&input, &opts);
        assert_eq!(blocks.len(), 4);
        let root = PbNode::decode(blocks[3].data()).unwrap();
        let data = UnixFsData::from_node_data(root.data.as_ref()).unwrap();
        assert_eq!(data.blocksizes, [10, 10, 5]);
        assert_eq!(f.size, 25);
    }

    /// A reader that returns at most 3 bytes per call, like a slow pipe.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn short_reads_do_not_change_chunking() {
        let input: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let opts = ImportOptions::default().with_chunker("size-4096").unwrap();
        let (whole, _) = import(&input, &opts);
        let trickled =
            import_file(Trickle(&input), &opts, &mut DiscardBlocksCount(0), |_| {}).unwrap();
        assert_eq!(whole, trickled);
    }

    struct DiscardBlocksCount(usize);

    impl BlockSink for DiscardBlocksCount {
        type Error = std::convert::Infallible;
        fn put(&mut self, _: Block) -> Result<(), Self::Error> {
            self.0 += 1;
            Ok(())
        }
    }

    #[test]
    fn read_and_sink_errors_are_reported() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let err = import_file(Failing, &ImportOptions::default(), &mut Vec::new(), |_| {});
        assert!(matches!(err, Err(ImportError::Read { offset: 0, .. })));

        #[derive(Debug, thiserror::Error)]
        #[error("store closed")]
        struct Closed;
        struct Refusing;
        impl BlockSink for Refusing {
            type Error = Closed;
            fn put(&mut self, _: Block) -> Result<(), Closed> {
                Err(Closed)
            }
        }
        let err = import_file(
            &b"abc"[..],
            &ImportOptions::default(),
            &mut Refusing,
            |_| {},
        );
        assert!(matches!(err, Err(ImportError::Sink { .. })), "{err:?}");
    }

    #[test]
    fn reading_by_position_gives_the_same_blocks() {
        let input: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(7919) >> 5) as u8)
            .collect();
        let chunkers = ["default", "size-1", "size-4096", "size-1000000"];
        for (chunker, len) in chunkers
            .iter()
            .flat_map(|c| [0, 1, 4095, 4096, 4097, 262_144, 262_145, 3_000_000].map(|n| (*c, n)))
        {
            if chunker == "size-1" && len > 5000 {
                continue;
            }
            for opts in [
                ImportOptions::default(),
                ImportOptions::default().with_cid_version(Version::V1),
            ] {
                let opts = opts.with_chunker(chunker).unwrap();
                let (streamed, streamed_blocks) = import(&input[..len], &opts);
                let mut blocks = Vec::new();
                let file = &input[..len];
                let at = import_file_at(file, len as u64, &opts, &mut blocks, |_| {}).unwrap();
                assert_eq!(at, streamed, "{chunker} {len}");
                assert_eq!(blocks, streamed_blocks, "{chunker} {len}");
            }
        }
    }

    #[test]
    fn a_file_that_shrinks_is_an_error() {
        let input = vec![3u8; 1000];
        let opts = ImportOptions::default().with_chunker("size-300").unwrap();
        let err = import_file_at(&input[..], 1200, &opts, &mut DiscardBlocks, |_| {});
        assert!(
            matches!(err, Err(ImportError::Read { offset: 1000, .. })),
            "{err:?}"
        );
        // Bytes past the size taken at the start are not imported.
        let (first, _) = import(&input[..600], &opts);
        let at = import_file_at(&input[..], 600, &opts, &mut DiscardBlocks, |_| {}).unwrap();
        assert_eq!(at, first);
    }

    #[test]
    fn progress_reaches_the_size() {
        let input = vec![1u8; 3 * BATCH_BYTES + 5];
        let mut seen = Vec::new();
        import_file(
            &input[..],
            &ImportOptions::default(),
            &mut DiscardBlocksCount(0),
            |n| {
                seen.push(n);
            },
        )
        .unwrap();
        assert_eq!(seen.last(), Some(&(input.len() as u64)));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }
}

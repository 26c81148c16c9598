//! Reading a UnixFS file (dag-pb, raw leaves, or a single raw block) as a stream of bytes.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};

use super::dfs::{Dfs, Visit, Visitor};
use super::node::{Decoded, file_size};
use super::{BlockSource, ExportError};
use crate::unixfs::DataType;
use crate::{Block, Cid, Codec};

/// Blocks fetched ahead while reading a file: 16 leaves of Kubo's 256 KiB are 4 MiB in flight.
pub const DEFAULT_WINDOW: usize = 16;

/// How many leading bytes content-type sniffing looks at (the WHATWG algorithm reads 512).
pub const SNIFF_LEN: u64 = 512;

/// Where a part of a file sits: its first byte's offset, and the size its parent declared.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    pub(crate) offset: u64,
    pub(crate) declared: Option<u64>,
}

/// The content of one file block: its own bytes, and its children with their parts.
pub(crate) struct FileNode {
    pub(crate) data: Bytes,
    pub(crate) children: Vec<(Cid, Part)>,
}

/// Decodes a block met inside a file, checks its size against what its parent declared, and
/// keeps only the children overlapping `range` (all children when `range` is `None`).
pub(crate) fn file_node(
    block: &Block,
    part: Part,
    range: Option<&Range<u64>>,
) -> Result<FileNode, ExportError> {
    let (data, size, links) = match Decoded::new(block)? {
        Decoded::Raw(data) => {
            let size = data.len() as u64;
            (data, size, Vec::new())
        }
        Decoded::Pb {
            node,
            unixfs: Some(fs),
        } if matches!(fs.kind, DataType::File | DataType::Raw) => {
            let size = file_size(block, &node, &fs)?;
            let links = node
                .links
                .iter()
                .map(|l| l.cid)
                .zip(fs.blocksizes.iter().copied())
                .collect::<Vec<_>>();
            (fs.data.unwrap_or_default(), size, links)
        }
        _ => {
            return Err(ExportError::malformed(
                block.cid(),
                "expected a UnixFS file node or a raw block inside a file",
            ));
        }
    };
    if let Some(declared) = part.declared
        && declared != size
    {
        return Err(ExportError::malformed(
            block.cid(),
            format!("holds {size} bytes but its parent declares {declared}"),
        ));
    }
    let mut pos = part.offset + data.len() as u64;
    let mut children = Vec::new();
    for (cid, len) in links {
        if !matches!(
            Codec::from_code(cid.codec()),
            Some(Codec::Raw | Codec::DagPb)
        ) {
            return Err(ExportError::malformed(
                block.cid(),
                format!("file links to {cid}, which is neither dag-pb nor raw"),
            ));
        }
        let end = pos + len;
        if range.is_none_or(|r| pos < r.end && end > r.start) && len > 0 {
            children.push((
                cid,
                Part {
                    offset: pos,
                    declared: Some(len),
                },
            ));
        }
        pos = end;
    }
    Ok(FileNode { data, children })
}

/// The part of `data`, which starts at file offset `offset`, that lies inside `range`.
fn clip(data: &Bytes, offset: u64, range: &Range<u64>) -> Option<Bytes> {
    let len = data.len() as u64;
    let start = range.start.saturating_sub(offset).min(len);
    let end = range.end.saturating_sub(offset).min(len);
    // Both are at most `data.len()`, so they fit in usize.
    (start < end).then(|| data.slice(start as usize..end as usize))
}

struct RangeVisitor {
    range: Range<u64>,
}

impl Visitor for RangeVisitor {
    type Ctx = Part;
    type Out = Bytes;

    fn visit(&mut self, block: Block, part: Part) -> Result<Visit<Part, Bytes>, ExportError> {
        let node = file_node(&block, part, Some(&self.range))?;
        Ok(Visit {
            out: clip(&node.data, part.offset, &self.range),
            children: node.children,
        })
    }
}

/// The bytes of a file range, in order. Ends after the last byte, or at the first error.
pub struct FileStream {
    walk: Dfs<RangeVisitor>,
    len: u64,
}

impl std::fmt::Debug for FileStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStream")
            .field("len", &self.len)
            .field("walk", &self.walk)
            .finish()
    }
}

impl FileStream {
    /// How many bytes the stream yields when it completes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Stream for FileStream {
    type Item = Result<Bytes, ExportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.walk).poll_next(cx)
    }
}

/// Reads bytes `range` (end exclusive, clipped to the file's end) of the file or raw block
/// `file`, fetching up to `window` blocks ahead. Subtrees outside the range are never fetched.
///
/// # Errors
/// [`ExportError::NotAFile`] for anything else, [`ExportError::RangeNotSatisfiable`] when the range
/// starts past the end (a start equal to the size gives an empty stream).
pub fn read_file(
    source: Arc<dyn BlockSource>,
    file: Block,
    range: Range<u64>,
    window: usize,
) -> Result<FileStream, ExportError> {
    let size = file_len(&file)?;
    if range.start > size {
        return Err(ExportError::RangeNotSatisfiable {
            cid: file.cid().to_string(),
            from: range.start,
            size,
        });
    }
    let range = range.start..range.end.clamp(range.start, size);
    let len = range.end - range.start;
    let part = Part {
        offset: 0,
        declared: None,
    };
    Ok(FileStream {
        walk: Dfs::from_block(source, RangeVisitor { range }, window, file, part),
        len,
    })
}

/// The first `n` bytes of a file (fewer if it is shorter), for content-type sniffing: only the
/// blocks holding them are fetched.
///
/// # Errors
/// As [`read_file`].
pub async fn read_head(
    source: Arc<dyn BlockSource>,
    file: Block,
    n: u64,
) -> Result<Bytes, ExportError> {
    let stream = read_file(source, file, 0..n, 2)?;
    let parts: Vec<Bytes> = stream.try_collect().await?;
    Ok(match parts.len() {
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => Bytes::from(parts.concat()),
    })
}

/// The size of a file or raw block.
///
/// # Errors
/// [`ExportError::NotAFile`] for anything else; [`ExportError::Malformed`] for a broken node.
pub fn file_len(file: &Block) -> Result<u64, ExportError> {
    let kind = super::node::kind_of(file)?;
    kind.file_size().ok_or_else(|| ExportError::NotAFile {
        cid: file.cid().to_string(),
        kind: kind.name(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::unixfs::export::testdag::{self, Probe};
    use crate::unixfs::export::{MemoryBlocks, SourceError};
    use crate::unixfs::{DataType, UnixFsData};

    async fn read_all(
        source: Arc<dyn BlockSource>,
        root: Block,
        range: Range<u64>,
        window: usize,
    ) -> Result<Vec<u8>, ExportError> {
        let stream = read_file(source, root, range, window)?;
        let expected = stream.len();
        let parts: Vec<Bytes> = stream.try_collect().await?;
        let out = parts.concat();
        assert_eq!(out.len() as u64, expected);
        Ok(out)
    }

    #[tokio::test]
    async fn whole_files_at_boundary_sizes() {
        let (chunk, width) = (16, 4);
        for raw_leaves in [false, true] {
            for len in [0, 1, 15, 16, 17, 64, 65, 256, 257, 1000] {
                let dag = MemoryBlocks::new();
                let data = testdag::bytes(len, len as u64);
                let root = testdag::file(&dag, &data, chunk, width, raw_leaves);
                assert_eq!(file_len(&root).unwrap(), len as u64);
                let got = read_all(Arc::new(dag), root, 0..u64::MAX, 4).await.unwrap();
                assert_eq!(got, data, "len {len} raw_leaves {raw_leaves}");
            }
        }
    }

    #[tokio::test]
    async fn only_blocks_overlapping_the_range_are_fetched() {
        let dag = MemoryBlocks::new();
        let data = testdag::bytes(1000, 7);
        // 10-byte leaves, 4 links per node: 100 leaves, 4 levels of interior nodes.
        let root = testdag::file(&dag, &data, 10, 4, true);
        let probe = Probe::new(dag, Duration::ZERO);
        let got = read_all(probe.clone(), root, 495..525, 3).await.unwrap();
        assert_eq!(got, &data[495..525]);
        let leaves = probe
            .fetched()
            .iter()
            .filter(|c| c.codec() == Codec::Raw.code())
            .count();
        assert_eq!(leaves, 4, "leaves 49..=52 only");
        assert!(
            probe.fetched().len() <= 4 + 4 * 2,
            "{:?}",
            probe.fetched().len()
        );
    }

    #[tokio::test]
    async fn prefetches_concurrently_within_the_window() {
        let dag = MemoryBlocks::new();
        let data = testdag::bytes(64 * 40, 3);
        let root = testdag::file(&dag, &data, 64, 174, false);
        let probe = Probe::new(dag, Duration::from_millis(2));
        let got = read_all(probe.clone(), root, 0..u64::MAX, 8).await.unwrap();
        assert_eq!(got, data);
        let max = probe.max_in_flight.load(SeqCst);
        assert!((4..=8).contains(&max), "max in flight {max}");
    }

    #[tokio::test]
    async fn blocks_held_stay_within_window_plus_depth() {
        let dag = MemoryBlocks::new();
        let data = testdag::bytes(8 * 300, 5);
        // 8-byte leaves, 4 links per node: 300 leaves under 5 levels of interior nodes.
        let root = testdag::file(&dag, &data, 8, 4, false);
        let probe = Probe::new(dag, Duration::from_millis(1));
        let got = read_all(probe.clone(), root, 0..u64::MAX, 3).await.unwrap();
        assert_eq!(got, data);
        let max = probe.max_in_flight.load(SeqCst);
        assert!(max <= 3 + 5, "max in flight {max}");
    }

    #[tokio::test]
    async fn missing_leaf_ends_the_stream_with_its_cid() {
        let dag = MemoryBlocks::new();
        let data = testdag::bytes(100, 1);
        let root = testdag::file(&dag, &data, 10, 4, true);
        let third = Block::encode(
            crate::Version::V1,
            Codec::Raw,
            crate::HashCode::Sha2_256,
            Bytes::copy_from_slice(&data[20..30]),
        )
        .unwrap();
        assert!(dag.remove(third.cid()));
        let mut stream = read_file(Arc::new(dag), root, 0..100, 4).unwrap();
        let mut got = Vec::new();
        let err = loop {
            match futures::StreamExt::next(&mut stream).await {
                Some(Ok(b)) => got.extend_from_slice(&b),
                Some(Err(e)) => break e,
                None => panic!("stream ended without the missing block"),
            }
        };
        assert_eq!(got, &data[..20]);
        assert_eq!(
            err,
            ExportError::Source(SourceError::NotFound {
                cid: third.cid().to_string()
            })
        );
        assert!(futures::StreamExt::next(&mut stream).await.is_none());
    }

    #[tokio::test]
    async fn rejects_inconsistent_sizes() {
        let dag = MemoryBlocks::new();
        let leaf = testdag::raw(&dag, b"0123456789");
        let mut fs = UnixFsData::new(DataType::File);
        fs.blocksizes = vec![11];
        let lying = testdag::pb(&dag, vec![testdag::link(None, &leaf)], &fs);
        let err = read_all(Arc::new(dag.clone()), lying, 0..100, 4)
            .await
            .unwrap_err();
        assert!(matches!(err, ExportError::Malformed { .. }), "{err}");

        fs.blocksizes = vec![10, 10];
        let short = testdag::pb(&dag, vec![testdag::link(None, &leaf)], &fs);
        assert!(matches!(
            file_len(&short),
            Err(ExportError::Malformed { .. })
        ));
        fs.blocksizes = vec![10];
        fs.filesize = Some(9);
        let wrong_total = testdag::pb(&dag, vec![testdag::link(None, &leaf)], &fs);
        assert!(matches!(
            file_len(&wrong_total),
            Err(ExportError::Malformed { .. })
        ));
    }

    #[tokio::test]
    async fn ranges_and_kinds_are_checked() {
        let dag = MemoryBlocks::new();
        let f = testdag::file(&dag, b"hello", 2, 2, false);
        let d = testdag::dir(&dag, &[("f", &f)]);
        let src: Arc<dyn BlockSource> = Arc::new(dag);
        assert!(matches!(
            read_file(src.clone(), d, 0..1, 1),
            Err(ExportError::NotAFile {
                kind: "directory",
                ..
            })
        ));
        assert!(matches!(
            read_file(src.clone(), f.clone(), 6..7, 1),
            Err(ExportError::RangeNotSatisfiable { size: 5, .. })
        ));
        assert!(
            read_all(src.clone(), f.clone(), 5..9, 1)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            read_all(src.clone(), f.clone(), 3..3, 1).await.unwrap(),
            b""
        );
        assert_eq!(read_head(src, f, SNIFF_LEN).await.unwrap(), &b"hello"[..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_ranges_read_back_exactly(
            len in 0usize..3000,
            chunk in 1usize..64,
            width in 2usize..6,
            raw_leaves in any::<bool>(),
            a in 0u64..3100,
            b in 0u64..3100,
            window in 1usize..6,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dag = MemoryBlocks::new();
            let data = testdag::bytes(len, a ^ b);
            let root = testdag::file(&dag, &data, chunk, width, raw_leaves);
            let (from, to) = (a.min(b), a.max(b));
            let got = rt.block_on(read_all(Arc::new(dag), root, from..to, window));
            if from > len as u64 {
                let unsatisfiable = matches!(got, Err(ExportError::RangeNotSatisfiable { .. }));
                prop_assert!(unsatisfiable);
            } else {
                let end = (to as usize).min(len);
                prop_assert_eq!(got.unwrap(), &data[from as usize..end]);
            }
        }
    }
}

//! Imported DAGs read back, through the dag-pb and UnixFS decoders, to exactly what went in, and
//! respect the layout rules Kubo's readers rely on.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use stargate_protocol::unixfs::{
    DataType, DirectoryBuilder, ImportOptions, UnixFsData, import_file, import_file_at,
    import_symlink,
};
use stargate_protocol::{Block, Bytes, Cid, Codec, PbNode, Version};

/// Every block of an import, by CID.
#[derive(Default)]
struct Blocks(HashMap<Cid, Bytes>);

impl Blocks {
    fn from(blocks: Vec<Block>) -> Self {
        let mut map = HashMap::new();
        for b in blocks {
            // Verified by construction; check again that nothing lies about its CID.
            let again = Block::new(*b.cid(), b.data().clone()).unwrap();
            map.insert(*again.cid(), again.data().clone());
        }
        Self(map)
    }

    fn get(&self, cid: &Cid) -> &Bytes {
        self.0
            .get(cid)
            .unwrap_or_else(|| panic!("block {cid} missing"))
    }

    /// Reads a file DAG, checking sizes and link counts on the way; returns (content, tsize).
    fn read_file(&self, cid: &Cid, out: &mut Vec<u8>) -> u64 {
        let bytes = self.get(cid);
        if cid.codec() == Codec::Raw.code() {
            out.extend_from_slice(bytes);
            return bytes.len() as u64;
        }
        let node = PbNode::decode(bytes).unwrap();
        let data = UnixFsData::from_node_data(node.data.as_ref()).unwrap();
        assert_eq!(data.kind, DataType::File);
        assert!(node.links.len() <= 174, "too many links");
        assert_eq!(node.links.len(), data.blocksizes.len());
        let start = out.len();
        if let Some(d) = &data.data {
            out.extend_from_slice(d);
        }
        let mut tsize = bytes.len() as u64;
        for (link, blocksize) in node.links.iter().zip(&data.blocksizes) {
            assert_eq!(link.name.as_deref(), Some(""));
            let before = out.len();
            let child_tsize = self.read_file(&link.cid, out);
            assert_eq!(link.tsize, Some(child_tsize));
            assert_eq!((out.len() - before) as u64, *blocksize);
            tsize += child_tsize;
        }
        assert_eq!(data.filesize, Some((out.len() - start) as u64));
        tsize
    }

    /// Lists a directory (basic or HAMT) as name -> CID.
    fn read_dir(&self, cid: &Cid, out: &mut BTreeMap<String, Cid>) {
        let node = PbNode::decode(self.get(cid)).unwrap();
        let data = UnixFsData::from_node_data(node.data.as_ref()).unwrap();
        match data.kind {
            DataType::Directory => {
                for l in node.links {
                    out.insert(l.name.unwrap(), l.cid);
                }
            }
            DataType::HamtShard => {
                assert_eq!((data.fanout, data.hash_type), (Some(256), Some(0x22)));
                let set_bits: u32 = data.data.unwrap().iter().map(|b| b.count_ones()).sum();
                assert_eq!(set_bits as usize, node.links.len());
                for l in node.links {
                    let name = l.name.unwrap();
                    if name.len() == 2 {
                        self.read_dir(&l.cid, out);
                    } else {
                        out.insert(name[2..].to_owned(), l.cid);
                    }
                }
            }
            other => panic!("not a directory: {other:?}"),
        }
    }
}

fn options() -> impl Strategy<Value = ImportOptions> {
    (
        1usize..5000,
        any::<bool>(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(chunk, v1, raw)| {
            let mut o = ImportOptions::default()
                .with_chunker(&format!("size-{chunk}"))
                .unwrap();
            if v1 {
                o = o.with_cid_version(Version::V1);
            }
            if let Some(raw) = raw {
                o = o.with_raw_leaves(raw);
            }
            o
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn files_read_back(content in proptest::collection::vec(any::<u8>(), 0..40_000), opts in options()) {
        let mut blocks = Vec::new();
        let file = import_file(&content[..], &opts, &mut blocks, |_| {}).unwrap();
        let blocks = Blocks::from(blocks);
        let mut out = Vec::new();
        let tsize = blocks.read_file(&file.cid, &mut out);
        prop_assert_eq!(&out, &content);
        prop_assert_eq!(file.size, content.len() as u64);
        prop_assert_eq!(file.tsize, tsize);
        let expected_version = if opts.raw_leaves() && content.len() <= opts.chunk_size() {
            Version::V1
        } else {
            opts.cid_version()
        };
        prop_assert_eq!(file.cid.version(), expected_version);

        // Reading by position gives the very same blocks.
        let mut at_blocks = Vec::new();
        let at = import_file_at(&content[..], content.len() as u64, &opts, &mut at_blocks, |_| {})
            .unwrap();
        prop_assert_eq!(at, file);
        prop_assert_eq!(Blocks::from(at_blocks).0, blocks.0);
    }

    #[test]
    fn directories_read_back(
        names in proptest::collection::btree_set("[a-zé0-9._-]{1,12}", 0..300),
        threshold in prop_oneof![Just(256 * 1024), 1usize..4000],
    ) {
        let opts = ImportOptions::default().with_shard_threshold(threshold);
        let mut blocks = Vec::new();
        let mut dir = DirectoryBuilder::new(&opts);
        dir.add_directory("sub").unwrap();
        let mut expected = BTreeMap::new();
        for name in names.iter().filter(|n| *n != "." && *n != "..") {
            let f = import_file(name.as_bytes(), &opts, &mut blocks, |_| {}).unwrap();
            dir.add_file(&format!("sub/{name}"), &f).unwrap();
            expected.insert(name.clone(), f.cid);
        }
        let link = import_symlink(b"sub", &opts, &mut blocks).unwrap();
        dir.add_file("link", &link).unwrap();
        let dirs = dir.finish(&mut blocks).unwrap();
        let blocks = Blocks::from(blocks);
        let sub = dirs.iter().find(|d| d.path == "sub").unwrap();
        let mut listed = BTreeMap::new();
        blocks.read_dir(&sub.cid, &mut listed);
        prop_assert_eq!(listed, expected);
        let mut root = BTreeMap::new();
        blocks.read_dir(&dirs.last().unwrap().cid, &mut root);
        prop_assert_eq!(root.get("link"), Some(&link.cid));
    }
}

#[test]
fn multi_level_file_reads_back() {
    // 175 chunks of 10 bytes: a root over a full node and a one-leaf node.
    let content: Vec<u8> = (0..1745u32).map(|i| (i * 7 % 256) as u8).collect();
    for opts in [
        ImportOptions::default(),
        ImportOptions::default().with_cid_version(Version::V1),
    ] {
        let opts = opts.with_chunker("size-10").unwrap();
        let mut blocks = Vec::new();
        let file = import_file(&content[..], &opts, &mut blocks, |_| {}).unwrap();
        let blocks = Blocks::from(blocks);
        let root = PbNode::decode(blocks.get(&file.cid)).unwrap();
        assert_eq!(root.links.len(), 2);
        let mut out = Vec::new();
        assert_eq!(blocks.read_file(&file.cid, &mut out), file.tsize);
        assert_eq!(out, content);
    }
}

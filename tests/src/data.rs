//! Deterministic test data: files at the UnixFS chunking boundaries, nested
//! trees and a directory large enough for Kubo to shard.
//!
//! Everything is generated in the test run from a seed, never pasted: the
//! same seed gives the same bytes within one build.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Kubo's default chunk size (`--chunker size-262144`).
pub const CHUNK: u64 = 262_144;
/// Kubo's balanced layout: at most this many links per node.
pub const MAX_LINKS: u64 = 174;

/// Writes `len` pseudo-random bytes derived from `seed` to `path`, streaming
/// (memory stays bounded whatever `len` is).
pub fn write_pseudo_random_file(path: &Path, len: u64, seed: u64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    finish(out, path)
}

/// Writes `len` bytes of deterministic UTF-8 text (numbered lines of words,
/// with some non-ASCII) to `path`.
pub fn write_text_file(path: &Path, len: u64, seed: u64) -> Result<()> {
    const WORDS: &[&str] = &[
        "stargate", "node", "block", "chunk", "peer", "über", "ναι", "mirror", "anchor", "bitcoin",
        "content", "address", "日本", "gateway", "kubo", "unixfs",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::new();
    let mut line = 0u64;
    while (text.len() as u64) < len {
        line += 1;
        text.push_str(&format!("{line:06}:"));
        let words = 3 + rng.next_u32() % 12;
        for _ in 0..words {
            text.push(' ');
            text.push_str(WORDS[rng.next_u32() as usize % WORDS.len()]);
        }
        text.push('\n');
    }
    // Cut on a character boundary at or below len, then pad with ASCII.
    let mut cut = usize::try_from(len).unwrap_or(text.len()).min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    while (text.len() as u64) < len {
        text.push('\n');
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A file written by one of the generators, with the name tests report it by.
#[derive(Debug, Clone)]
pub struct NamedFile {
    pub name: &'static str,
    pub path: PathBuf,
    pub len: u64,
}

/// The boundary files of issue 2, by name and length. "text" is UTF-8 text,
/// every other one pseudo-random bytes.
pub const BOUNDARY_FILES: &[(&str, u64)] = &[
    ("empty", 0),
    ("one-byte", 1),
    ("one-chunk", CHUNK),
    ("one-chunk-plus-one", CHUNK + 1),
    // The largest file whose root links straight to its leaves...
    ("174-chunks", MAX_LINKS * CHUNK),
    // ...and the smallest that needs a second level.
    ("175-chunks", (MAX_LINKS + 1) * CHUNK),
    // Tens of MiB, not a multiple of the chunk size.
    ("50-mib-odd", 50 * 1024 * 1024 + 12_345),
    ("text", 3 * CHUNK + 1_000),
];

/// Writes every file of [`BOUNDARY_FILES`] into `dir` (seeded by `seed`).
pub fn write_boundary_files(dir: &Path, seed: u64) -> Result<Vec<NamedFile>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    BOUNDARY_FILES
        .iter()
        .enumerate()
        .map(|(i, &(name, len))| {
            let path = dir.join(name);
            let file_seed = seed.wrapping_add(i as u64);
            if name == "text" {
                write_text_file(&path, len, file_seed)?;
            } else {
                write_pseudo_random_file(&path, len, file_seed)?;
            }
            Ok(NamedFile { name, path, len })
        })
        .collect()
}

/// Writes a nested tree under `root` (created): files at several depths,
/// a multi-chunk file, an empty file, an empty directory, names with spaces
/// and non-ASCII characters. No dot-files, so `ipfs add -r` with or without
/// `--hidden` sees the same tree.
pub fn write_nested_dir(root: &Path, seed: u64) -> Result<()> {
    let dirs = [
        "",
        "empty-dir",
        "sub1",
        "sub1/sub2",
        "sub1/sub2/sub3",
        "z last",
    ];
    for d in dirs {
        let p = root.join(d);
        fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    }
    write_text_file(&root.join("a.txt"), 1_000, seed)?;
    write_pseudo_random_file(&root.join("sub1/b.bin"), 1024 * 1024 + 3, seed + 1)?;
    write_text_file(&root.join("sub1/c.txt"), 10, seed + 2)?;
    write_pseudo_random_file(&root.join("sub1/sub2/d.bin"), 300_000, seed + 3)?;
    write_text_file(&root.join("sub1/sub2/é ü name.txt"), 77, seed + 4)?;
    write_pseudo_random_file(&root.join("sub1/sub2/sub3/empty.bin"), 0, seed + 5)?;
    write_pseudo_random_file(&root.join("z last/one.bin"), 1, seed + 6)?;
    Ok(())
}

/// Number of files [`write_sharded_dir`] writes. Each link is estimated by
/// Kubo at len(name) + len(CID): 14 + 34 bytes with CIDv0, 14 + 36 with
/// CIDv1, so 6,000 entries estimate at 288,000 or 300,000 bytes, past the
/// 262,144-byte sharding threshold either way.
pub const SHARDED_DIR_FILES: usize = 6_000;

/// Writes a flat directory under `root` (created) with [`SHARDED_DIR_FILES`]
/// small distinct files named `file-NNNNN.txt` (14 bytes), large enough for
/// Kubo v0.22 to turn it into a HAMT shard.
pub fn write_sharded_dir(root: &Path, seed: u64) -> Result<()> {
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    for i in 0..SHARDED_DIR_FILES {
        let path = root.join(format!("file-{i:05}.txt"));
        fs::write(&path, format!("{seed} {i}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Kubo v0.22's HAMT sharding threshold: a directory whose estimated size
/// (sum over links of len(name) + len(CID bytes)) reaches it is sharded.
pub const SHARD_THRESHOLD: u64 = 262_144;

/// Files in [`write_threshold_dir`]; with 30-byte names and 34-byte CIDv0
/// links each is estimated at 64 bytes, 4,096 of them at exactly
/// [`SHARD_THRESHOLD`].
const THRESHOLD_DIR_FILES: usize = 4_096;

/// Writes a flat directory under `root` (created) whose CIDv0 size estimate
/// is `SHARD_THRESHOLD + delta` (`delta` within -29..=29): 4,096 small files
/// with 30-byte names, the first name shortened or lengthened by `|delta|`.
/// Kubo shards at `delta >= 0`.
pub fn write_threshold_dir(root: &Path, delta: i8) -> Result<()> {
    anyhow::ensure!(
        (-29..=29).contains(&delta),
        "delta {delta} is outside -29..=29"
    );
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    for i in 0..THRESHOLD_DIR_FILES {
        let mut name = format!("f{i:029}");
        if i == 0 {
            let d = usize::from(delta.unsigned_abs());
            if delta < 0 {
                name.truncate(name.len() - d);
            } else {
                name.push_str(&"x".repeat(d));
            }
        }
        let path = root.join(&name);
        fs::write(&path, i.to_string()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(BufWriter::new(f))
}

fn finish(mut out: BufWriter<File>, path: &Path) -> Result<()> {
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_is_deterministic_and_seeded() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        write_pseudo_random_file(&a, 3_000_001, 7).unwrap();
        write_pseudo_random_file(&b, 3_000_001, 7).unwrap();
        write_pseudo_random_file(&c, 3_000_001, 8).unwrap();
        let (a, b, c) = (
            fs::read(a).unwrap(),
            fs::read(b).unwrap(),
            fs::read(c).unwrap(),
        );
        assert_eq!(a.len(), 3_000_001);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn text_has_the_exact_length_and_is_utf8() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, 5, 1_000, 3 * CHUNK + 1_000] {
            let p = dir.path().join(format!("t{len}"));
            write_text_file(&p, len, 1).unwrap();
            let bytes = fs::read(&p).unwrap();
            assert_eq!(bytes.len() as u64, len);
            String::from_utf8(bytes).unwrap();
        }
    }

    #[test]
    fn boundary_files_have_their_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_boundary_files(dir.path(), 1).unwrap();
        assert_eq!(files.len(), BOUNDARY_FILES.len());
        for f in files {
            assert_eq!(fs::metadata(&f.path).unwrap().len(), f.len, "{}", f.name);
        }
    }
}

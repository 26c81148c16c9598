//! A large input, streamed or read by position, is imported in bounded memory: the process's peak resident set stays far
//! below the input size. (Alone in its test binary, since the peak is per process.)
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Read;

use stargate_protocol::unixfs::{
    DiscardBlocks, ImportOptions, ReadAt, import_file, import_file_at,
};

const INPUT: u64 = 1 << 30;
/// Three batches of 8 MiB in flight, plus the test binary itself, with a wide margin.
const MAX_PEAK_RSS: u64 = 64 << 20;

/// `len` bytes of a repeating 1 MiB pattern, produced on the fly.
struct Generated {
    pattern: Vec<u8>,
    left: u64,
    at: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(self.pattern.len() - self.at)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.pattern[self.at..self.at + n]);
        self.at = (self.at + n) % self.pattern.len();
        self.left -= n as u64;
        Ok(n)
    }
}

/// The same bytes as [`Generated`], read by position.
struct GeneratedAt(Vec<u8>);

impl ReadAt for GeneratedAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(INPUT.saturating_sub(offset)).unwrap());
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.0[(offset as usize + i) % self.0.len()];
        }
        Ok(n)
    }
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn one_gib_streams_in_bounded_memory() {
    let pattern: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let before = peak_rss();
    let input = Generated {
        pattern: pattern.clone(),
        left: INPUT,
        at: 0,
    };
    let file = import_file(input, &ImportOptions::default(), &mut DiscardBlocks, |_| {}).unwrap();
    assert_eq!(file.size, INPUT);
    let opts = ImportOptions::default();
    let at = import_file_at(
        &GeneratedAt(pattern),
        INPUT,
        &opts,
        &mut DiscardBlocks,
        |_| {},
    );
    assert_eq!(at.unwrap(), file);
    let peak = peak_rss();
    assert!(
        peak < MAX_PEAK_RSS,
        "peak RSS {} MiB (before the import: {} MiB) for a {} MiB input",
        peak >> 20,
        before >> 20,
        INPUT >> 20
    );
    eprintln!(
        "peak RSS {} MiB for a {} MiB input",
        peak >> 20,
        INPUT >> 20
    );
}

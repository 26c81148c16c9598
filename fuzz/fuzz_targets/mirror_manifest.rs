//! Manifest decoding and checking: never panics, and what passes keeps the entry limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::mirror::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::decode_verified(data, 2000) {
        assert!(manifest.entries.len() <= 2000);
    }
});

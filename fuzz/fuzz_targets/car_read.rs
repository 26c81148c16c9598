//! CAR reading: never panics; a CAR that reads (every block verified) is written back by our
//! writer byte for byte, since the reader accepts only canonical headers and minimal varints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::car::{encode_frame_prefix, encode_header, read_car};

fuzz_target!(|data: &[u8]| {
    let Ok((roots, blocks)) = read_car(data) else {
        return;
    };
    let mut out = encode_header(&roots).to_vec();
    for b in &blocks {
        out.extend_from_slice(&encode_frame_prefix(b));
        out.extend_from_slice(b.data());
    }
    assert_eq!(out, data);
});

//! UnixFS Data decoding: never panics; whatever decodes re-encodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::Bytes;
use stargate_protocol::unixfs::UnixFsData;

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = UnixFsData::decode(&Bytes::copy_from_slice(data)) else {
        return;
    };
    let encoded = Bytes::from(decoded.encode());
    let again = UnixFsData::decode(&encoded).expect("a re-encoded message decodes");
    assert_eq!(again, decoded);
});

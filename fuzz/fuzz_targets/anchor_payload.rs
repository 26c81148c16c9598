//! Decodes arbitrary bytes as an anchor payload and as an OP_RETURN script; whatever decodes
//! must encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::anchor::AnchorPayload;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = AnchorPayload::from_bytes(data) {
        assert_eq!(payload.to_bytes().as_slice(), data);
        assert_eq!(
            AnchorPayload::from_script(&payload.script_pubkey()),
            Some(payload)
        );
    }
    if let Some(payload) =
        AnchorPayload::from_script(bitcoin::Script::from_bytes(data))
    {
        assert_eq!(payload.script_pubkey().as_bytes(), data);
    }
});

//! Parses arbitrary bytes as an anchor proof and verifies what parses; neither may panic, and a
//! parsed proof must survive a round trip through its JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stargate_protocol::anchor::AnchorProof;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = AnchorProof::from_json(data) {
        let _ = proof.verify(None);
        let again = AnchorProof::from_json(proof.to_json().as_bytes())
            .expect("a proof's own JSON parses");
        // The witness is dropped on output, so compare what the JSON carries.
        assert_eq!(again.to_json(), proof.to_json());
    }
});

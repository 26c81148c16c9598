//! `stargate verify proof.json`: checks an anchor proof with no network (docs/anchor-format.md).

use std::io::Read as _;

use anyhow::{Context, Result};
use stargate_protocol::anchor::{AnchorProof, HeaderChain, MAX_PROOF_JSON_LEN};

use crate::cli::VerifyArgs;
use crate::output::outln;

/// Largest header file read (a million headers as hex, with line breaks).
const MAX_HEADERS_FILE: u64 = 170 * 1_000_000;

pub(crate) fn run(args: &VerifyArgs) -> Result<()> {
    let json = read_bounded(&args.proof, MAX_PROOF_JSON_LEN as u64 + 1)?;
    let proof = AnchorProof::from_json(&json)
        .with_context(|| format!("reading the proof {}", args.proof.display()))?;
    let chain = match (&args.headers, args.headers_start) {
        (Some(path), Some(start)) => {
            let text = String::from_utf8(read_bounded(path, MAX_HEADERS_FILE)?)
                .with_context(|| format!("{} is not text", path.display()))?;
            Some(
                HeaderChain::from_hex(proof.network, start, &text)
                    .with_context(|| format!("reading the header chain {}", path.display()))?,
            )
        }
        _ => None,
    };
    let verified = proof
        .verify(chain.as_ref())
        .with_context(|| format!("the proof {} does not hold", args.proof.display()))?;
    outln!(
        "ok: {} is committed by transaction {} on {}",
        verified.cid,
        verified.txid,
        verified.network
    )?;
    outln!(
        "block {} at height {} (block time {})",
        verified.block_hash,
        verified.height,
        humantime::format_rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(verified.block_time))
        )
    )?;
    match verified.batch {
        Some((index, size)) => outln!("member {index} of a batch of {size} CIDs")?,
        None => outln!("single-CID payload")?,
    }
    if verified.in_header_chain {
        outln!("the block is in the given header chain")?;
    } else {
        outln!(
            "not checked against a header chain: give --headers FILE --headers-start HEIGHT to check that the block is in your chain"
        )?;
    }
    Ok(())
}

fn read_bounded(path: &std::path::Path, limit: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes)
}

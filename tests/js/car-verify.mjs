#!/usr/bin/env node
// Read a CAR (v1; v2 is read through its inner v1 payload) with @ipld/car,
// re-hash every block against its CID and print JSON:
//   {"ok": bool, "version": 1, "roots": [cid...], "blocks": [cid...],
//    "missing_roots": [cid...], "error": "..." (only when ok is false)}
// Exits 0 when every block's bytes match its CID, 1 on a mismatch, an
// unsupported hash function or a parse error, 2 on bad usage. Roots that are
// not among the blocks are listed in missing_roots but do not fail the check
// (a CAR of a sub-DAG or a block range may legitimately omit them).
//
// Usage: node car-verify.mjs FILE.car
import { createReadStream } from 'node:fs'
import { CarBlockIterator } from '@ipld/car/iterator'
import { equals } from 'multiformats/bytes'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'

const HASHERS = new Map([
  [identity.code, identity],
  [sha256.code, sha256],
  [sha512.code, sha512]
])

async function verify (file) {
  const report = { ok: false, version: null, roots: [], blocks: [], missing_roots: [] }
  try {
    const iterator = await CarBlockIterator.fromIterable(createReadStream(file, { highWaterMark: 1 << 20 }))
    report.version = iterator.version
    report.roots = (await iterator.getRoots()).map(c => c.toString())
    const seen = new Set()
    for await (const { cid, bytes } of iterator) {
      const hasher = HASHERS.get(cid.multihash.code)
      if (hasher === undefined) {
        throw new Error(`block ${cid}: unsupported multihash code 0x${cid.multihash.code.toString(16)}`)
      }
      const digest = await hasher.digest(bytes)
      if (!equals(digest.bytes, cid.multihash.bytes)) {
        throw new Error(`block ${cid}: bytes hash to ${digest.bytes.length}-byte multihash that does not match the CID`)
      }
      const key = cid.toString()
      report.blocks.push(key)
      seen.add(key)
    }
    report.missing_roots = report.roots.filter(r => !seen.has(r))
    report.ok = true
  } catch (e) {
    report.ok = false
    report.error = e?.message ?? String(e)
  }
  return report
}

async function main () {
  const args = process.argv.slice(2)
  if (args.length !== 1) {
    process.stderr.write('usage: node car-verify.mjs FILE.car\n')
    process.exit(2)
  }
  const report = await verify(args[0])
  process.stdout.write(JSON.stringify(report) + '\n')
  process.exit(report.ok ? 0 : 1)
}

main()

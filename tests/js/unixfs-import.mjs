#!/usr/bin/env node
// Import a file or a directory tree with ipfs-unixfs-importer (the importer
// Helia uses) configured as Kubo v0.22's `ipfs add`, and print JSON:
//   {"root": {"path", "cid", "size"}, "entries": [{"path", "cid", "size"}, ...]}
// `entries` are in the order the importer yields them (files first, then
// directories bottom-up), with the names `ipfs add -r` prints on its "added"
// lines; `root` is the last one (what `ipfs add -Q` prints). `size` is the
// cumulative DAG size (the Tsize a parent link would carry).
//
// Usage: node unixfs-import.mjs [options] PATH
//   --cid-version 0|1     Kubo default 0; 1 implies --raw-leaves unless
//                         --raw-leaves=false is given (as in Kubo)
//   --raw-leaves[=bool]   Kubo default false with CIDv0
//   --chunker size-N      Kubo default size-262144 (only fixed-size chunkers)
//   --hidden              include dot-files in a directory (Kubo: --hidden)
//   --wrap-with-directory wrap in a directory as `ipfs add -w`
//   --shard-threshold N   shard a directory once its estimated size is >= N
//                         bytes (Kubo 0.22: Internal.UnixFSShardingSizeThreshold,
//                         default 256 KiB; 0 never shards)
//
// Blocks are hashed and thrown away (BlackHoleBlockstore): the script computes
// CIDs, it stores nothing, and file content streams with bounded memory.
//
// Mapping to Kubo v0.22 (boxo) defaults, option by option:
// - chunker: fixed-size 262144 (`size-262144`), as Kubo's default chunker.
// - layout: balanced, at most 174 links per node (boxo's
//   helpers.DefaultLinksPerBlock for a 256 KiB block with CIDv0 links).
// - leaves: dag-pb UnixFS nodes of type File (leafType 'file', as boxo's
//   balanced builder) with CIDv0; raw blocks with --raw-leaves / CIDv1.
// - reduceSingleLeafToSelf: a one-chunk file is that chunk's node (Kubo's
//   balanced builder returns the single leaf as the root too).
// - no mtime, no mode: Kubo's add writes neither unless asked (--preserve-*).
// - dag-pb field order links-first: the canonical dag-pb encoding Go uses.
// - directories: plain UnixFS directories; a directory becomes a HAMT shard
//   (fanout 256, murmur3-x64-64, as boxo) once its estimated size reaches
//   the threshold. The estimate ('links-bytes') is the sum over links of
//   len(name) + len(CID bytes), the same estimate boxo's BasicDirectory keeps.
//   Known differences between the JS and Go estimates:
//     * JS shards when the estimate is strictly greater than its threshold;
//       boxo (which Kubo v0.22 uses) when it is greater than or equal. This
//       script passes N - 1 to the JS importer so both agree (measured: a
//       directory estimated at exactly 262144 bytes is sharded by Kubo).
//     * Both keep the estimate as entries are added: JS counts a link only
//       while its child has a CID, so a subdirectory is counted from the
//       moment its (still empty) directory entry is added until its first
//       child arrives. Measured against Kubo with a subdirectory link being
//       what crosses the threshold, sorted before and after the files: same
//       CIDs. Trees that differ from Kubo here would show in the harness
//       test, which compares nested, sharded and at-the-threshold
//       directories with a real Kubo.
// - `ipfs add -r` skips dot-files unless --hidden; symlinks become UnixFS
//   symlink nodes.
import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'
import { importDirectory, importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const KUBO_CHUNK_SIZE = 262144
const KUBO_MAX_LINKS = 174
const KUBO_SHARD_THRESHOLD = 262144
const KUBO_SHARD_FANOUT_BITS = 8

function fail (message) {
  process.stderr.write(`unixfs-import: ${message}\n`)
  process.exit(2)
}

function parseBool (name, value) {
  if (value === undefined || value === 'true') return true
  if (value === 'false') return false
  fail(`--${name} takes true or false, got ${JSON.stringify(value)}`)
}

function options () {
  // --raw-leaves may be given bare or as --raw-leaves=false; parseArgs only
  // knows string options with values, so normalise the bare form first.
  const argv = process.argv.slice(2).map(a => (a === '--raw-leaves' ? '--raw-leaves=true' : a))
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'cid-version': { type: 'string', default: '0' },
        'raw-leaves': { type: 'string' },
        chunker: { type: 'string', default: `size-${KUBO_CHUNK_SIZE}` },
        hidden: { type: 'boolean', default: false },
        'wrap-with-directory': { type: 'boolean', default: false },
        'shard-threshold': { type: 'string', default: String(KUBO_SHARD_THRESHOLD) }
      }
    })
  } catch (e) {
    fail(e.message)
  }
  const { values, positionals } = parsed
  if (positionals.length !== 1) fail('exactly one PATH is required')
  const cidVersion = Number(values['cid-version'])
  if (cidVersion !== 0 && cidVersion !== 1) fail(`--cid-version must be 0 or 1, got ${values['cid-version']}`)
  // Kubo: CIDv1 implies raw leaves unless raw leaves were set explicitly.
  const rawLeaves = values['raw-leaves'] === undefined ? cidVersion === 1 : parseBool('raw-leaves', values['raw-leaves'])
  const m = /^size-(\d+)$/.exec(values.chunker)
  if (m == null) fail(`only fixed-size chunkers (size-N) are supported, got ${values.chunker}`)
  const chunkSize = Number(m[1])
  // Kubo refuses chunks above 1 MiB (boxo chunker.ChunkSizeLimit) and below 1.
  if (!(chunkSize >= 1 && chunkSize <= 1048576)) fail(`chunk size must be within 1..1048576, got ${chunkSize}`)
  const shardThreshold = Number(values['shard-threshold'])
  if (!Number.isSafeInteger(shardThreshold) || shardThreshold < 0) fail('--shard-threshold must be a non-negative integer')
  // boxo shards once estimate >= threshold (0 disables sharding); the JS
  // importer once estimate > its option. Checked against Kubo at exactly
  // 262144 estimated bytes: Kubo shards, the JS importer given 262144 does not.
  const jsShardThreshold = shardThreshold === 0 ? Number.MAX_SAFE_INTEGER : shardThreshold - 1
  return {
    path: resolve(positionals[0]),
    hidden: values.hidden,
    importerOptions: {
      cidVersion,
      rawLeaves,
      leafType: 'file',
      reduceSingleLeafToSelf: true,
      chunker: fixedSize({ chunkSize }),
      layout: balanced({ maxChildrenPerNode: KUBO_MAX_LINKS }),
      shardSplitThresholdBytes: jsShardThreshold,
      shardSplitStrategy: 'links-bytes',
      shardFanoutBits: KUBO_SHARD_FANOUT_BITS,
      fieldOrder: 'links-first',
      wrapWithDirectory: values['wrap-with-directory']
    }
  }
}

// Small files are read whole (a stream per file costs more than the file
// in trees of thousands); large ones stream.
const READ_WHOLE_BELOW = 1 << 20

async function fileContent (abs, size) {
  if (size < READ_WHOLE_BELOW) return await readFile(abs)
  return createReadStream(abs, { highWaterMark: 1 << 20 })
}

// Yields import candidates for PATH: one for a file, or the whole tree of a
// directory (directories included, so empty ones are kept), with paths
// relative to PATH's parent as `ipfs add -r` names them. The paths of empty
// directories are added to `empties`: the importer links them into their
// parent but yields no entry for them.
async function * candidates (root, hidden, empties) {
  const name = basename(root)
  const st = await lstat(root)
  if (st.isSymbolicLink()) {
    yield { path: name, link: await readlink(root) }
    return
  }
  if (st.isFile()) {
    yield { path: name, content: await fileContent(root, st.size) }
    return
  }
  if (!st.isDirectory()) fail(`${root} is neither a file nor a directory`)
  const stack = [[root, name]]
  while (stack.length > 0) {
    const [abs, rel] = stack.pop()
    yield { path: rel }
    const names = (await readdir(abs)).sort().filter(n => hidden || !n.startsWith('.'))
    if (names.length === 0 && rel !== name) empties.push(rel)
    for (const child of names) {
      const childAbs = join(abs, child)
      const childRel = `${rel}/${child}`
      const cst = await lstat(childAbs)
      if (cst.isSymbolicLink()) {
        yield { path: childRel, link: await readlink(childAbs) }
      } else if (cst.isDirectory()) {
        stack.push([childAbs, childRel])
      } else if (cst.isFile()) {
        yield { path: childRel, content: await fileContent(childAbs, cst.size) }
      } else {
        fail(`${childAbs} is neither a file, a directory nor a symlink`)
      }
    }
  }
}

async function main () {
  const opts = options()
  const blockstore = new BlackHoleBlockstore()
  const entries = []
  const empties = []
  const show = entry => ({ path: entry.path ?? '', cid: entry.cid.toString(), size: Number(entry.size) })
  for await (const entry of importer(candidates(opts.path, opts.hidden, empties), blockstore, opts.importerOptions)) {
    entries.push(show(entry))
  }
  if (entries.length === 0) fail('the importer produced nothing')
  // `ipfs add -r` prints an "added" line for each empty directory too.
  const root = entries.pop()
  for (const path of empties) {
    // Imported alone under a one-component name, a directory is its own root.
    const empty = await importDirectory({ path: 'empty' }, blockstore, opts.importerOptions)
    entries.push({ ...show(empty), path })
  }
  entries.push(root)
  process.stdout.write(JSON.stringify({ root: entries[entries.length - 1], entries }) + '\n')
}

main().catch(e => fail(e.stack ?? String(e)))

// Builds a HAMT-sharded directory with the JS importer (the one Helia uses) and writes it as a CAR.
// Usage: node gen.mjs OUT.car  — entries are `file-NNNN.txt` holding their own name.
import { importer } from 'ipfs-unixfs-importer'
import { MemoryBlockstore } from 'blockstore-core'
import { CarWriter } from '@ipld/car'
import fs from 'node:fs'

const out = process.argv[2]
const count = 600
const blockstore = new MemoryBlockstore()
const written = new Map()
const put = blockstore.put.bind(blockstore)
blockstore.put = async (cid, bytes, options) => {
  written.set(cid.toString(), { cid, bytes })
  return put(cid, bytes, options)
}
const enc = new TextEncoder()
const source = []
for (let i = 0; i < count; i++) {
  const name = `file-${String(i).padStart(4, '0')}.txt`
  source.push({ path: `dir/${name}`, content: enc.encode(name) })
}
let root
for await (const entry of importer(source, blockstore, {
  cidVersion: 0, rawLeaves: false, shardSplitThresholdBytes: 1000, wrapWithDirectory: false,
})) {
  if (entry.path === 'dir') root = entry.cid
}
const { writer, out: carOut } = CarWriter.create([root])
const chunks = []
const collect = (async () => { for await (const c of carOut) chunks.push(c) })()
for (const block of written.values()) {
  await writer.put(block)
}
await writer.close()
await collect
fs.writeFileSync(out, Buffer.concat(chunks))
console.log(root.toString())

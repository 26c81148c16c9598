// Drives a Stargate daemon's RPC API with npm kubo-rpc-client, every command the node serves
// called as the client's users call it, and prints what came back as one JSON report on
// stdout. Checks that need only the client (a shape it parses, bytes read back) fail here, with
// the call named; the Rust test (tests/tests/clients.rs) compares the report with Kubo.
//
//   node kubo-rpc-client.mjs <api url> <fixtures dir> <peer multiaddr> <cid> <provider id>
//
// The fixtures dir holds `blob.bin` and the directory `tree`; the peer (a Kubo node on
// loopback, its multiaddr ending in /p2p/<id>) is connected to the daemon, and so is the
// provider of the CID.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'

import { CarReader, CarWriter } from '@ipld/car'
import * as dagCBOR from '@ipld/dag-cbor'
import * as dagJSON from '@ipld/dag-json'
import * as dagPB from '@ipld/dag-pb'
import { CID, create, globSource } from 'kubo-rpc-client'
import * as raw from 'multiformats/codecs/raw'
import { sha256, sha512 } from 'multiformats/hashes/sha2'

const [api, fixtures, peerAddr, provided, provider] = process.argv.slice(2)
if (provider === undefined) {
  console.error('usage: kubo-rpc-client.mjs <api url> <fixtures dir> <peer multiaddr> <cid> <provider id>')
  process.exit(2)
}
/** How long the provider record may take to be found. */
const FIND_TIMEOUT_MS = 60_000
/** How long a pubsub peer or message may take to show. */
const PUBSUB_TIMEOUT_MS = 10_000
/** How long a disconnected peer may stay listed. */
const DISCONNECT_TIMEOUT_MS = 10_000

const ipfs = create({ url: api })
const report = {}
const text = new TextEncoder()

function check (ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`)
}

async function sleep (ms) {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

async function all (iterable) {
  const out = []
  for await (const x of iterable) out.push(x)
  return out
}

function concat (chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of chunks) { out.set(c, at); at += c.length }
  return out
}

function same (a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

// The error a call ends with (a call that succeeds fails the run).
async function failure (what, call) {
  try {
    await call()
  } catch (e) {
    return { message: e.message, status: e.response?.status ?? null }
  }
  throw new Error(`${what} succeeded; it should have failed`)
}

const added = (e) => ({ path: e.path, cid: e.cid.toString(), size: e.size })

// add: a string and bytes (a part without a file name: named by its CID), a named file,
// a directory as users add one (globSource, wrapped), and Kubo's options.
const hello = await ipfs.add('hello')
check(hello.path === hello.cid.toString(), `add('hello') is named by its CID: ${hello.path}`)
report.add_string = added(hello)
report.add_bytes = added(await ipfs.add(text.encode('hello')))
const blob = readFileSync(join(fixtures, 'blob.bin'))
report.add_file = added(await ipfs.add({ path: 'blob.bin', content: blob }))
report.add_dir = (await all(ipfs.addAll(globSource(join(fixtures, 'tree'), '**/*'), {
  wrapWithDirectory: true
}))).map(added)
report.add_options = {
  cid_version_1: added(await ipfs.add(blob, { cidVersion: 1 })),
  raw_leaves: added(await ipfs.add(blob, { rawLeaves: true })),
  chunker: added(await ipfs.add(blob, { chunker: 'size-65536', onlyHash: true })),
  wrapped: (await all(ipfs.addAll([{ path: 'blob.bin', content: blob }], {
    wrapWithDirectory: true, pin: false
  }))).map(added)
}
// The client's own options travel in the query too (Kubo ignores the ones it has no use for).
const clientOptions = await ipfs.add(blob, {
  preload: false, fileImportConcurrency: 2, timeout: '30s', headers: { 'X-Test': 'stargate' }
})
check(clientOptions.cid.toString() === report.add_file.cid,
  `add with the client's options: ${clientOptions.cid} is ${report.add_file.cid}`)
let progressed = 0
await ipfs.add(blob, { progress: (bytes) => { progressed = bytes } })
check(progressed === blob.length, `add progress reached ${progressed} of ${blob.length}`)

// cat, get, ls
const file = report.add_file.cid
check(same(concat(await all(ipfs.cat(file))), blob), 'cat gives the bytes added')
check(same(concat(await all(ipfs.cat(file, { offset: 1000, length: 10 }))),
  blob.subarray(1000, 1010)), 'cat with offset and length')
const tar = concat(await all(ipfs.get(hello.cid)))
check(new TextDecoder().decode(tar.subarray(0, 100)).replace(/\0+$/, '') === hello.cid.toString(),
  'get: a tar whose entry is named by the CID')
check(new TextDecoder().decode(tar.subarray(512, 517)) === 'hello', 'get: the bytes follow')
// get --compress: a file is its bytes gzipped; with --archive (or a directory) the tar gzipped.
check(same(gunzipSync(concat(await all(ipfs.get(file, { compress: true, compressionLevel: 1 })))), blob),
  'get compress: the file gzipped')
check(same(gunzipSync(concat(await all(ipfs.get(hello.cid, { archive: true, compress: true })))), tar),
  'get archive compress: the tar gzipped')
report.get_compress_bad_level = await failure('get with compression level 10',
  () => all(ipfs.get(file, { compress: true, compressionLevel: 10 })))
const root = report.add_dir.at(-1).cid
report.ls = (await all(ipfs.ls(root))).map((e) => ({
  name: e.name, cid: e.cid.toString(), size: e.size, type: e.type
}))
report.ls_stream = (await all(ipfs.ls(root, { stream: true }))).map((e) => e.name)

// block put (raw, dag-pb by format and by codec, sha2-512), get, stat, rm
const data = text.encode('a block of bytes')
const pbNode = dagPB.encode(dagPB.prepare({ Data: text.encode('pb') }))
const expected = {
  raw: CID.createV1(raw.code, await sha256.digest(data)),
  pb: CID.createV1(dagPB.code, await sha256.digest(pbNode)),
  raw512: CID.createV1(raw.code, await sha512.digest(data))
}
const putRaw = await ipfs.block.put(data)
check(putRaw.equals(expected.raw), `block.put: ${putRaw} is ${expected.raw}`)
const putFormat = await ipfs.block.put(pbNode, { format: 'dag-pb', version: 0 })
check(putFormat.equals(expected.pb), `block.put format dag-pb: ${putFormat} is ${expected.pb}`)
const putCodec = await ipfs.block.put(pbNode, { cidCodec: 'dag-pb' })
check(putCodec.equals(expected.pb), `block.put cidCodec dag-pb: ${putCodec}`)
const put512 = await ipfs.block.put(data, { mhtype: 'sha2-512' })
check(put512.equals(expected.raw512), `block.put sha2-512: ${put512} is ${expected.raw512}`)
check(same(await ipfs.block.get(putRaw), data), 'block.get gives the bytes put')
const stat = await ipfs.block.stat(putRaw)
check(stat.cid.equals(putRaw) && stat.size === data.length, `block.stat: ${JSON.stringify(stat)}`)
const removed = await all(ipfs.block.rm(putRaw))
check(removed.length === 1 && removed[0].cid.equals(putRaw) && removed[0].error === undefined,
  `block.rm of a stored block: ${JSON.stringify(removed)}`)
const refused = await all(ipfs.block.rm(hello.cid))
check(refused.length === 1 && refused[0].error !== undefined,
  `block.rm of a pinned block says why: ${JSON.stringify(refused)}`)
report.block_rm_pinned = refused[0].error.message
report.block_rm_missing = (await all(ipfs.block.rm(putRaw)))[0].error?.message ?? null
report.block_rm_forced = (await all(ipfs.block.rm(putRaw, { force: true })))[0].error ?? null

// pin add, ls, rm
const unpinned = report.add_options.wrapped.at(-1).cid
const pinned = await ipfs.pin.add(CID.parse(unpinned))
check(pinned.toString() === unpinned, `pin.add gives the CID: ${pinned}`)
const listed = await all(ipfs.pin.ls({ paths: [CID.parse(unpinned)] }))
check(listed.length === 1 && listed[0].type === 'recursive' && listed[0].cid.toString() === unpinned,
  `pin.ls of one path: ${JSON.stringify(listed)}`)
const recursive = await all(ipfs.pin.ls({ type: 'recursive' }))
check(recursive.some((p) => p.cid.toString() === unpinned), 'pin.ls type recursive lists it')
const unpinnedNow = await all(ipfs.pin.rmAll([{ cid: CID.parse(unpinned) }]))
check(unpinnedNow.map(String).join() === unpinned, `pin.rm: ${unpinnedNow}`)
report.pin_ls_unpinned = await failure('pin.ls of an unpinned path',
  () => all(ipfs.pin.ls({ paths: [CID.parse(unpinned)] })))

// id, version
const id = await ipfs.id()
check(id.addresses.length > 0 && id.protocols.length > 0, `id: ${JSON.stringify(id)}`)
report.id = { id: id.id.toString(), agent: id.agentVersion }
report.version = (await ipfs.version()).version

// swarm and routing, with the peer already connected
const peersNow = async () => (await ipfs.swarm.peers()).map((p) => p.peer.toString())
report.swarm_peers = await peersNow()
report.findprovs = []
for (const start = Date.now(); !report.findprovs.includes(provider);) {
  check(Date.now() - start < FIND_TIMEOUT_MS, `routing.findProvs never found ${provider}`)
  for await (const event of ipfs.routing.findProvs(CID.parse(provided))) {
    if (event.name === 'PROVIDER') {
      report.findprovs.push(...event.providers.map((p) => p.id.toString()))
    }
  }
  await sleep(200)
}
await all(ipfs.routing.provide(hello.cid))
await ipfs.swarm.disconnect(peerAddr)
// The connection closes after the answer: wait for it to go.
const peerId = peerAddr.split('/p2p/')[1]
for (const start = Date.now(); (await peersNow()).includes(peerId);) {
  if (Date.now() - start > DISCONNECT_TIMEOUT_MS) break
  await sleep(50)
}
report.swarm_peers_disconnected = await peersNow()
await ipfs.swarm.connect(peerAddr)
report.swarm_peers_connected = await peersNow()

// repo stat, gc (the block put unpinned is collected)
const repo = await ipfs.repo.stat()
check(repo.numObjects > 0n && typeof repo.repoPath === 'string', `repo.stat: ${repo.numObjects}`)
const collectable = await ipfs.block.put(text.encode('collect me'))
report.gc_removed = (await all(ipfs.repo.gc())).map(r => r.err ? `error: ${r.err}` : r.cid?.toString() ?? null)
report.gc_expected = collectable.toString()
report.gc_collected = (await failure('block.stat after gc',
  () => ipfs.block.stat(collectable, { offline: true })))

// pubsub: the peer is subscribed to the topic; the client subscribes, sees itself and the
// peer on it, publishes, and gets its own message back as Kubo delivers it.
const topic = 'stargate-uploads'
const received = []
await ipfs.pubsub.subscribe(topic, (m) => received.push(m))
report.pubsub_ls = await ipfs.pubsub.ls()
for (const start = Date.now(); !(await ipfs.pubsub.peers(topic)).includes(peerId);) {
  if (Date.now() - start > PUBSUB_TIMEOUT_MS) break
  await sleep(50)
}
report.pubsub_peers = await ipfs.pubsub.peers(topic)
const announcement = text.encode('{"cid":"bafkqaaa","type":"test","metadata":{}}')
await ipfs.pubsub.publish(topic, announcement)
for (const start = Date.now(); received.length === 0;) {
  if (Date.now() - start > PUBSUB_TIMEOUT_MS) break
  await sleep(50)
}
check(received.length === 1, `pubsub.subscribe got ${received.length} messages`)
const own = received[0]
check(own.type === 'signed' && typeof own.sequenceNumber === 'bigint', `pubsub message: ${own.type}`)
check(same(own.data, announcement), 'pubsub message data')
report.pubsub_message = { from: own.from.toString(), topic: own.topic, data: new TextDecoder().decode(own.data) }
await ipfs.pubsub.unsubscribe(topic)

// dag put (dag-cbor by default, dag-json, dag-json text read by the node), get (whole and by
// path), export, import; CIDs checked against the reference codecs' encodings here.
const cidOf = async (codec, value) =>
  CID.createV1(codec.code, await sha256.digest(codec.encode(value)))
const doc = { name: 'stargate', list: [1, 2, { deep: true }], link: hello.cid, bytes: text.encode('hi') }
const putCbor = await ipfs.dag.put(doc)
check(putCbor.equals(await cidOf(dagCBOR, doc)), `dag.put: ${putCbor}`)
const putJson = await ipfs.dag.put(doc, { storeCodec: 'dag-json' })
check(putJson.equals(await cidOf(dagJSON, doc)), `dag.put dag-json: ${putJson}`)
// The same document as dag-json text, re-encoded by the node into dag-cbor: the same block.
const fromText = await ipfs.dag.put(dagJSON.encode(doc), { inputCodec: 'dag-json', storeCodec: 'dag-cbor', pin: true })
check(fromText.equals(putCbor), `dag.put of dag-json text stored as dag-cbor: ${fromText} is ${putCbor}`)
report.dag_put = { cbor: putCbor.toString(), json: putJson.toString(), from_text: fromText.toString() }
const got = await ipfs.dag.get(putCbor)
check(got.value.name === 'stargate' && got.value.link.equals(hello.cid) && same(got.value.bytes, doc.bytes),
  `dag.get: ${JSON.stringify(got.value)}`)
check((await ipfs.dag.get(putCbor, { path: 'list/2/deep' })).value === true, 'dag.get with a path')
const parent = await ipfs.dag.put({ child: putCbor })
check((await ipfs.dag.get(parent, { path: 'child/name' })).value === 'stargate', 'dag.get through a link')
// dag resolve: the last block a path reaches and the rest of the path inside it.
const throughLink = await ipfs.dag.resolve(parent, { path: 'child/name' })
check(throughLink.cid.equals(putCbor) && throughLink.remainderPath === 'name',
  `dag.resolve through a link: ${throughLink.cid} ${throughLink.remainderPath}`)
const toLink = await ipfs.dag.resolve(`/ipfs/${parent}/child`)
check(toLink.cid.equals(putCbor) && toLink.remainderPath === '',
  `dag.resolve to a link: ${toLink.cid} ${toLink.remainderPath}`)
report.dag_resolve = { cid: throughLink.cid.toString(), rem_path: throughLink.remainderPath }
report.dag_parent = parent.toString()

// dag export of a UnixFS file (Kubo's DAG for blob.bin) and of the dag-cbor pair, read back here.
const readCar = async (bytes) => {
  const car = await CarReader.fromBytes(bytes)
  const blocks = []
  for await (const b of car.blocks()) {
    check(b.cid.multihash.code !== sha256.code ||
      same((await sha256.digest(b.bytes)).digest, b.cid.multihash.digest), `dag.export: block ${b.cid} verifies`)
    blocks.push(b)
  }
  return { roots: (await car.getRoots()).map(String), blocks }
}
const fileCar = concat(await all(ipfs.dag.export(CID.parse(file))))
const fileBlocks = await readCar(fileCar)
report.dag_export_file = { roots: fileBlocks.roots, blocks: fileBlocks.blocks.map((b) => b.cid.toString()) }
report.dag_export_file_car = Buffer.from(fileCar).toString('base64')
const pairCar = await readCar(concat(await all(ipfs.dag.export(parent))))
report.dag_export_pair = { roots: pairCar.roots, blocks: pairCar.blocks.map((b) => b.cid.toString()) }

// dag import: a CAR made here of blocks the node does not have, its root pinned as Kubo pins
// it; a CAR whose root is missing says why it was not pinned.
const fresh = { made: 'by the client', at: 1 }
const freshBytes = dagCBOR.encode(fresh)
const freshCid = CID.createV1(dagCBOR.code, await sha256.digest(freshBytes))
const makeCar = async (roots, blocks) => {
  const { writer, out } = CarWriter.create(roots)
  const bytes = all(out)
  for (const b of blocks) await writer.put(b)
  await writer.close()
  return concat(await bytes)
}
const imported = await all(ipfs.dag.import([await makeCar([freshCid], [{ cid: freshCid, bytes: freshBytes }])]))
check(imported.length === 1 && imported[0].root.cid.equals(freshCid) && imported[0].root.pinErrorMsg === '',
  `dag.import: ${JSON.stringify(imported)}`)
const freshPins = await all(ipfs.pin.ls({ paths: [freshCid] }))
check(freshPins.length === 1 && freshPins[0].type === 'recursive', 'dag.import pinned the root')
check((await ipfs.dag.get(freshCid)).value.made === 'by the client', 'dag.get of an imported block')
const missing = CID.createV1(dagCBOR.code, await sha256.digest(dagCBOR.encode({ never: 'stored' })))
const orphan = await all(ipfs.dag.import([await makeCar([missing], [])]))
check(orphan.length === 1 && orphan[0].root.pinErrorMsg !== '', `dag.import of a missing root: ${JSON.stringify(orphan)}`)
report.dag_import_missing = orphan[0].root.pinErrorMsg
const unpinnedImport = await all(ipfs.dag.import([await makeCar([freshCid], [])], { pinRoots: false }))
check(unpinnedImport.length === 0, `dag.import without pin-roots: ${JSON.stringify(unpinnedImport)}`)

// block put with every option: mhlen, pin, allow-big-block.
const pinnedBlock = await ipfs.block.put(text.encode('pinned block'), { mhtype: 'sha2-256', mhlen: 32, pin: true })
check((await all(ipfs.pin.ls({ paths: [pinnedBlock] })))[0].type === 'recursive', 'block.put pin')
const big = new Uint8Array(1536 * 1024).fill(7)
report.block_put_big = await failure('block.put of a 1.5 MiB block', () => ipfs.block.put(big))
const bigCid = await ipfs.block.put(big, { allowBigBlock: true })
check(bigCid.equals(CID.createV1(raw.code, await sha256.digest(big))), `block.put allowBigBlock: ${bigCid}`)

// Bad input: Kubo's error shape, and nothing stored.
const before = (await ipfs.repo.stat()).numObjects
report.bad_input = {
  dag_put_malformed: await failure('dag.put of malformed dag-json',
    () => ipfs.dag.put(text.encode('{"a":'), { inputCodec: 'dag-json' })),
  dag_put_unknown_codec: await failure('dag.put with an unknown codec',
    () => ipfs.dag.put(text.encode('{}'), { inputCodec: 'dag-json', storeCodec: 'no-such-codec' })),
  dag_put_big: await failure('dag.put over the block limit',
    () => ipfs.dag.put({ big: new Uint8Array(1536 * 1024) })),
  dag_export_malformed_cid: await failure('dag.export of a malformed CID',
    () => all(ipfs.dag.export('not-a-cid'))),
  dag_import_malformed: await failure('dag.import of bytes that are no CAR',
    () => all(ipfs.dag.import([text.encode('no car here')])))
}
check((await ipfs.repo.stat()).numObjects === before, 'bad input stored nothing')

// config (read-only: the keys clients read), key list (the node's own key), stats repo.
report.config = {
  api: await ipfs.config.get('Addresses.API'),
  gateway: await ipfs.config.get('Addresses.Gateway'),
  swarm: await ipfs.config.get('Addresses.Swarm'),
  peer_id: await ipfs.config.get('Identity.PeerID')
}
const wholeConfig = await ipfs.config.getAll()
check(wholeConfig.Identity.PeerID === report.config.peer_id && wholeConfig.Addresses.API === report.config.api,
  `config.getAll: ${JSON.stringify(wholeConfig)}`)
report.config_set = await failure('config.set', () => ipfs.config.set('Addresses.API', '/ip4/127.0.0.1/tcp/1'))
report.config_unknown = await failure('config.get of an unknown key', () => ipfs.config.get('No.Such.Key'))
report.key_list = (await ipfs.key.list()).map((k) => ({ name: k.name, id: k.id }))
const statsRepo = await ipfs.stats.repo()
check(statsRepo.numObjects === (await ipfs.repo.stat()).numObjects && typeof statsRepo.repoPath === 'string',
  `stats.repo: ${statsRepo.numObjects}`)
// stats bw: the bytes over the peer connections (the Kubo peer's), once and then polled.
const [bw] = await all(ipfs.stats.bw())
check(typeof bw.totalIn === 'bigint' && bw.totalIn > 0n && bw.totalOut > 0n &&
  typeof bw.rateIn === 'number' && typeof bw.rateOut === 'number', `stats.bw: ${bw.totalIn} ${bw.totalOut}`)
const polled = []
for await (const stats of ipfs.stats.bw({ poll: true, interval: '200ms' })) {
  polled.push(stats)
  if (polled.length === 3) break
}
check(polled[2].totalIn >= polled[0].totalIn && polled[0].totalIn >= bw.totalIn,
  `stats.bw poll: ${polled.map((s) => s.totalIn).join(' ')}`)
report.stats_bw = { polled: polled.length, total_in: Number(polled[2].totalIn) }

// Commands this node does not have: Kubo's 404 naming the command.
report.unknown = {
  bitswap_stat: await failure('bitswap.stat', () => ipfs.bitswap.stat()),
  files_ls: await failure('files.ls', () => all(ipfs.files.ls('/'))),
  key_gen: await failure('key.gen', () => ipfs.key.gen('other')),
  name_resolve: await failure('name.resolve', () => all(ipfs.name.resolve('k51')))
}

console.log(JSON.stringify(report))

// Calls a Stargate daemon that asks for credentials with npm kubo-rpc-client, as its users pass
// them (`create({ url, headers: { authorization } })`), and prints one JSON report: for each
// credential (none, or the Authorization value given), what `add`, `cat` of a stored file and
// `pin.add` of it did: "ok" or the client's error message.
//
//   node auth.mjs <api url> <CID of a stored file> [<authorization header value> ...]

import { create } from 'kubo-rpc-client'

const [api, stored, ...credentials] = process.argv.slice(2)
if (stored === undefined) {
  console.error('usage: auth.mjs <api url> <CID of a stored file> [<authorization header value> ...]')
  process.exit(2)
}

async function outcome (call) {
  try {
    await call()
    return 'ok'
  } catch (e) {
    return String(e.message)
  }
}

const report = {}
for (const authorization of ['', ...credentials]) {
  const ipfs = create(authorization === '' ? { url: api } : { url: api, headers: { authorization } })
  const calls = {}
  calls.add = await outcome(async () => {
    await ipfs.add(new TextEncoder().encode(`auth check ${authorization}`))
  })
  calls.cat = await outcome(async () => {
    for await (const _ of ipfs.cat(stored)) { /* drain */ }
  })
  calls.pin = await outcome(async () => { await ipfs.pin.add(stored) })
  report[authorization === '' ? 'none' : authorization] = calls
}
console.log(JSON.stringify(report))

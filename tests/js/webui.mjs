// Opens a Stargate daemon's status page (/webui) in Debian's chromium driven by npm
// playwright-core, checks what it shows, makes a second announced upload through the API and
// waits for the page to show it without a reload, then saves a screenshot. Prints one JSON
// report on success; any failed check exits non-zero with the reason.
//
//   node webui.mjs '<json>'   with the fields
//     url            the page (http://127.0.0.1:<api port>/webui)
//     api            the API's base URL, for the second upload
//     api_key        the API key the upload needs
//     self           the node's peer ID
//     peer           a connected peer's ID
//     topic          the mirror topic
//     cid            an upload of this node, announced, mirrored by `peer` and anchored
//     anchored       the same CID as the anchors list it (CIDv1)
//     txid           the anchor transaction of `cid`
//     confirmations  its confirmations, as `anchor status` counts them
//     screenshot     where to save the PNG

import { chromium } from 'playwright-core'

const CHROMIUM = '/usr/bin/chromium'
const TIMEOUT = 30_000

const want = JSON.parse(process.argv[2] ?? '{}')
for (const key of ['url', 'api', 'api_key', 'self', 'peer', 'topic', 'cid', 'anchored', 'txid', 'confirmations', 'screenshot']) {
  if (want[key] === undefined) {
    console.error(`webui.mjs: missing field ${key}`)
    process.exit(2)
  }
}

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

function check (ok, what) {
  if (!ok) throw new Error(what)
}

// The second upload, as a backend makes one: `add` with `announce`.
async function upload () {
  const form = new FormData()
  form.append('file', new Blob([`second upload ${Date.now()} ${Math.random()}`]), 'second.txt')
  const res = await fetch(`${want.api}/api/v0/add?announce=contract&cid-version=1`, {
    method: 'POST',
    headers: { authorization: `Bearer ${want.api_key}` },
    body: form
  })
  const text = await res.text()
  check(res.ok, `second upload: HTTP ${res.status} ${text}`)
  return JSON.parse(text.trim().split('\n').pop()).Hash
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Root in a container has no user namespaces for chromium's sandbox.
  args: process.getuid?.() === 0 ? ['--no-sandbox'] : []
})
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.setDefaultTimeout(TIMEOUT)
  const origin = new URL(want.url).origin
  const problems = []
  const elsewhere = []
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()) })
  page.on('pageerror', (e) => problems.push(String(e)))
  page.on('request', (r) => { if (!r.url().startsWith(origin)) elsewhere.push(r.url()) })

  const res = await page.goto(want.url)
  check(res.status() === 200, `GET ${want.url}: ${res.status()}`)

  // Identity and peers.
  check((await page.textContent('#peer-id')).trim() === want.self, 'the peer ID is not shown')
  await page.locator('#peers td', { hasText: want.peer }).first().waitFor()

  // The upload under the mirror topic, recorded as this node's.
  const topic = page.locator('#mirror .topic').filter({
    has: page.locator('.topic-name', { hasText: new RegExp(`^${escape(want.topic)}$`) })
  })
  const row = topic.locator('table.records tr', { hasText: want.cid })
  await row.waitFor()
  const cells = await row.locator('td').allTextContents()
  check(cells.includes('this node') && cells.includes('stored'), `upload row: ${cells}`)

  // The anchor with its confirmations.
  const batch = page.locator('#anchors table.batches tr', { hasText: want.anchored })
  await batch.waitFor()
  check((await batch.textContent()).includes(want.txid), 'the anchor transaction is not shown')
  const confirmations = (await batch.locator('td.confirmations').textContent()).trim()
  check(confirmations === String(want.confirmations),
    `confirmations: page ${confirmations}, anchor status ${want.confirmations}`)
  check(Number(await page.textContent('#store-blocks')) > 0, 'the store shows no blocks')

  // A live update: a new upload appears without a reload.
  await page.evaluate(() => { window.stillTheSamePage = true })
  const second = await upload()
  await topic.locator('table.records tr', { hasText: second }).waitFor()
  check(await page.evaluate(() => window.stillTheSamePage === true), 'the page was reloaded')
  check((await page.textContent('#live')).startsWith('updating'), 'the page says it is not updating')

  await page.screenshot({ path: want.screenshot, fullPage: true })
  check(problems.length === 0, `errors in the page: ${problems.join('; ')}`)
  check(elsewhere.length === 0, `requests beyond the node: ${elsewhere.join(' ')}`)
  console.log(JSON.stringify({ second, confirmations: Number(confirmations) }))
} finally {
  await browser.close()
}

#!/usr/bin/env node
// Starts a bcoin 1.0.2 full node for Stargate's regtest tests.
//
// bcoin 1.0.2 predates Node 20 and leveldown 5, so this launcher adapts it before anything loads:
// - bdb passes `gt/gte/lt/lte: null` in every iterator's options; leveldown 5 serialises null as a
//   bound, so every range scan would return nothing. The null keys are dropped here.
// - The default network is set to regtest before the node (and the wallet plugin, if enabled)
//   reads it, so objects created without an explicit network agree with the chain.
// - Regtest gets Bitcoin Core's address and key prefixes (bcrt1, m/n, 2, WIF 0xef, tpub/tprv), so
//   addresses produced by rust-bitcoin for `Network::Regtest` are accepted over RPC.
// - The node never listens for or dials peers (`listen: false`, no seeds): a regtest node on
//   loopback has no business on the network, and listening makes bcoin look up its public address.
//
// Every other option comes from the command line in bcoin's own syntax, e.g.
//   node launcher.js --prefix=DIR --http-port=18443 --api-key=KEY
'use strict';

const path = require('path');
const modules = path.join(__dirname, 'node_modules');

const LevelDOWN = require(path.join(modules, 'leveldown'));
const iterator = LevelDOWN.prototype.iterator;
LevelDOWN.prototype.iterator = function (options) {
  if (options) {
    for (const key of ['gt', 'gte', 'lt', 'lte']) {
      if (options[key] == null)
        delete options[key];
    }
  }
  return iterator.call(this, options);
};

const Network = require(path.join(modules, 'bcoin/lib/protocol/network'));
const networks = require(path.join(modules, 'bcoin/lib/protocol/networks'));
Object.assign(networks.regtest.keyPrefix, {
  privkey: 0xef,
  xpubkey: 0x043587cf,
  xprivkey: 0x04358394,
  xpubkey58: 'tpub',
  xprivkey58: 'tprv'
});
Object.assign(networks.regtest.addressPrefix, {
  pubkeyhash: 0x6f,
  scripthash: 0xc4,
  witnesspubkeyhash: 0x6f, // unused by bech32 addresses; kept distinct from mainnet
  witnessscripthash: 0xc4,
  bech32: 'bcrt'
});
networks.regtest.seeds = [];
Network.set('regtest');

const FullNode = require(path.join(modules, 'bcoin/lib/node/fullnode'));

const node = new FullNode({
  network: 'regtest',
  config: true,
  argv: true,
  env: false,
  logFile: true,
  logConsole: true,
  logLevel: 'info',
  memory: false,
  workers: false,
  listen: false,
  selfish: true,
  httpHost: '127.0.0.1',
  indexTX: true,
  loader: require
});

if (node.config.bool('wallet', false) && !node.has('walletdb'))
  node.use(require(path.join(modules, 'bcoin/lib/wallet/plugin')));

const stop = async () => {
  try {
    await node.close();
  } finally {
    process.exit(0);
  }
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('unhandledRejection', (err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});

(async () => {
  await node.ensure();
  await node.open();
  await node.connect();
  node.startSync();
  console.log(`bcoin regtest ready: height=${node.chain.height}`);
})().catch((err) => {
  console.error(err.stack);
  process.exit(1);
});

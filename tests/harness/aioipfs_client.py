"""Drives a Stargate daemon's RPC API with PyPI aioipfs, every command the node serves called as
the library's users call it, and prints what came back as one JSON report on stdout. Checks
that need only the client (a shape it parses, bytes read back) fail here, naming the call; the
Rust test (tests/tests/clients.rs) compares the report with Kubo.

    python aioipfs_client.py <api multiaddr> <fixtures dir> <peer multiaddr> <cid> <provider id>

The fixtures dir holds `blob.bin` and the directory `tree`; the peer (a Kubo node on loopback,
its multiaddr ending in /p2p/<id>) is connected to the daemon, and so is the provider of the CID.
"""

import asyncio
import base64
import io
import json
import os
import sys
import tarfile
import tempfile
import time

import aiohttp
import aioipfs

# How long the provider record may take to be found.
FIND_TIMEOUT = 60.0
# How long a disconnected peer may stay listed.
DISCONNECT_TIMEOUT = 10.0


def check(ok, what):
    if not ok:
        raise AssertionError(f"check failed: {what}")


async def collect(agen):
    return [x async for x in agen]


async def failure(what, call):
    """The error a call ends with (a call that succeeds fails the run)."""
    try:
        await call()
    except aioipfs.EndpointNotFoundError as e:
        return {"kind": "endpoint not found", "message": str(e)}
    except aioipfs.APIError as e:
        return {"kind": "api error", "message": e.message, "status": e.http_status}
    raise AssertionError(f"{what} succeeded; it should have failed")


def added(entry):
    return {"path": entry["Name"], "cid": entry["Hash"], "size": entry["Size"]}


async def run(api, fixtures, peer_addr, provided, provider):
    report = {"aiohttp": aiohttp.__version__}
    client = aioipfs.AsyncIPFS(maddr=api)
    try:
        core = client.core
        # add: bytes, a string and JSON (parts without a file name: named by their CID), a file
        # and a directory (recursive).
        hello = await core.add_bytes(b"hello")
        check(hello["Name"] == hello["Hash"], f"add_bytes is named by its CID: {hello}")
        report["add_bytes"] = added(hello)
        report["add_str"] = added(await core.add_str("hello"))
        document = {"stargate": [1, 2, 3]}
        report["add_json"] = added(await core.add_json(document))
        # What aioipfs sent (aiohttp's JsonPayload), for the Rust side to add with Kubo.
        report["json_bytes"] = json.dumps(document)
        blob_path = os.path.join(fixtures, "blob.bin")
        report["add_file"] = [added(e) for e in await collect(core.add(blob_path))]
        tree = os.path.join(fixtures, "tree")
        report["add_dir"] = [added(e) for e in await collect(core.add(tree, recursive=True))]
        report["add_options"] = {
            "cid_version_1": [added(e) for e in await collect(core.add(blob_path, cid_version=1))],
            "only_hash": [added(e) for e in await collect(core.add(blob_path, only_hash=True, raw_leaves=True))],
            "wrapped": [added(e) for e in await collect(core.add(blob_path, wrap_with_directory=True, pin=False))],
        }

        # cat, get, ls
        with open(blob_path, "rb") as f:
            blob = f.read()
        file_cid = report["add_file"][-1]["cid"]
        check(await core.cat(file_cid) == blob, "cat gives the bytes added")
        check(await core.cat(file_cid, offset=1000, length=10) == blob[1000:1010], "cat with offset and length")
        root = report["add_dir"][-1]["cid"]
        with tempfile.TemporaryDirectory() as out:
            check(await core.get(root, dstdir=out), "get extracts the tar")
            with open(os.path.join(out, root, "sub", "c.txt"), "rb") as got, \
                    open(os.path.join(tree, "sub", "c.txt"), "rb") as want:
                check(got.read() == want.read(), "get: a file of the directory")
        listing = await core.ls(root)
        links = listing["Objects"][0]["Links"]
        report["ls"] = [{"name": l["Name"], "cid": l["Hash"], "size": l["Size"], "type": l["Type"]} for l in links]
        streamed = await collect(core.ls_streamed(root))
        report["ls_stream"] = [o["Objects"][0]["Links"][0]["Name"] for o in streamed]

        # dag put (a dag-json file, stored as dag-cbor and as dag-json), get (dag-json, a path,
        # dag-cbor bytes), stat, export, import.
        document = {"name": "stargate", "list": [1, 2, {"deep": True}], "link": {"/": hello["Hash"]}}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(document, f)
        try:
            put_cbor = await client.dag.put(f.name)
            put_json = await client.dag.put(f.name, store_codec="dag-json", pin=False)
        finally:
            os.unlink(f.name)
        report["dag_put"] = {"cbor": put_cbor["Cid"]["/"], "json": put_json["Cid"]["/"]}
        cbor_cid = put_cbor["Cid"]["/"]
        report["dag_get"] = await client.dag.get(cbor_cid)
        report["dag_get_path"] = await client.dag.get(f"{cbor_cid}/list/2")
        report["dag_get_link"] = await client.dag.get(f"{cbor_cid}/link")
        report["dag_stat"] = await collect(client.dag.stat(root))
        car = await client.dag.export(root)
        report["dag_export"] = base64.b64encode(car).decode()
        report["dag_import"] = await client.dag.car_import(car, stats=False)
        report["dag_get_bad"] = await failure("dag.get of a malformed CID", lambda: client.dag.get("not-a-cid"))

        # block put, get, stat, rm
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(b"a block of bytes")
        try:
            put = await client.block.put(f.name)
            put512 = await client.block.put(f.name, mhtype="sha2-512", pin=False)
        finally:
            os.unlink(f.name)
        report["block_put"] = put
        report["block_put_sha512"] = put512
        check(await client.block.get(put["Key"]) == b"a block of bytes", "block.get gives the bytes put")
        stat = await client.block.stat(put["Key"])
        check(stat == {"Key": put["Key"], "Size": 16}, f"block.stat: {stat}")
        report["block_rm_pinned"] = await client.block.rm(put["Key"])
        await client.pin.rm(put["Key"])
        report["block_rm"] = await client.block.rm(put["Key"])
        report["block_rm_missing"] = await client.block.rm(put["Key"])

        # pin add, ls, rm
        unpinned = report["add_options"]["wrapped"][-1]["cid"]
        pinned = await collect(client.pin.add(unpinned))
        check(pinned[-1]["Pins"] == [unpinned], f"pin.add: {pinned}")
        listed = await client.pin.ls(path=unpinned)
        check(listed == {"Keys": {unpinned: {"Type": "recursive", "Name": ""}}}, f"pin.ls: {listed}")
        everything = await client.pin.ls(pintype="recursive", stream=False)
        check(unpinned in everything["Keys"], "pin.ls of recursive pins lists it")
        check(await client.pin.rm(unpinned) == {"Pins": [unpinned]}, "pin.rm")
        report["pin_ls_unpinned"] = await failure("pin.ls of an unpinned path", lambda: client.pin.ls(path=unpinned))

        # id, version
        ident = await core.id()
        check(ident["Addresses"] and ident["Protocols"], f"id: {ident}")
        report["id"] = ident["ID"]
        report["version"] = (await core.version())["Version"]

        # swarm and routing, with the peer already connected
        async def peers_now():
            return [p["Peer"] for p in (await client.swarm.peers())["Peers"] or []]

        report["swarm_peers"] = await peers_now()
        # aioipfs asks for verbose peers: Kubo's identify of each.
        report["swarm_identify"] = {p["Peer"]: p["Identify"] for p in (await client.swarm.peers())["Peers"]}
        report["findprovs"] = []
        start = time.monotonic()
        while provider not in report["findprovs"]:
            check(time.monotonic() - start < FIND_TIMEOUT, f"routing.findprovs never found {provider}")
            async for event in client.routing.findprovs(provided):
                for response in event.get("Responses") or []:
                    report["findprovs"].append(response["ID"])
            await asyncio.sleep(0.2)
        await collect(client.routing.provide(hello["Hash"]))
        report["swarm_disconnect"] = await client.swarm.disconnect(peer_addr)
        # The connection closes after the answer: wait for it to go.
        peer_id = peer_addr.split("/p2p/")[1]
        start = time.monotonic()
        while peer_id in await peers_now() and time.monotonic() - start < DISCONNECT_TIMEOUT:
            await asyncio.sleep(0.05)
        report["swarm_peers_disconnected"] = await peers_now()
        report["swarm_connect"] = await client.swarm.connect(peer_addr)
        report["swarm_peers_connected"] = await peers_now()

        # repo stat, gc
        repo = await client.repo.stat()
        check(repo["NumObjects"] > 0 and repo["RepoPath"], f"repo.stat: {repo}")
        report["gc_removed"] = [line["Key"]["/"] for line in await collect(client.repo.gc())]
        report["gc_expected"] = put512["Key"]
        # Asked of the store alone (a stat would look for it on the network).
        report["gc_collected"] = await client.block.rm(put512["Key"])

        # key list (the node's own key), config (read-only), stats repo
        report["key_list"] = await client.key.list()
        report["config_peer_id"] = await client.config.config("Identity.PeerID")
        report["config_api"] = await client.config.config("Addresses.API")
        stats_repo = await client.stats.repo()
        check(stats_repo["NumObjects"] == (await client.repo.stat())["NumObjects"], f"stats.repo: {stats_repo}")
        # stats bw: the bytes over the peer connections (the Kubo peer's).
        bw = await client.stats.bw()
        check(bw["TotalIn"] > 0 and bw["TotalOut"] > 0 and isinstance(bw["RateIn"], float), f"stats.bw: {bw}")
        report["stats_bw"] = bw

        # Commands this node does not have: Kubo's 404.
        report["unknown"] = {
            "bitswap_stat": await failure("bitswap.stat", lambda: client.bitswap.stat()),
            "files_ls": await failure("files.ls", lambda: client.files.ls("/")),
        }
    finally:
        await client.close()
    return report


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    report = asyncio.run(run(*sys.argv[1:]))
    print(json.dumps(report))


if __name__ == "__main__":
    main()

"""The serving ceiling: the least a Python server can do for a session read, on the worker's own store.

An aiohttp server with one route, ``GET /api/v1/sessions/{id}``: one rocksdict ``get`` from the
partition store the session's key belongs to (``streams.kafka.partitioner.partition_of``, the
worker's rule), opened read-only on the worker's files (``<data dir>/store/sessions-<p>``, the
worker stopped), with the worker's block cache size; then the worker's answer: the stored state
out of its header (``stored_state``), its personal values opened (``SessionCodec.opened``: the
worker seals them in the store under each session's data key; the ceiling reads every data key
from the keys topic once at start, with the worker's master key from ``SESSIONS_MASTER_KEY``, and
keeps no consumer running), the service view (``decode_state`` -> ``encode_view``: the view drops
the private ``facts`` and ``recent_ids``, so the same body needs the decode), content type
``application/json``. A missing session is a 404 with the worker's error shape.

It runs under the worker's process tuning (``streams.control.worker.tune_process``: GC thresholds,
``gc.freeze`` after start-up, the GIL switch interval, the C heap's bounds): the runtime's
settings are not what tells the two apart. What it leaves out is what the worker does on top: faust's web layer,
the metrics middleware, the service key check, ownership routing, expiry, the open partition map.
The bench's read load runs against it exactly as against the worker (same ids, connections,
seconds); the worker's read rate is reported as a ratio to this one.

    SESSIONS_MASTER_KEY=... python ops/bench/peers/serve_ceiling.py --stores <data dir>/store \
        --partitions 12 --port 8123 --bootstrap 127.0.0.1:9092 --keys-topic <app id>-session-keys
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

from aiohttp import web
from rocksdict import AccessType, Rdict

from schemas.session import decode_state, encode_view
from streams.control.worker import tune_process
from streams.fold.codec import SessionCodec
from streams.fold.store import StoreMemory, stored_state
from streams.kafka.partitioner import partition_of
from streams.privacy.cipher import MasterKeys
from streams.privacy.keyring import KeyRing

JSON = "application/json"  # streams.web.errors.JSON, without importing the worker's web layer
NOT_FOUND = b'{"error":{"code":"session_not_found","message":"no such session","details":[]}}'


def open_stores(stores: Path, partitions: int, block_cache_bytes: int) -> list[Rdict]:
    # The worker's options (one shared block cache, bloom filters, raw mode); read-only, so the
    # files are neither written nor locked.
    options = StoreMemory(block_cache_bytes, 4 << 20, 128 << 20).options()
    return [
        Rdict(str(stores / f"sessions-{p}"), options, access_type=AccessType.read_only()) for p in range(partitions)
    ]


def data_keys(bootstrap: str, topic: str, master_key: str) -> KeyRing | None:
    """Every data key the keys topic holds now (the store is the stopped worker's: no key comes
    later), its consumers closed again; None without a master key (nothing is sealed)."""
    if not master_key:
        return None
    ring = KeyRing(bootstrap, topic, MasterKeys(master_key), "bench-serve-ceiling")
    ring.start()
    try:
        ring.catch_up(60.0)
    finally:
        ring.stop()  # what it read stays; no thread polls Kafka while the load runs
    return ring


def make_app(dbs: list[Rdict], codec: SessionCodec) -> web.Application:
    count = len(dbs)
    opened = codec.opened

    async def read(request: web.Request) -> web.Response:
        key = request.match_info["session_id"].encode()
        raw = dbs[partition_of(key, count)].get(key)
        if raw is None:
            return web.Response(status=404, body=NOT_FOUND, content_type=JSON)
        return web.Response(body=encode_view(decode_state(opened(stored_state(raw)))), content_type=JSON)

    app = web.Application()
    app.router.add_get("/api/v1/sessions/{session_id}", read)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=Path, required=True, help="the worker's <data dir>/store folder")
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", default="", help="the broker, for the keys topic")
    parser.add_argument("--keys-topic", default="", help="the worker's <app id>-session-keys")
    parser.add_argument("--block-cache-bytes", type=int, default=64 << 20, help="the worker's block cache")
    parser.add_argument("--timeout", type=float, default=600.0, help="exit after this many seconds")
    args = parser.parse_args()
    # A safety net: the harness stops it, but never leave a server behind.
    safety_net = threading.Timer(args.timeout, os._exit, args=(3,))
    safety_net.daemon = True
    safety_net.start()
    dbs = open_stores(args.stores, args.partitions, args.block_cache_bytes)
    # The master key comes from the environment, as the worker's does: never on a command line.
    codec = SessionCodec(data_keys(args.bootstrap, args.keys_topic, os.environ.get("SESSIONS_MASTER_KEY", "")))
    tune_process()  # as the worker does once it has started (its collector settings, start-up frozen)
    web.run_app(make_app(dbs, codec), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

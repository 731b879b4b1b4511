"""A partition store damaged on disk (a machine crash, a bad disk): detected when the worker opens
it, moved aside for inspection, rebuilt from the changelog, logged and counted; reads serve what
the changelog holds, never garbage. Real damage to real RocksDB files: a truncated SST, a missing
MANIFEST."""

from __future__ import annotations

import pytest
from rocksdict import Options, Rdict

from streams.devkit.events import page_view
from tests.support.cluster import parse_metrics, session_in
from tests.support.http import http_client, http_get
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration

PARTITIONS = 2


def test_damaged_stores_are_moved_aside_and_rebuilt_from_the_changelog(worker_factory):
    worker = worker_factory("w1", PARTITIONS).start()
    sids = [session_in(p, PARTITIONS) for p in range(PARTITIONS) for _ in range(20)]
    with http_client(base_url=worker.url, timeout=15, headers=worker.service_headers) as service:
        for n, sid in enumerate(sids):
            assert (
                service.post("/api/events", json=page_view(sid, f"https://shop.example/?n={n}", n)).status_code == 202
            )
        expected = {sid: wait_for_session(service, sid, public_has("n"))[0] for sid in sids}
    assert worker.stop() == 0

    stores = {p: next(worker.data_dir.rglob(f"sessions-{p}")) for p in range(PARTITIONS)}
    # Partition 0: its data in an SST (flushed), then the SST cut in half.
    options = Options(raw_mode=True)
    db = Rdict(str(stores[0]), options)
    db.flush()
    db.close()
    [sst] = sorted(stores[0].glob("*.sst"))[-1:]
    sst.write_bytes(sst.read_bytes()[: sst.stat().st_size // 2])
    # Partition 1: the MANIFEST gone, as after a crash before the folder was synced.
    for manifest in stores[1].glob("MANIFEST-*"):
        manifest.unlink()

    worker.start()
    with http_client(base_url=worker.url, timeout=15, headers=worker.service_headers) as service:
        for sid in sids:
            assert service.get(f"/api/v1/sessions/{sid}").json() == expected[sid]
        families = parse_metrics(http_get(f"{worker.url}/metrics", timeout=10).text)
    [(_, _, damaged)] = families["sessions_damaged_stores"]
    assert damaged == 2
    for partition, store in stores.items():
        assert list(store.parent.glob(f"{store.name}.damaged-*")), f"partition {partition}'s store was not kept"
    log = worker.log_path.read_text()
    assert log.count("is damaged") == 2 and "rebuilt from the changelog" in log
    assert worker.stop() == 0

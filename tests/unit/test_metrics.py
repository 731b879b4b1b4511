"""The metric names and labels (a registry per engine), the batch step's counts by event type, the
route label of a request, and the JSON log lines."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.config.settings import Settings, SettingsError
from streams.devkit.events import new_session_id, page_view, public_set
from streams.devkit.paths import sample_rules
from streams.fold.batch import fold_batch
from streams.observability.logs import MASK, JsonFormatter
from streams.observability.metrics import UNDECODED, UNMATCHED, Metrics
from streams.web.metrics import route_of

pytestmark = pytest.mark.unit

EXPECTED_FAMILIES = {
    "sessions_events_folded": ("counter", {"type"}),
    "sessions_dead_letters": ("counter", {"type"}),
    "sessions_records_skipped": ("counter", set()),
    "sessions_fold_batch_size": ("histogram", set()),
    "sessions_fold_batch_duration_seconds": ("histogram", set()),
    "sessions_http_requests": ("counter", {"route", "method", "status"}),
    "sessions_http_request_duration_seconds": ("histogram", {"route", "method"}),
    "sessions_forwarded_requests": ("counter", {"route", "status"}),
    "sessions_consumer_lag": ("gauge", {"partition"}),
    "sessions_changelog_restored_records": ("counter", {"partition"}),
    "sessions_partition_restoring": ("gauge", {"partition"}),
    "sessions_owned_partitions": ("gauge", set()),
    "sessions_standby_partitions": ("gauge", set()),
    "sessions_standby_lag": ("gauge", {"partition"}),
    "sessions_damaged_stores": ("counter", set()),
    "sessions_moved_records": ("counter", set()),
    "sessions_data_folder_full": ("gauge", set()),
    "sessions_data_folder_full_incidents": ("counter", set()),
}


class FakeFold:
    serving = frozenset({0, 2})
    restoring = frozenset({3})
    restored_by_partition = {0: 10, 3: 5}

    standby = frozenset({1, 4})
    moved_records = 9
    out_of_space = True
    full_incidents = 2

    def lag(self) -> dict[int, int]:
        return {0: 0, 2: 7}

    def standby_lag(self) -> dict[int, int]:
        return {1: 0, 4: 12}


def families(metrics: Metrics) -> dict:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(found: dict, name: str, **labels: str) -> float:
    family = found[name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")]
    return sum(s.value for s in family.samples if s.name == name and labels.items() <= s.labels.items())


def test_every_metric_has_its_name_type_and_labels():
    metrics = Metrics()
    metrics.watch_fold(FakeFold())
    metrics.batch({"navigation.page_viewed": 3}, {"": 1, "session.public_set": 2}, 6, 1, 0.01)
    metrics.request("/api/v1/sessions/{session_id}", "GET", 200, 0.002)
    metrics.forwarded_request("/api/sessions", 201)
    metrics.forwarded_request("/api/sessions", "unreachable")
    metrics.forwarded_request("/api/v1/sessions/{session_id}", "timeout")
    found = families(metrics)
    assert set(found) == set(EXPECTED_FAMILIES)
    for name, (kind, labels) in EXPECTED_FAMILIES.items():
        assert found[name].type == kind, name
        for s in found[name].samples:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
    assert sample(found, "sessions_events_folded_total", type="navigation.page_viewed") == 3
    assert sample(found, "sessions_dead_letters_total", type=UNDECODED) == 1
    assert sample(found, "sessions_dead_letters_total", type="session.public_set") == 2
    assert sample(found, "sessions_records_skipped_total") == 1
    assert sample(found, "sessions_fold_batch_size_count") == 1
    assert sample(found, "sessions_fold_batch_size_sum") == 6
    assert sample(found, "sessions_forwarded_requests_total", status="unreachable") == 1
    assert sample(found, "sessions_forwarded_requests_total", status="timeout") == 1
    assert sample(found, "sessions_consumer_lag", partition="2") == 7
    assert sample(found, "sessions_changelog_restored_records_total", partition="3") == 5
    assert sample(found, "sessions_partition_restoring", partition="3") == 1
    assert sample(found, "sessions_partition_restoring", partition="0") == 0
    assert sample(found, "sessions_owned_partitions") == 2
    assert sample(found, "sessions_standby_partitions") == 2
    assert sample(found, "sessions_standby_lag", partition="4") == 12
    assert sample(found, "sessions_moved_records_total") == 9
    assert sample(found, "sessions_data_folder_full") == 1
    assert sample(found, "sessions_data_folder_full_incidents_total") == 2


def test_each_engine_has_a_registry_of_its_own():
    first, second = Metrics(), Metrics()
    first.watch_fold(FakeFold())
    second.watch_fold(FakeFold())
    first.request("/healthz", "GET", 200, 0.001)
    assert sample(families(first), "sessions_http_requests_total") == 1
    assert sample(families(second), "sessions_http_requests_total") == 0


def test_the_batch_step_counts_folded_events_and_dead_letters_by_type():
    sid, other = new_session_id(), new_session_id()
    events = [
        page_view(sid, "https://s/?a=1", 0),
        public_set(sid, {"k": {"value": "v"}}, 1),
        page_view(other, "https://s/", 2),
    ]
    records = [(e["subject"].encode(), orjson.dumps(e), n) for n, e in enumerate(events)]
    records.append((sid.encode(), b"not json", 3))
    records.append((other.encode(), orjson.dumps(page_view(sid, "https://s/", 4)), 4))  # key is not the subject
    outcome = fold_batch(records, lambda key: None, sample_rules(), 256 * 1024)
    assert outcome.folded_by_type() == {"navigation.page_viewed": 2, "session.public_set": 1}
    assert outcome.dead_by_type() == {"": 1, "navigation.page_viewed": 1}
    assert outcome.dead[0].event_id == ""  # did not decode
    assert outcome.dead[1].event_id  # decoded: its id is known for the log


def test_the_batch_step_stays_free_of_prometheus():
    code = "import sys, streams.fold.batch\nprint('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_route_label_is_the_template_never_the_path():
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/api/v1/sessions/{session_id}", handler)
    sid = new_session_id()
    request = make_mocked_request("GET", f"/api/v1/sessions/{sid}", app=app)
    info = asyncio.run(app.router.resolve(request))
    request._match_info = info
    assert route_of(request) == "/api/v1/sessions/{session_id}"
    unmatched = make_mocked_request("GET", f"/nowhere/{sid}", app=app)
    unmatched._match_info = asyncio.run(app.router.resolve(unmatched))
    assert route_of(unmatched) == UNMATCHED


def test_json_log_lines_carry_the_ids_and_mask_secrets():
    secret = "s3cret-signing-key-0123456789abcdef"
    formatter = JsonFormatter([secret])
    record = logging.LogRecord("streams.fold.loop", logging.WARNING, __file__, 1, "dead letter %s", (secret,), None)
    record.session_id = "sid-1"
    record.event_id = "eid-1"
    line = formatter.format(record)
    entry = orjson.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "streams.fold.loop"
    assert entry["session_id"] == "sid-1" and entry["event_id"] == "eid-1"
    assert secret not in line and MASK in entry["message"]
    try:
        raise ValueError(secret)
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    entry = orjson.loads(formatter.format(failed))
    assert "ValueError" in entry["exception"] and secret not in entry["exception"]
    assert "session_id" not in entry


def test_the_log_format_setting():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"SESSIONS_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="SESSIONS_LOG_FORMAT"):
        Settings.from_env({"SESSIONS_LOG_FORMAT": "xml"})

"""Every Kafka client of the project connects with the configured security: a broker that only
takes SASL (PLAIN) on the address the worker is given serves a worker (faust's group, the fold
loop, the appender, the history reader) and `sessionctl export`; a wrong password gets nothing."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest

from streams.devkit import broker as local_broker
from streams.devkit.events import at, new_session_id, page_view
from streams.devkit.workers import WorkerProcess, make_worker
from tests.support.cli import sessionctl
from tests.support.http import http_client
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration

USER = "sessions-engine"
# What librdkafka says when the broker refuses the credentials (SASL PLAIN).
AUTHENTICATION_FAILED = re.compile(r"SASL authentication error: Authentication failed")


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A broker of its own whose second listener takes only SASL_PLAINTEXT: (that address, the password)."""
    data_dir = tmp_path_factory.mktemp("sasl-kafka")
    password = secrets.token_urlsafe(24)
    port = local_broker.free_port()
    listener = local_broker.SaslListener(port, {USER: password})
    local_broker.start(data_dir, local_broker.free_port(), quiet=True, sasl=listener)
    try:
        yield f"127.0.0.1:{port}", password
    finally:
        local_broker.stop(data_dir, quiet=True)


def sasl_env(password: str) -> dict[str, str]:
    return {
        "SESSIONS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SESSIONS_KAFKA_SASL_MECHANISM": "PLAIN",
        "SESSIONS_KAFKA_SASL_USERNAME": USER,
        "SESSIONS_KAFKA_SASL_PASSWORD": password,
    }


def test_a_worker_and_the_cli_work_over_sasl_and_a_wrong_password_gets_nothing(sasl_broker, tmp_path):
    address, password = sasl_broker
    worker: WorkerProcess = make_worker(
        address, "app-sasl", "events-sasl", tmp_path / "worker", tmp_path / "worker.log", 2, **sasl_env(password)
    )
    try:
        worker.start()
        sid = new_session_id()
        with http_client(base_url=worker.url, timeout=15, headers=worker.service_headers) as service:
            event = page_view(sid, "https://shop.example/?utm_source=sasl&marker=1", 0)
            assert service.post("/api/events", json=event).status_code == 202
            wait_for_session(service, sid, public_has("marker"))
            timeline = service.get(f"/api/v1/sessions/{sid}/events").json()["events"]
            assert [e["id"] for e in timeline] == [event["id"]]
        options = ["--from", at(-60), "--to", at(60), "--format", "jsonl", "-o", str(tmp_path / "events.jsonl")]
        sessionctl("export", *options, env=worker.env, expect=0)
        assert (tmp_path / "events.jsonl").read_text().count("\n") == 1

        wrong = {**worker.env, "SESSIONS_KAFKA_SASL_PASSWORD": password + "-wrong"}
        refused = sessionctl("export", *options, env=wrong)
        # Refused by the broker's authentication, said so: not any error (an import error, a bad option).
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert AUTHENTICATION_FAILED.search(refused.stderr), refused.stderr
        assert password not in refused.stdout + refused.stderr
        stopped = worker.stop()
    finally:
        worker.kill()
    assert stopped == 0, worker.log_tail()
    assert password not in worker.log_path.read_text(), "the SASL password reached the worker's log"

"""The local broker is a module of the package: its Maven and logging files ship beside it, and its
jar cache needs no checkout of the repository."""

from pathlib import Path

import pytest

from streams.devkit import broker
from streams.devkit.kafka import jars, layout

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_the_broker_files_ship_with_the_package():
    assert broker.POM.is_file() and broker.LOG4J.is_file()
    assert broker.POM.parent == Path(broker.__file__).resolve().parent / "broker_config"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"devkit/broker_config/*"' in pyproject  # package data: a wheel carries them too
    assert broker.kafka_version()


def test_the_cache_is_in_the_checkout_when_there_is_one(monkeypatch):
    monkeypatch.delenv("SESSIONS_KAFKA_CACHE", raising=False)
    assert jars._cache_dir() == REPO / "ops" / "kafka" / ".cache"


def test_the_cache_outside_a_checkout_is_the_users(monkeypatch, tmp_path):
    monkeypatch.delenv("SESSIONS_KAFKA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(jars, "__file__", str(tmp_path / "site-packages" / "streams" / "devkit" / "kafka" / "jars.py"))
    assert jars._cache_dir() == tmp_path / "xdg" / "session-engine" / "kafka"


def test_the_cache_can_be_named(monkeypatch, tmp_path):
    monkeypatch.setenv("SESSIONS_KAFKA_CACHE", str(tmp_path / "jars"))
    assert jars._cache_dir() == tmp_path / "jars"


def test_a_process_with_a_port_range_hands_out_its_ports_in_turn_and_skips_taken_ones(monkeypatch):
    import socket

    monkeypatch.setattr(layout, "_own_range", [])
    broker.own_port_range(31_900, 31_909)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 31_901))
        taken.listen()
        handed = [broker.free_port() for _ in range(9)]
    # Each free port of the range once (never one handed out before), the taken one skipped.
    assert handed == [31_900, *range(31_902, 31_910)]
    assert broker.free_port() == 31_900  # then round again

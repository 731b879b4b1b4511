"""The local broker is a module of the package: its Maven and logging files ship beside it, and its
jar cache needs no checkout of the repository."""

from pathlib import Path

import pytest

from streams.kafka import broker

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_the_broker_files_ship_with_the_package():
    assert broker.POM.is_file() and broker.LOG4J.is_file()
    assert broker.POM.parent == Path(broker.__file__).resolve().parent / "broker_config"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"kafka/broker_config/*"' in pyproject  # package data: a wheel carries them too
    assert broker.kafka_version()


def test_the_cache_is_in_the_checkout_when_there_is_one(monkeypatch):
    monkeypatch.delenv("SESSIONS_KAFKA_CACHE", raising=False)
    assert broker._cache_dir() == REPO / "ops" / "kafka" / ".cache"


def test_the_cache_outside_a_checkout_is_the_users(monkeypatch, tmp_path):
    monkeypatch.delenv("SESSIONS_KAFKA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(broker, "__file__", str(tmp_path / "site-packages" / "streams" / "kafka" / "broker.py"))
    assert broker._cache_dir() == tmp_path / "xdg" / "session-engine" / "kafka"


def test_the_cache_can_be_named(monkeypatch, tmp_path):
    monkeypatch.setenv("SESSIONS_KAFKA_CACHE", str(tmp_path / "jars"))
    assert broker._cache_dir() == tmp_path / "jars"

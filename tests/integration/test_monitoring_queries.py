"""ops/monitoring: every PromQL expression of the alert rules and the Grafana dashboard parses
(`promql-parser`, the Rust parser Prometheus-compatible tools use), and every metric and label it
names is one a real worker exposes on /metrics: a renamed metric or label fails here, not silently
on a dashboard at 3 a.m."""

from __future__ import annotations

import difflib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.devkit.events import new_session_id, page_view
from streams.devkit.workers import SERVICE_HEADERS
from tests.support.http import http_client
from tests.support.sessions import wait_for_session
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "ops" / "monitoring" / "alerts.yaml"
DASHBOARD = REPO / "ops" / "monitoring" / "grafana-dashboard.json"
# Grafana replaces its variables before it sends a query: the same here, with values that parse.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$instance": ".*"}
# Labels Prometheus adds to every scraped series (the target's), not the worker.
TARGET_LABELS = {"instance", "job"}
# Series suffixes by metric family type, as the text format writes them.
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum"), "untyped": ("",)}


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every alert rule and every dashboard query."""
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", grafana(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(<series selector>, <label>) is Grafana's, not PromQL: its selector is.
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable["query"]
            yield f"variable ${variable['name']}", f"count by ({match[2]}) ({match[1]})"


def grafana(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def names(node: Any) -> Iterator[tuple[str, set[str]]]:
    """(metric name, label names it is matched or grouped on) of every selector in the tree."""
    if isinstance(node, promql_parser.VectorSelector):
        matchers = node.matchers.matchers + [m for group in node.matchers.or_matchers for m in group]
        yield node.name, {m.name for m in matchers}
        return
    grouping: set[str] = set()
    modifier = getattr(node, "modifier", None) if isinstance(node, promql_parser.AggregateExpr) else None
    if modifier is not None and modifier.type == promql_parser.AggModifierType.By:
        grouping = set(modifier.labels)  # `without (...)` names labels to drop: no claim they exist
    for child in children(node):
        for name, labels in names(child):
            yield name, labels | grouping


def children(node: Any) -> list[Any]:
    kinds = {
        promql_parser.MatrixSelector: ("vector_selector",),
        promql_parser.AggregateExpr: ("expr", "param"),
        promql_parser.BinaryExpr: ("lhs", "rhs"),
        promql_parser.ParenExpr: ("expr",),
        promql_parser.UnaryExpr: ("expr",),
        promql_parser.SubqueryExpr: ("expr",),
        promql_parser.Call: (),
    }
    for kind, attributes in kinds.items():
        if isinstance(node, kind):
            found = [getattr(node, attribute) for attribute in attributes]
            if isinstance(node, promql_parser.Call):
                found = list(node.args)
            return [child for child in found if child is not None]
    return []  # literals: numbers and strings


@pytest.mark.unit
def test_every_expression_parses_and_names_a_metric():
    found = list(expressions())
    assert len(found) >= 30, found
    for where, expr in found:
        try:
            tree = promql_parser.parse(expr)
        except ValueError as exc:
            raise AssertionError(f"{where}: {exc}\n{expr}") from None
        assert [name for name, _ in names(tree) if name.startswith("sessions_")], f"{where}: no worker metric"


@pytest.mark.unit
def test_the_required_alerts_are_there():
    rules = {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    for alert, metric in {
        "SessionsLagGrowing": "sessions_consumer_lag",
        "SessionsFoldStalled": "sessions_fold_batch_size_count",
        "SessionsDeadLetters": "sessions_dead_letters_total",
        "SessionsRestoreTakingLong": "sessions_partition_restoring",
        "SessionsPartitionUnserved": "sessions_owned_partitions",
        "Sessions503Rate": "sessions_http_requests_total",
        "SessionsReadLatencyHigh": "sessions_http_request_duration_seconds_bucket",
        "SessionsDataFolderFull": "sessions_data_folder_full",
        "SessionsDamagedStores": "sessions_damaged_stores_total",
    }.items():
        assert alert in rules, alert
        assert metric in {name for name, _ in names(promql_parser.parse(rules[alert]["expr"]))}, alert
        assert rules[alert]["labels"]["severity"] in ("critical", "warning", "info")
        anchor = rules[alert]["annotations"]["runbook"].split("#")[1]
        assert anchor in runbook_anchors(), f"{alert}: docs/operations.md has no section #{anchor}"


@pytest.mark.unit
def test_the_dashboard_imports_cleanly_into_any_grafana():
    """What Grafana's import needs: the Prometheus source chosen at import (no uid of ours), one id per
    panel, one refId per query of a panel, panels on the 24-column grid without overlapping."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        taken = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not taken & cells, f"{panel['title']!r} overlaps another panel"
        cells |= taken
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]


def runbook_anchors() -> set[str]:
    """GitHub's anchors of docs/operations.md's headings."""
    headings = re.findall(r"^#+ (.+)$", (REPO / "docs" / "operations.md").read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in headings}


def exposed(text: str) -> dict[str, set[str] | None]:
    """Series name -> its label names, from a /metrics answer; None for a labelled family with no
    child yet (no sample: its series names come from its TYPE line, its labels are not known)."""
    series: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES[family.type]:
            series.setdefault(family.name + suffix, None)
        for sample in family.samples:
            series[sample.name] = (series.get(sample.name) or set()) | set(sample.labels)
    return series


def test_every_metric_and_label_queried_is_on_a_real_workers_metrics(worker_factory, kafka_bootstrap):
    worker = worker_factory("monitoring")
    worker.start()
    with http_client(base_url=worker.url, timeout=10.0, headers=SERVICE_HEADERS) as client:
        # Traffic that gives the labelled families their first series: an event folded, reads,
        # a record that is no event (a dead letter).
        sid = new_session_id()
        assert client.post("/api/events", json=[page_view(sid, "https://shop.example/?a=1", 0)]).status_code == 202
        wait_for_session(client, sid, 1)
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(worker.env["SESSIONS_EVENTS_TOPIC"], key=str(uuid.uuid4()).encode(), value=b"not an event")
        assert producer.flush(10) == 0

        def dead_letter_counted() -> dict[str, set[str] | None] | None:
            response = client.get("/metrics")
            assert response.status_code == 200
            series = exposed(response.text)
            return series if "type" in (series.get("sessions_dead_letters_total") or set()) else None

        series = wait_for("the dead letter counted on /metrics", dead_letter_counted, timeout=30)
    problems = []
    for where, expr in expressions():
        for name, labels in names(promql_parser.parse(expr)):
            if name not in series:
                close = difflib.get_close_matches(name, sorted(series), n=1)
                problems.append(f"{where}: {name} is not exposed" + (f" (did you mean {close[0]}?)" if close else ""))
                continue
            known = series[name]
            # "le" is the bucket label every _bucket series has; a family without a sample yet
            # (forwarded requests, with one worker) is checked by name only.
            unknown = labels - known - TARGET_LABELS - {"le"} if known is not None else set()
            if unknown:
                problems.append(f"{where}: {name} has no label {sorted(unknown)} (it has {sorted(known or ())})")
    assert not problems, "\n".join(problems)

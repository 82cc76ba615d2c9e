"""The Grafana dashboard and the Prometheus alert rules ask for metrics the gateway really exports.

The exported names come from the gateway's own instruments through the same Prometheus exporter
its /metrics endpoint uses (a child process records one point on each and lists the families), so
a renamed instrument, or a dashboard that misspells one, fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_files import (
    DEPLOY,
    REPO,
    brackets_balance,
    in_ci,
    load_yaml,
    metric_names,
    promtool,
)

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "notify-gateway.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
# Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Queued delivery's instruments (gateway/queue/metrics.py), allowed by name only while that module
# is absent; once it is there, its real export is what counts.
QUEUE_METRICS = {
    "notify_queue_depth",
    "notify_queue_oldest_age_seconds",
    "notify_queue_deliveries_total",
    "notify_queue_accept_to_final_seconds_bucket",
}

_EXPORT = r"""
import importlib, json
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Counter, Histogram, ObservableGauge, UpDownCounter
from prometheus_client import REGISTRY
from gateway.lean_metrics import LeanHistogram, LeanMeterProvider, set_meter_provider

# Installed as gateway/telemetry.py's setup_telemetry installs it.
set_meter_provider(LeanMeterProvider([PrometheusMetricReader()]))
modules = []
for name in ("gateway.telemetry", "gateway.queue.metrics"):
    try:
        modules.append(importlib.import_module(name))
    except ImportError:
        pass
for module in modules:
    for value in vars(module).values():
        if isinstance(value, (Counter, UpDownCounter)):
            value.add(1, {"probe": "1"})
        elif isinstance(value, (Histogram, LeanHistogram)):
            value.record(0.1, {"probe": "1"})
        elif hasattr(value, "set") and type(value).__name__.endswith("Gauge"):
            value.set(1, {"probe": "1"})
# Observable instruments report through their callbacks: give the counts kept in plain numbers
# (the RPC count, the queue's) one each to report,
for module in modules:
    for value in vars(module).values():
        if type(value).__name__ == "CallCounts":
            value.add(("probe",), {"probe": "1"})
        elif type(value).__name__ == "_Count":
            value.add(1, {"probe": "1"})
# and the queue's gauges one backlog.
queue = next((m for m in modules if m.__name__ == "gateway.queue.metrics"), None)
if queue is not None and hasattr(queue, "record_backlogs"):
    from gateway.queue.streams import Backlog
    import dataclasses, time
    fields = {f.name for f in dataclasses.fields(Backlog)}
    sample = {"depth": 1, "oldest_enqueued_at": time.time() - 1}
    queue.record_backlogs({"probe": Backlog(**{k: v for k, v in sample.items() if k in fields})})
names = sorted({s.name for family in REGISTRY.collect() for s in family.samples})
print(json.dumps({"names": names, "queue": queue is not None}))
"""


@cache
def exported() -> frozenset[str]:
    """Every sample name (with _total, _bucket, _seconds...) the gateway's instruments export."""
    out = subprocess.run(
        [sys.executable, "-c", _EXPORT], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(out.stdout)
    return frozenset(found["names"]) | (frozenset() if found["queue"] else QUEUE_METRICS)


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panel_queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_the_exporter_names_the_gateways_instruments_as_the_dashboard_expects() -> None:
    names = exported()
    assert {
        "notify_rpc_calls_total",
        "rpc_server_call_duration_seconds_bucket",
        "notify_vendor_errors_total",
        "notify_vendor_duration_seconds_bucket",
        "notify_vendor_retries_total",
        "notify_token_fetches_total",
        "notify_rate_limit_refusals_total",
    } <= names


def test_every_dashboard_panel_queries_metrics_the_gateway_exports() -> None:
    known = exported() | PROMETHEUS_OWN
    queries = panel_queries()
    assert queries
    for title, expr in queries:
        assert brackets_balance(expr), f"{title}: unbalanced brackets in {expr}"
        used = metric_names(expr)
        assert used, f"{title}: no metric in {expr}"
        assert used <= known, f"{title}: {sorted(used - known)} is not exported by the gateway"


def test_the_dashboard_covers_what_an_sre_watches() -> None:
    used = set().union(*(metric_names(expr) for _, expr in panel_queries()))
    assert {
        "notify_rpc_calls_total",  # error ratio
        "notify_vendor_errors_total",  # by errcode
        "notify_token_fetches_total",
        "notify_rate_limit_refusals_total",
        "notify_queue_oldest_age_seconds",
    } <= used
    errcode_panels = [e for _, e in panel_queries() if "notify_vendor_errors_total" in e]
    assert any("notify_vendor_errcode" in e for e in errcode_panels)


def test_the_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
    uids = {source["uid"] for source in datasource["datasources"]}
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "notify-gateway.yaml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"])


def test_every_alert_rule_has_its_parts_and_queries_exported_metrics() -> None:
    known = exported() | PROMETHEUS_OWN
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert brackets_balance(rule["expr"]), rule["alert"]
        used = metric_names(rule["expr"])
        assert used and used <= known, f"{rule['alert']}: {sorted(used - known)} is not exported"
    used = set().union(*(metric_names(rule["expr"]) for rule in rules))
    assert {
        "notify_rpc_calls_total",
        "notify_vendor_errors_total",
        "notify_token_fetches_total",
        "notify_rate_limit_refusals_total",
        "notify_queue_oldest_age_seconds",
    } <= used


def test_a_misspelt_metric_is_caught() -> None:
    misspelt = 'sum by (le) (rate(notify_rpc_call_total{a="b"}[5m])) > 0'
    assert metric_names(misspelt) == {"notify_rpc_call_total"}
    quantile = "histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval]))) > bool 1e3"
    assert metric_names(quantile) == {"x_bucket"}


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    found = promtool()
    if found is None:
        if in_ci():
            pytest.fail("promtool is missing: .ci/run installs it from Debian's prometheus package")
        pytest.skip("promtool not installed (.ci/run installs it from Debian's prometheus package)")
    return subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_alert_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_on_the_series_in_their_unit_tests() -> None:
    result = run_promtool("test", "rules", "alerts.test.yml", cwd=ALERTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    # The config names the rules by their path in the container; check it against the repo's copy.
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    assert "/etc/prometheus/alerts.yml" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/alerts.yml", str(ALERTS)))
    result = run_promtool("check", "config", str(tmp_path / "prometheus.yml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

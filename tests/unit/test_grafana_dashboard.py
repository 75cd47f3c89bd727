"""The Grafana dashboard only queries series that /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fulcrum.controller.api.prometheus import metric_name
from fulcrum.protocol import metrics as catalog

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fulcrum-dashboard.json"
INTERNAL = {
    "fulcrum_service_engines",
    "fulcrum_virtualservices",
    "fulcrum_analytics_points_total",
    "fulcrum_api_request_seconds_bucket",
}


def test_every_series_in_the_dashboard_exists() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["definition"])
    exposed = {metric_name(m.metric_id) for m in catalog.METRICS} | INTERNAL
    used = {name for expr in exprs for name in re.findall(r"\bfulcrum_[a-z0-9_]+", expr)}
    assert used, "the dashboard queries nothing"
    assert used <= exposed, sorted(used - exposed)
    assert len(dashboard["panels"]) >= 10

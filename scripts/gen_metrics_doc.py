"""Writes docs/metrics.md from the metric catalog (tests/unit/test_docs_metrics.py checks it is current)."""

from __future__ import annotations

import sys
from pathlib import Path

from fulcrum.protocol import metrics as catalog

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def render() -> str:
    lines = [
        "# Analytics metrics",
        "",
        "Generated from `src/fulcrum/protocol/metrics.py` by `scripts/gen_metrics_doc.py`; also served at",
        "`GET /api/analytics/metric_ids`. Query with",
        "`GET /api/analytics/metrics/<virtualservice|pool|serviceengine>/<uuid>?metric_id=a,b&step=&limit=`",
        "(pool metrics marked per server also take `server=<ip>:<port>`). Rates are per second over the",
        "SE's report interval; `rollup` is how 5 s points merge into 5 min and 1 h points. In Prometheus",
        "(`/metrics`) a metric `a.b` is the gauge `fulcrum_a_b`.",
        "",
        "| metric_id | applies to | unit | rollup | source | description |",
        "|---|---|---|---|---|---|",
    ]
    for m in catalog.METRICS:
        applies = ", ".join(e.value for e in m.entity_types) + (" (per server)" if m.per_server else "")
        cells = (f"`{m.metric_id}`", applies, m.unit, m.rollup.value, m.source.value, m.description)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC} ({len(catalog.METRICS)} metrics)\n")

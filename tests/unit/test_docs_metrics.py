"""docs/metrics.md lists exactly the catalog (regenerate with `python scripts/gen_metrics_doc.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen_metrics_doc.py"


def test_metrics_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_metrics_doc", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.DOC.read_text() == module.render(), "run: python scripts/gen_metrics_doc.py"

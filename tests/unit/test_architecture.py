"""The layer contracts of DESIGN section 2 hold (import-linter), so a wrong import fails the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_contracts_hold() -> None:
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert linter, "lint-imports (import-linter) is not installed in this virtualenv; run `make test`"
    result = subprocess.run([linter], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_model_imports_no_framework_or_io() -> None:
    """The pure model never imports the web framework, the database or HTTP clients."""
    forbidden = ("fastapi", "sqlalchemy", "httpx", "uvicorn", "starlette", "typer")
    for path in (ROOT / "src/fulcrum/model").glob("*.py"):
        text = path.read_text()
        for module in forbidden:
            assert f"import {module}" not in text and f"from {module}" not in text, (
                f"{path.name} imports {module}"
            )

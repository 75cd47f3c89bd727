"""Fixtures shared by every suite: an in-process controller app and real controller processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from fulcrum.controller.app import create_app
from fulcrum.controller.settings import ControllerSettings
from support.processes import ADMIN_PASSWORD, ControllerProcess

ADMIN = ("admin", ADMIN_PASSWORD)


def make_settings(data_dir: Path, **overrides: object) -> ControllerSettings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "admin_password": ADMIN_PASSWORD,
        "argon2_memory_kib": 8192,  # still memory-hard, just cheaper for a test suite
        "dataplane": False,  # API tests create VSs by the hundred; SEs belong to the e2e suites
    }
    values.update(overrides)
    return ControllerSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> ControllerSettings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def client(settings: ControllerSettings) -> Iterator[TestClient]:
    """An in-process controller (SQLite) with an admin client; the app runs its real start-up."""
    with TestClient(create_app(settings)) as test_client:
        test_client.auth = ADMIN
        yield test_client


@pytest.fixture
def controllers(tmp_path: Path) -> Iterator[list[ControllerProcess]]:
    """Collects controller processes a test starts, and stops exactly those afterwards."""
    started: list[ControllerProcess] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture
def controller(tmp_path: Path, controllers: list[ControllerProcess]) -> ControllerProcess:
    proc = ControllerProcess(data_dir=tmp_path / "ctrl").start()
    controllers.append(proc)
    return proc


@pytest.fixture
def admin_http(controller: ControllerProcess) -> Iterator[httpx.Client]:
    with controller.client() as http:
        yield http

"""Fixtures shared by every suite: an in-process controller app and real controller processes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
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


@pytest.fixture(scope="module")
def controller_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[FastAPI, Path]:
    """Building the app (routes and their models) takes over a second, so one app serves a module;
    every test still starts it afresh on an empty data directory (see `client`)."""
    data_dir = tmp_path_factory.mktemp("controller") / "data"
    return create_app(make_settings(data_dir)), data_dir


@pytest.fixture
def client(controller_app: tuple[FastAPI, Path]) -> Iterator[TestClient]:
    """A freshly bootstrapped in-process controller (SQLite) with an admin client. Server errors come
    back as 500 responses rather than exceptions, so "never 5xx" checks see them as clients would."""
    app, data_dir = controller_app
    shutil.rmtree(data_dir, ignore_errors=True)
    with TestClient(app, raise_server_exceptions=False) as test_client:
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

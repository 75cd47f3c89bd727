"""The store survives a killed controller: no corruption, no lost acknowledged write, clean restarts.

Real controller processes are hammered with writes from several threads and SIGKILLed mid-stream,
several times over the same store. After each kill the store is checked directly (SQLite's
`PRAGMA integrity_check`, or the rows in PostgreSQL) and through a restarted controller: every write
the API acknowledged (201 on create, 200 on patch) is there with the acknowledged content, and every
stored pool is one a client actually tried to create. Also covered: migrations on a fresh and on an
existing database, and a clean SIGTERM shutdown.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic.script import ScriptDirectory

from fulcrum.controller.store.db import MIGRATIONS
from support.postgres import fresh_database
from support.processes import ADMIN_PASSWORD, ControllerProcess

pytestmark = pytest.mark.slow

WRITERS = 4
KILL_AFTER_S = (1.6, 2.1, 2.6)  # one entry per kill round; different points in the write stream
# What a client sees when the server dies under it: refused, reset, or cut off mid-answer.
TRANSPORT_ERRORS = (httpx.TransportError,)


@dataclass
class PoolRecord:
    """What the clients know about one pool: the last acknowledged state and what may be in flight."""

    name: str
    uuid: str | None = None
    acked: dict[str, Any] | None = None  # last 201/200 answer
    # Descriptions sent in requests that got no answer: each may or may not have been committed.
    unacked_descriptions: set[str] = field(default_factory=set)


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    pools: dict[str, PoolRecord] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)  # answers that are neither success nor a crash
    acked_creates: int = 0
    acked_patches: int = 0


def _token(base_url: str) -> str:
    answer = httpx.post(
        f"{base_url}/login", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def _writer(
    base_url: str, token: str, *, writer: int, round_no: int, ledger: Ledger, stop: threading.Event
) -> None:
    """Create pools as fast as possible; odd writers also patch each pool they created."""
    headers = {"Authorization": f"Bearer {token}"}
    patcher = writer % 2 == 1
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
        for i in range(1_000_000):
            if stop.is_set():
                return
            name = f"r{round_no}-w{writer}-{i}"
            body = {
                "name": name,
                "description": f"created {name}",
                "servers": [{"ip": f"10.{writer}.{i // 250 % 250}.{i % 250 + 1}", "port": 8000 + round_no}],
                "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN",
            }
            record = PoolRecord(name)
            record.unacked_descriptions.add(body["description"])
            with ledger.lock:
                ledger.pools[name] = record
            try:
                answer = http.post("/api/pool", json=body)
            except TRANSPORT_ERRORS:
                return
            if answer.status_code != 201:
                with ledger.lock:
                    ledger.unexpected.append(f"POST {name}: {answer.status_code} {answer.text[:300]}")
                return
            with ledger.lock:
                record.uuid = answer.json()["uuid"]
                record.acked = answer.json()
                record.unacked_descriptions.clear()
                ledger.acked_creates += 1
            if not patcher:
                continue
            description = f"patched {name}"
            with ledger.lock:
                record.unacked_descriptions.add(description)
            try:
                answer = http.patch(f"/api/pool/{record.uuid}", json={"description": description})
            except TRANSPORT_ERRORS:
                return
            if answer.status_code != 200:
                with ledger.lock:
                    ledger.unexpected.append(f"PATCH {name}: {answer.status_code} {answer.text[:300]}")
                return
            with ledger.lock:
                record.acked = answer.json()
                record.unacked_descriptions.clear()
                ledger.acked_patches += 1


def _hammer_and_kill(proc: ControllerProcess, round_no: int, kill_after: float, ledger: Ledger) -> None:
    token = _token(proc.url)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_writer,
            args=(proc.url, token),
            kwargs={"writer": w, "round_no": round_no, "ledger": ledger, "stop": stop},
            daemon=True,
        )
        for w in range(WRITERS)
    ]
    before = ledger.acked_creates
    for thread in threads:
        thread.start()
    time.sleep(kill_after)
    assert proc.process is not None
    proc.process.kill()  # SIGKILL while the writers are mid-request
    proc.process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a writer thread hung after the controller was killed"
    assert not ledger.unexpected, f"writes failed before the kill:\n{ledger.unexpected}"
    assert ledger.acked_creates - before >= 10, (
        f"only {ledger.acked_creates - before} pools were created in {kill_after}s; the test proves little\n"
        f"{proc.log()[-3000:]}"
    )


def _check_sqlite_file(path: Path) -> None:
    assert path.exists()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _pool_event_uuids(http: httpx.Client, event_id: str) -> set[str]:
    found: set[str] = set()
    page = 1
    while True:
        answer = http.get("/api/event", params={"event_id": event_id, "page": page, "page_size": 1000})
        assert answer.status_code == 200, answer.text
        found.update(
            e["obj_ref"].rsplit("/", 1)[-1] for e in answer.json()["results"] if e["obj_type"] == "pool"
        )
        if answer.json()["next"] is None:
            return found
        page += 1


def _stored_pools(http: httpx.Client) -> dict[str, dict[str, Any]]:
    pools: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        answer = http.get("/api/pool", params={"page": page, "page_size": 1000, "sort": "uuid"})
        assert answer.status_code == 200, answer.text
        for item in answer.json()["results"]:
            pools[item["name"]] = item
        if answer.json()["next"] is None:
            return pools
        page += 1


def _check_after_restart(proc: ControllerProcess, ledger: Ledger) -> None:
    with proc.client() as http:
        assert http.get("/api/health").json() == {"status": "ok"}
        stored = _stored_pools(http)

        lost = []
        for name, record in ledger.pools.items():
            if record.acked is None:
                continue
            item = stored.get(name)
            if item is None:
                lost.append(name)
                continue
            assert item["uuid"] == record.uuid
            if item == record.acked:
                continue
            # Only a write that was sent but never answered may differ from the acknowledged state.
            assert item["description"] in record.unacked_descriptions, (
                f"pool {name}: stored {item} differs from the acknowledged {record.acked}"
            )
            assert {k: v for k, v in item.items() if k not in ("description", "_last_modified")} == {
                k: v for k, v in record.acked.items() if k not in ("description", "_last_modified")
            }
        assert not lost, f"{len(lost)} acknowledged pools are gone after the kill: {lost[:20]}"

        for name, item in stored.items():
            record = ledger.pools.get(name)
            assert record is not None, f"pool {name} is stored but no client ever created it"
            if record.acked is None:  # created by a request cut off by the kill: committed in full
                assert item["description"] in record.unacked_descriptions
                assert item["servers"][0]["ip"].startswith("10.")
        # The object and the event describing its creation commit together, or not at all.
        live = _pool_event_uuids(http, "CONFIG_CREATE") - _pool_event_uuids(http, "CONFIG_DELETE")
        assert {item["uuid"] for item in stored.values()} == live

        # The store still takes writes after the crash.
        answer = http.post("/api/pool", json={"name": f"after-{proc.port}"})
        assert answer.status_code == 201, answer.text
        assert http.delete(f"/api/pool/{answer.json()['uuid']}").status_code == 204


def _kill_rounds(data_dir: Path, controllers: list[ControllerProcess], db_url: str | None) -> Ledger:
    ledger = Ledger()
    for round_no, kill_after in enumerate(KILL_AFTER_S):
        proc = ControllerProcess(data_dir=data_dir, db_url=db_url).start()
        controllers.append(proc)
        if round_no > 0:
            _check_after_restart(proc, ledger)  # the previous round's kill, seen by a fresh controller
        _hammer_and_kill(proc, round_no, kill_after, ledger)
        if db_url is None:
            _check_sqlite_file(data_dir / "fulcrum.db")
    final = ControllerProcess(data_dir=data_dir, db_url=db_url).start()
    controllers.append(final)
    _check_after_restart(final, ledger)
    return ledger


def test_sigkill_during_writes_keeps_sqlite_intact(
    tmp_path: Path, controllers: list[ControllerProcess]
) -> None:
    ledger = _kill_rounds(tmp_path / "ctrl", controllers, db_url=None)
    assert ledger.acked_patches > 0
    _check_sqlite_file(tmp_path / "ctrl" / "fulcrum.db")


@pytest.mark.postgres
def test_sigkill_during_writes_keeps_postgres_intact(
    tmp_path: Path, controllers: list[ControllerProcess]
) -> None:
    with fresh_database() as url:
        ledger = _kill_rounds(tmp_path / "ctrl", controllers, db_url=url)
        assert ledger.acked_patches > 0
        with psycopg.connect(url) as conn:
            # The constraints held through the kills: one row per name, every edge points at a row.
            duplicates = conn.execute(
                "SELECT type, tenant_uuid, name FROM objects GROUP BY 1, 2, 3 HAVING count(*) > 1"
            ).fetchall()
            assert duplicates == []
            dangling = conn.execute(
                "SELECT r.src_uuid FROM refs r LEFT JOIN objects o ON o.uuid = r.dst_uuid"
                " WHERE o.uuid IS NULL"
            ).fetchall()
            assert dangling == []
        for proc in controllers:
            proc.kill()  # release the connections before the database is dropped


# --- migrations and shutdown ----------------------------------------------------------------------


def _head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def _alembic_versions_sqlite(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def _alembic_versions_postgres(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str | None]]:
    """(data dir, db url or None for SQLite) of an empty store."""
    if request.param == "sqlite":
        yield tmp_path / "ctrl", None
    else:
        with fresh_database() as url:
            yield tmp_path / "ctrl", url


def _versions(store: tuple[Path, str | None]) -> list[str]:
    data_dir, url = store
    return _alembic_versions_postgres(url) if url else _alembic_versions_sqlite(data_dir / "fulcrum.db")


def _stop(proc: ControllerProcess) -> None:
    """SIGTERM and wait; the exit status is checked by the SIGTERM test, not by the migration tests."""
    proc.terminate(timeout=15)
    assert "Application shutdown complete" in proc.log(), proc.log()[-2000:]


def test_migrations_on_fresh_and_existing_store(
    store: tuple[Path, str | None], controllers: list[ControllerProcess]
) -> None:
    data_dir, url = store
    head = _head_revision()

    first = ControllerProcess(data_dir=data_dir, db_url=url).start()
    controllers.append(first)
    assert _versions(store) == [head]
    with first.client() as http:
        pool = http.post("/api/pool", json={"name": "survivor", "servers": [{"ip": "192.0.2.10"}]})
        assert pool.status_code == 201, pool.text
    _stop(first)

    # A second start on the migrated store must not fail, re-run the migration, or lose data.
    second = ControllerProcess(data_dir=data_dir, db_url=url).start()
    controllers.append(second)
    assert _versions(store) == [head]
    with second.client() as http:
        answer = http.get(f"/api/pool/{pool.json()['uuid']}")
        assert answer.status_code == 200, answer.text
        assert answer.json() == pool.json()
        names = [o["name"] for o in http.get("/api/cloud").json()["results"]]
        assert names == ["Default-Cloud"], "the bootstrap objects were created twice"
    _stop(second)


def test_sigterm_during_requests_shuts_down_cleanly(
    tmp_path: Path, controllers: list[ControllerProcess]
) -> None:
    proc = ControllerProcess(data_dir=tmp_path / "ctrl").start()
    controllers.append(proc)
    ledger = Ledger()
    token = _token(proc.url)
    stop = threading.Event()
    writer = threading.Thread(
        target=_writer,
        args=(proc.url, token),
        kwargs={"writer": 1, "round_no": 0, "ledger": ledger, "stop": stop},
        daemon=True,
    )
    writer.start()
    time.sleep(0.5)
    assert proc.process is not None
    started = time.monotonic()
    proc.process.send_signal(signal.SIGTERM)  # while the writer is busy
    try:
        code = proc.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the controller did not stop within 10s of SIGTERM:\n{proc.log()[-2000:]}")
    elapsed = time.monotonic() - started
    stop.set()
    writer.join(timeout=30)
    log = proc.log()
    assert "Application shutdown complete" in log, log[-2000:]
    assert elapsed < 5, f"SIGTERM took {elapsed:.1f}s to stop the controller"
    assert not ledger.unexpected, ledger.unexpected  # in-flight requests finished or were refused, no 5xx
    assert ledger.acked_creates > 0

    # Nothing acknowledged before the SIGTERM is lost, and the store opens cleanly again.
    _check_sqlite_file(tmp_path / "ctrl" / "fulcrum.db")
    after = ControllerProcess(data_dir=tmp_path / "ctrl").start()
    controllers.append(after)
    _check_after_restart(after, ledger)

    # Last, so that the checks above still run: a clean shutdown must also say so in its exit status
    # (scripts and process supervisors read it).
    assert code == 0, (
        f"clean shutdown, yet the controller exited with {code} (negative: killed by that signal)"
    )

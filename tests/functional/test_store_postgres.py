"""The core store behaviour, run against a real PostgreSQL instead of the default SQLite.

Each test gets a fresh, empty database, and the in-process controller runs its real start-up on it
(migrations, bootstrap). Covers CRUD with references, renames and merge patches, paging and sorting,
deletion refused while referenced, name uniqueness (also under concurrent creates), and that private
keys never reach the database in clear text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from conftest import ADMIN, make_settings
from fulcrum.controller.app import create_app
from fulcrum.controller.store import repo
from support.certs import self_signed
from support.postgres import fresh_database

pytestmark = pytest.mark.postgres


@dataclass
class PgController:
    http: TestClient
    db_url: str


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PgController]:
    """An in-process controller on a fresh PostgreSQL database, with an admin client (Bearer token)."""
    with fresh_database() as url:
        app = create_app(make_settings(tmp_path / "data", db_url=url))
        with TestClient(app) as http:
            login = http.post("/login", json={"username": ADMIN[0], "password": ADMIN[1]})
            assert login.status_code == 200, login.text
            http.headers["Authorization"] = f"Bearer {login.json()['token']}"
            yield PgController(http, url)


def _create(http: TestClient, type_name: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = http.post(f"/api/{type_name}", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _error(answer: Any, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"}, body
    return str(body["error"])


def test_the_store_is_postgresql(pg: PgController) -> None:
    with psycopg.connect(pg.db_url) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM objects WHERE type = 'cloud'")}
    assert names == {"Default-Cloud"}


def test_pool_and_virtual_service_lifecycle(pg: PgController) -> None:
    http = pg.http
    pool = _create(http, "pool", {"name": "web", "servers": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}]})
    vs = _create(
        http,
        "virtualservice",
        {
            "name": "shop",
            "services": [{"port": 80}],
            "pool_ref": "web",
            "vip": [{"ip_address": "127.100.0.7"}],
        },
    )
    assert vs["pool_ref"] == pool["url"]
    vsvip = http.get(vs["vsvip_ref"]).json()
    assert vsvip["name"] == "shop"
    assert vsvip["vip"][0]["ip_address"] == "127.100.0.7"
    referrers = http.get(f"{pool['url']}/referred_by").json()
    assert referrers["results"] == [
        {"type": "virtualservice", "name": "shop", "field": "pool_ref", "url": vs["url"]}
    ]

    # Rename by GET -> edit -> PUT: references follow the uuid, not the name.
    edited = {**http.get(pool["url"]).json(), "name": "web-v2"}
    renamed = http.put(pool["url"], json=edited)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "web-v2"
    assert int(renamed.json()["_last_modified"]) > int(pool["_last_modified"])
    assert http.get(vs["url"]).json()["pool_ref"] == pool["url"]
    assert http.get("/api/pool", params={"name": "web"}).json()["count"] == 0

    # A stale _last_modified is refused; a merge patch changes only what it names.
    stale = http.put(pool["url"], json={**edited, "description": "late"})
    _error(stale, 412)
    patched = http.patch(pool["url"], json={"description": "patched", "servers": [{"ip": "192.0.2.12"}]})
    assert patched.status_code == 200, patched.text
    stored = http.get(pool["url"]).json()
    assert stored["description"] == "patched"
    assert [s["ip"] for s in stored["servers"]] == ["192.0.2.12"]
    assert stored["name"] == "web-v2"
    assert stored["lb_algorithm"] == pool["lb_algorithm"]

    # Deleting a referenced object is a conflict that names the referrer; nothing is deleted.
    message = _error(http.delete(pool["url"]), 409)
    assert "virtualservice 'shop'" in message
    assert http.get(pool["url"]).status_code == 200

    # Deleting the VS takes its inline vsvip with it, after which the pool may go.
    assert http.delete(vs["url"]).status_code == 204
    assert http.get(vs["vsvip_ref"]).status_code == 404
    assert http.delete(pool["url"]).status_code == 204
    _error(http.get(pool["url"]), 404)
    with psycopg.connect(pg.db_url) as conn:
        gone = [vs["uuid"], pool["uuid"], vsvip["uuid"]]
        assert conn.execute("SELECT count(*) FROM objects WHERE uuid = ANY(%s)", [gone]).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM refs WHERE src_uuid = ANY(%s) OR dst_uuid = ANY(%s)", [gone, gone]
        ).fetchone() == (0,)
        events = conn.execute(
            "SELECT event_id FROM events WHERE obj_uuid = %s ORDER BY id", [pool["uuid"]]
        ).fetchall()
        assert [e[0] for e in events] == ["CONFIG_CREATE", "CONFIG_UPDATE", "CONFIG_UPDATE", "CONFIG_DELETE"]


def test_list_paging_and_sorting(pg: PgController) -> None:
    http = pg.http
    names = ["p-03", "p-01", "p-06", "p-00", "p-04", "p-02", "p-05"]  # created out of name order
    created = [_create(http, "pool", {"name": n}) for n in names]

    seen: list[str] = []
    url: str | None = "/api/pool?page_size=3&sort=name"
    pages = 0
    while url:
        answer = http.get(url)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["count"] == 7
        assert len(body["results"]) <= 3
        seen += [item["name"] for item in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted(names)

    def names_of(**params: Any) -> list[str]:
        answer = http.get("/api/pool", params={"page_size": 100, **params})
        assert answer.status_code == 200, answer.text
        return [item["name"] for item in answer.json()["results"]]

    assert names_of(sort="-name") == sorted(names, reverse=True)
    assert names_of(sort="_last_modified") == names
    assert names_of(sort="-_last_modified") == names[::-1]
    assert names_of(sort="uuid") == [o["name"] for o in sorted(created, key=lambda o: o["uuid"])]
    assert names_of(name="p-04") == ["p-04"]
    last = http.get("/api/pool", params={"page_size": 3, "page": 3, "sort": "name"}).json()
    assert [item["name"] for item in last["results"]] == ["p-06"]
    assert last["next"] is None
    beyond = http.get("/api/pool", params={"page_size": 3, "page": 9}).json()
    assert beyond == {"count": 7, "results": [], "next": None}
    projected = http.get("/api/pool", params={"fields": "servers", "page_size": 1}).json()["results"][0]
    assert set(projected) == {"name", "uuid", "url", "tenant_ref", "_last_modified", "servers"}
    assert "sort" in _error(http.get("/api/pool", params={"sort": "servers"}), 400)


def test_names_are_unique_per_type_and_tenant(pg: PgController) -> None:
    http = pg.http
    first = _create(http, "pool", {"name": "dup"})
    message = _error(http.post("/api/pool", json={"name": "dup"}), 409)
    assert "dup" in message
    # The same name in another type is fine; a rename onto a taken name is not.
    _create(http, "healthmonitor", {"name": "dup", "type": "HEALTH_MONITOR_TCP"})
    other = _create(http, "pool", {"name": "other"})
    _error(http.patch(other["url"], json={"name": "dup"}), 409)
    assert http.get(other["url"]).json()["name"] == "other"
    assert http.get(first["url"]).json()["name"] == "dup"


def test_concurrent_creates_of_one_name_yield_one_object(pg: PgController) -> None:
    http = pg.http
    writers = 8
    barrier = threading.Barrier(writers)
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def create(index: int) -> None:
        body = {"name": "race", "description": f"writer {index}", "servers": [{"ip": f"192.0.2.{index + 1}"}]}
        barrier.wait(timeout=10)
        answer = http.post("/api/pool", json=body)
        with lock:
            answers.append((answer.status_code, answer.json()))

    for _attempt in range(3):  # a few rounds, so the race is actually run more than once
        answers.clear()
        threads = [threading.Thread(target=create, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        statuses = sorted(status for status, _ in answers)
        assert statuses == [201] + [409] * (writers - 1), answers
        assert all(set(body) == {"error"} for status, body in answers if status == 409), answers
        winner = next(body for status, body in answers if status == 201)
        listed = http.get("/api/pool", params={"name": "race"}).json()
        assert listed["count"] == 1
        assert listed["results"][0] == winner
        assert http.delete(winner["url"]).status_code == 204
    with psycopg.connect(pg.db_url) as conn:
        # Losers leave nothing behind: no half-written object, no event for a create that failed.
        events = conn.execute(
            "SELECT count(*) FROM events WHERE obj_type = 'pool' AND event_id = 'CONFIG_CREATE'"
        ).fetchone()
        assert events == (3,)


def test_a_lost_name_race_is_reported_like_any_name_conflict(
    pg: PgController, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer that loses a create race gets the database's unique-constraint error; its 409 must
    read like the ordinary name conflict, not expose the driver's text (constraint names, DETAIL)."""
    _create(pg.http, "pool", {"name": "dup"})
    # Make the service's own name check miss, exactly as it does for the loser of a real race.
    monkeypatch.setattr(repo, "name_taken", lambda *_args, **_kwargs: False)
    message = _error(pg.http.post("/api/pool", json={"name": "dup"}), 409)
    assert "'dup'" in message
    for internal in ("DETAIL", "constraint", "uq_objects", "\n"):
        assert internal not in message, f"the 409 exposes database internals: {message!r}"


def _rsa_self_signed(common_name: str) -> tuple[str, str, str]:
    """(certificate PEM, key PEM as given, the same key as PKCS#8 PEM) for a fresh RSA key; the key is
    given in the traditional OpenSSL (PKCS#1) form."""
    cert_pem, key_pkcs8 = self_signed(common_name, key_type="rsa")
    key = serialization.load_pem_private_key(key_pkcs8.encode(), password=None)
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert_pem, traditional.decode(), key_pkcs8


def _pem_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM body: any of them in storage means the key leaked, however escaped."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_private_key_is_not_stored_in_clear(pg: PgController) -> None:
    http = pg.http
    cert_pem, key_pem, key_pkcs8 = _rsa_self_signed("shop.example.test")
    created = _create(
        http,
        "sslkeyandcertificate",
        {"name": "shop-cert", "certificate": {"certificate": cert_pem}, "key": key_pem},
    )
    assert "key" not in created
    assert created["certificate"]["info"]["subject"] == "CN=shop.example.test"
    assert "key" not in http.get(created["url"]).json()
    # A GET body can be PUT back without the key: the controller unseals the stored key and checks it
    # against the certificate again, so this also proves the sealed key is intact and readable.
    replaced = http.put(created["url"], json={**http.get(created["url"]).json(), "name": "shop-cert-2"})
    assert replaced.status_code == 200, replaced.text

    leaks = _pem_lines(key_pem) + _pem_lines(key_pkcs8)
    with psycopg.connect(pg.db_url) as conn:
        row = conn.execute("SELECT * FROM objects WHERE uuid = %s", [created["uuid"]]).fetchone()
        assert row is not None
        columns = [d.name for d in conn.execute("SELECT * FROM objects LIMIT 0").description or ()]
        stored = dict(zip(columns, row, strict=True))
        assert stored["secrets"], "the key must be kept (sealed) in the secrets column"
        for column, value in stored.items():
            text = str(value)
            found = [line for line in leaks if line in text]
            assert not found, f"objects.{column} holds the private key in clear text"
        # Nor may the audit trail carry it.
        for (details,) in conn.execute(
            "SELECT details::text FROM events WHERE obj_uuid = %s", [created["uuid"]]
        ):
            assert not [line for line in leaks if line in details], "an event holds the private key"

    # And a TLS virtual service can use it.
    _create(
        http,
        "virtualservice",
        {
            "name": "tls",
            "services": [{"port": 443, "enable_ssl": True}],
            "ssl_key_and_certificate_refs": ["shop-cert-2"],
            "vip": [{"ip_address": "127.100.0.9"}],
        },
    )

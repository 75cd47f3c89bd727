"""A fresh database per test on the PostgreSQL server that `make test` starts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ENV = "FULCRUM_TEST_PG_URL"


def server_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        raise RuntimeError(
            f"{PG_ENV} is not set: these tests need the PostgreSQL server that `make test` starts "
            "(scripts/test-services.sh start). Run the suite through `make test`."
        )
    return url


@contextmanager
def fresh_database() -> Iterator[str]:
    base = server_url()
    name = f"fulcrum_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

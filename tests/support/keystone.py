"""Projects, users, roles and tokens on the real Keystone that `make test` starts.

scripts/keystone-service.sh serves Keystone on loopback and exports its URL and the bootstrap admin's
password file. Everything created here carries a random suffix and is deleted by `KeystoneLab.close`,
so runs against the same Keystone never collide and leave nothing behind.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

URL_ENV = "FULCRUM_TEST_KEYSTONE_URL"
PASSWORD_FILE_ENV = "FULCRUM_TEST_KEYSTONE_ADMIN_PASSWORD_FILE"
DOMAIN = "Default"


def keystone_url() -> str:
    """The Keystone v3 URL, e.g. http://127.0.0.1:35357/v3; a test that needs it fails without it."""
    url = os.environ.get(URL_ENV)
    password_file = os.environ.get(PASSWORD_FILE_ENV)
    if not url or not password_file:
        raise RuntimeError(
            f"{URL_ENV} / {PASSWORD_FILE_ENV} are not set: these tests need the Keystone that `make test` "
            "starts (scripts/keystone-service.sh start, then source .test-services/env). "
            "Run the suite through `make test`."
        )
    return url.rstrip("/")


def admin_password() -> str:
    keystone_url()
    return Path(os.environ[PASSWORD_FILE_ENV]).read_text().strip()


def _password_auth(name: str, password: str, scope: dict[str, Any] | None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": name, "domain": {"name": DOMAIN}, "password": password}},
        }
    }
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def issue_token(url: str, user_name: str, password: str, project_id: str | None = None) -> str:
    """A token for the user, scoped to the project (unscoped without one)."""
    scope = {"project": {"id": project_id}} if project_id else None
    response = httpx.post(f"{url}/auth/tokens", json=_password_auth(user_name, password, scope), timeout=30)
    response.raise_for_status()
    return response.headers["X-Subject-Token"]


@dataclass
class KeystoneUser:
    id: str
    name: str
    password: str


@dataclass
class KeystoneLab:
    """Admin operations on Keystone with a system-scoped admin token; records what it creates."""

    url: str = field(default_factory=keystone_url)
    suffix: str = field(default_factory=lambda: secrets.token_hex(4))
    _created: list[tuple[str, str]] = field(default_factory=list)
    _client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            token = httpx.post(
                f"{self.url}/auth/tokens",
                json=_password_auth("admin", admin_password(), {"system": {"all": True}}),
                timeout=30,
            )
            token.raise_for_status()
            self._client = httpx.Client(
                base_url=self.url, headers={"X-Auth-Token": token.headers["X-Subject-Token"]}, timeout=30
            )
        return self._client

    def _post(self, collection: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(f"/{collection}", json={kind: body})
        response.raise_for_status()
        created: dict[str, Any] = response.json()[kind]
        self._created.append((collection, created["id"]))
        return created

    def name(self, base: str) -> str:
        return f"{base}-{self.suffix}"

    def project(self, base: str) -> dict[str, Any]:
        """A new project named `<base>-<suffix>` in the Default domain."""
        return self._post("projects", "project", {"name": self.name(base), "domain_id": "default"})

    def role_id(self, name: str) -> str:
        """The id of a role, created (and later deleted) when Keystone does not have it yet."""
        found = self.client.get("/roles", params={"name": name})
        found.raise_for_status()
        roles = found.json()["roles"]
        return str(roles[0]["id"]) if roles else str(self._post("roles", "role", {"name": name})["id"])

    def user(self, base: str, project_id: str | None = None, roles: tuple[str, ...] = ()) -> KeystoneUser:
        """A new user, with `roles` (names) granted on the project."""
        password = secrets.token_urlsafe(16)
        body = {"name": self.name(base), "domain_id": "default", "password": password, "enabled": True}
        created = self._post("users", "user", body)
        for role in roles:
            assert project_id is not None, "roles are granted on a project"
            self.grant(created["id"], project_id, role)
        return KeystoneUser(created["id"], created["name"], password)

    def grant(self, user_id: str, project_id: str, role: str) -> None:
        response = self.client.put(f"/projects/{project_id}/users/{user_id}/roles/{self.role_id(role)}")
        response.raise_for_status()

    def endpoint(self, service_type: str, url: str, name: str | None = None) -> None:
        """Put a service with a public endpoint (RegionOne) in the catalog, e.g. ("load-balancer",
        controller URL) so `openstack loadbalancer ...` finds the controller. The catalog is global:
        a test that registers a type should be the only one using that type while it runs."""
        service = self._post("services", "service", {"type": service_type, "name": name or service_type})
        body = {"service_id": service["id"], "interface": "public", "url": url, "region_id": "RegionOne"}
        self._post("endpoints", "endpoint", body)

    def token(self, user: KeystoneUser, project_id: str | None = None) -> str:
        return issue_token(self.url, user.name, user.password, project_id)

    def revoke(self, token: str) -> None:
        response = self.client.delete("/auth/tokens", headers={"X-Subject-Token": token})
        response.raise_for_status()

    def close(self) -> None:
        """Delete what this lab created, newest first; only those ids."""
        if self._client is None:
            return
        for collection, object_id in reversed(self._created):
            self._client.delete(f"/{collection}/{object_id}")
        self._created.clear()
        self._client.close()
        self._client = None

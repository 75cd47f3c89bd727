"""A small REST client over httpx so that CLI commands speak to the controller only through its API."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:9080"
TENANT_HEADER = "X-Fulcrum-Tenant"
MAX_PAGE_SIZE = 1000
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class CliError(Exception):
    """An error the CLI reports as one line `error: <message>` and exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(CliError):
    """The controller answered with an error status; `message` is its `{"error": ...}` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControllerUnreachable(CliError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""


@dataclass(frozen=True)
class ClientConfig:
    url: str = DEFAULT_URL
    user: str = "admin"
    password: str | None = None
    tenant: str | None = None

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        user: str | None = None,
        password: str | None = None,
        tenant: str | None = None,
    ) -> ClientConfig:
        """Explicit values win over FULCRUM_URL, FULCRUM_USER, FULCRUM_PASSWORD and FULCRUM_TENANT."""
        env = os.environ
        return cls(
            url=(url or env.get("FULCRUM_URL") or DEFAULT_URL).rstrip("/"),
            user=user or env.get("FULCRUM_USER") or "admin",
            password=password if password is not None else env.get("FULCRUM_PASSWORD"),
            tenant=tenant or env.get("FULCRUM_TENANT") or None,
        )

    def __repr__(self) -> str:  # keeps the password out of any debug output
        return f"ClientConfig(url={self.url!r}, user={self.user!r}, tenant={self.tenant!r})"


def looks_like_uuid(type_name: str, value: str) -> bool:
    """`pool-<uuid4>` for type pool; anything else is taken as a name."""
    return re.fullmatch(rf"{re.escape(type_name)}-{_UUID}", value) is not None


def uuid_of(ref: str) -> str:
    """The uuid at the end of `/api/<type>/<uuid>` (a bare uuid is returned as it is)."""
    return ref.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def type_of_ref(ref: str) -> str | None:
    """The type in `/api/<type>/<uuid>`, or None for anything else."""
    match = re.fullmatch(rf"/api/([a-z]+)/[a-z]+-{_UUID}", ref.split("#", 1)[0])
    return match.group(1) if match else None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    text = response.text.strip().splitlines()
    return f"HTTP {response.status_code}" + (f": {text[0][:200]}" if text else "")


class FulcrumClient:
    """JSON in, JSON out; every failure becomes an `ApiError` or `ControllerUnreachable`."""

    def __init__(self, config: ClientConfig, timeout: float = 30.0) -> None:
        self.config = config
        headers = {"Accept": "application/json"}
        if config.tenant:
            headers[TENANT_HEADER] = config.tenant
        auth = (config.user, config.password) if config.password is not None else None
        self._http = httpx.Client(base_url=config.url, auth=auth, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FulcrumClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, params=clean, json=body)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ControllerUnreachable(
                f"cannot reach the controller at {self.config.url}: {reason}"
            ) from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, self._explain(response))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, f"the controller sent a non-JSON answer to {path}") from None

    def _explain(self, response: httpx.Response) -> str:
        message = _error_message(response)
        if response.status_code == 401 and self.config.password is None:
            message += " (set FULCRUM_PASSWORD or pass --password)"
        return message

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any, **params: Any) -> Any:
        return self.request("POST", path, params=params, body=body)

    def put(self, path: str, body: Any, **params: Any) -> Any:
        return self.request("PUT", path, params=params, body=body)

    def patch(self, path: str, body: Any, **params: Any) -> Any:
        return self.request("PATCH", path, params=params, body=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    # --- object helpers ---------------------------------------------------------------------------

    def iter_pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged listing (`{"count","results","next"}`), following `next`."""
        page = 1
        while True:
            answer = self.get(path, **{**params, "page": page})
            yield from answer["results"]
            if not answer.get("next"):
                return
            page += 1

    def list_objects(self, type_name: str, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("page_size", MAX_PAGE_SIZE)
        return list(self.iter_pages(f"/api/{type_name}", **params))

    def find_by_name(self, type_name: str, name: str) -> dict[str, Any] | None:
        """The one object of this type and name the caller can see, or None."""
        answer = self.get(f"/api/{type_name}", name=name, page_size=2)
        results: list[dict[str, Any]] = answer["results"]
        if len(results) > 1:
            raise CliError(f"several {type_name} objects are named {name!r}; give the uuid instead")
        return results[0] if results else None

    def lookup(self, type_name: str, name_or_uuid: str) -> dict[str, Any]:
        """Fetch by uuid when the value looks like `<type>-<uuid>`, by name otherwise."""
        value = uuid_of(name_or_uuid) if name_or_uuid.startswith("/api/") else name_or_uuid
        if looks_like_uuid(type_name, value):
            try:
                return dict(self.get(f"/api/{type_name}/{value}"))
            except ApiError as exc:
                if exc.status == 404:
                    raise CliError(f"no {type_name} with uuid {value}") from None
                raise
        found = self.find_by_name(type_name, value)
        if found is None:
            raise CliError(f"no {type_name} named {value!r}")
        return found

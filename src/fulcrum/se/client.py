"""The SE's HTTP client for the controller: registration, then signed long-poll, ack, heartbeat and
analytics reports."""

from __future__ import annotations

import time

import httpx

from fulcrum.protocol import se as wire
from fulcrum.protocol import signing


class ControllerUnavailable(Exception):
    """The controller cannot be reached or answered with a server error; the SE stays headless."""


class Rejected(Exception):
    """The controller refused the request (bad credential, bad message); retrying will not help."""


class ControllerClient:
    def __init__(self, base_url: str, se_uuid: str, timeout: float = 5.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout)
        self.se_uuid = se_uuid
        self.credential: str | None = None

    def close(self) -> None:
        self._http.close()

    def _send(
        self, method: str, path: str, body: bytes = b"", timeout: float | None = None
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if self.credential is not None:
            headers.update(signing.headers(self.se_uuid, self.credential, method, path, body, time.time()))
        try:
            response = self._http.request(
                method, path, content=body or None, headers=headers, timeout=timeout or self._http.timeout
            )
        except httpx.HTTPError as exc:
            raise ControllerUnavailable(str(exc)) from exc
        if response.status_code >= 500:
            raise ControllerUnavailable(f"controller answered {response.status_code}")
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise Rejected(f"{response.status_code}: {message}")
        return response

    def register(self, token: str, agent_version: str, pid: int) -> wire.RegisterResponse:
        request = wire.RegisterRequest(
            se_uuid=self.se_uuid, bootstrap_token=token, agent_version=agent_version, pid=pid
        )
        response = self._send("POST", f"{wire.PREFIX}/register", request.model_dump_json().encode())
        answer = wire.RegisterResponse.model_validate_json(response.content)
        self.credential = answer.credential
        return answer

    def wait_config(self, known_version: int, wait_s: float) -> wire.SeConfig | None:
        path = f"{wire.PREFIX}/config?version={known_version}&wait={wait_s:g}"
        response = self._send("GET", path, timeout=wait_s + 10)
        if response.status_code == 304:
            return None
        return wire.ConfigEnvelope.model_validate_json(response.content).config

    def ack(self, ack: wire.Ack) -> None:
        self._send("POST", f"{wire.PREFIX}/ack", ack.model_dump_json().encode())

    def heartbeat(self, beat: wire.Heartbeat) -> wire.HeartbeatResponse:
        response = self._send("POST", f"{wire.PREFIX}/heartbeat", beat.model_dump_json().encode())
        return wire.HeartbeatResponse.model_validate_json(response.content)

    def analytics(self, report: wire.AnalyticsReport) -> dict[str, int]:
        """Ship one interval's metrics and logs; the answer says how many of each were accepted."""
        response = self._send("POST", f"{wire.PREFIX}/analytics", report.model_dump_json().encode())
        try:
            accepted = response.json()
        except ValueError:
            return {}
        return accepted if isinstance(accepted, dict) else {}

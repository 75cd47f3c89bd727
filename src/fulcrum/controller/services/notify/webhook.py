"""Alerts as a JSON POST to a URL (a chat or incident webhook, or Splunk's HTTP Event Collector), with
retries and exponential backoff.

The config dict, with secrets decrypted:

    {
      "url": "https://hooks.example.com/fulcrum",
      "format": "JSON",                  # JSON (default): the body is AlertMessage.to_dict()
                                         # SPLUNK_HEC: {"time", "host", "source", "sourcetype", "event"}
      "headers": {"X-Api-Key": "..."},   # optional; SECRET (values are commonly tokens)
      "splunk_token": "...",             # SPLUNK_HEC only; sent as "Authorization: Splunk <token>"; SECRET
      "splunk_index": "alerts",          # SPLUNK_HEC, optional
      "splunk_host": "ctrl-1",           # SPLUNK_HEC, optional; default this host's name
      "ca_pem": "-----BEGIN CERTIFICATE-----...",  # optional; default the system trust store
      "verify": true,                    # optional; false accepts any server certificate
      "proxy": "http://proxy:3128",      # optional; proxy variables of the environment are ignored
      "timeout_s": 5,                    # optional; per attempt
      "max_attempts": 4,                 # optional; 1 disables retries
      "backoff_base_s": 0.5,             # optional; waits base, 2*base, 4*base, ... between attempts
      "backoff_max_s": 30,               # optional; cap of one wait
      "max_retry_after_s": 60            # optional; a longer Retry-After ends the retries
    }

Retried: connection errors and timeouts, 429 and 5xx (after the Retry-After the server asks for, in
seconds or as an HTTP date, when it sends one). Not retried: other 4xx, 3xx (redirects are not
followed) and TLS certificate failures. Chat webhook URLs carry their token in the path, so errors and
logs name only the URL's scheme, host and port.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from fulcrum.controller.services.clock import Clock, SystemClock
from fulcrum.controller.services.notify import config as cfg
from fulcrum.controller.services.notify.message import AlertMessage, DeliveryError, InvalidActionConfig
from fulcrum.controller.services.notify.tls import client_context

log = logging.getLogger(__name__)

SECRET_KEYS = ("headers", "splunk_token")
USER_AGENT = "fulcrum-alerts/1"
FORMATS = ("JSON", "SPLUNK_HEC")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class WebhookSettings:
    url: httpx.URL
    format: str
    headers: tuple[tuple[str, str], ...]
    splunk_token: str | None
    splunk_index: str | None
    splunk_host: str
    ca_pem: str | None
    verify: bool
    proxy: str | None
    timeout_s: float
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    max_retry_after_s: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WebhookSettings:
        try:
            url = httpx.URL(cfg.text(config, "url"))
        except httpx.InvalidURL:
            raise InvalidActionConfig("url is not a valid URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise InvalidActionConfig("url must be an http:// or https:// URL with a host")
        fmt = cfg.choice(config, "format", "JSON", FORMATS)
        splunk_token = cfg.optional_text(config, "splunk_token")
        if fmt == "SPLUNK_HEC" and not splunk_token:
            raise InvalidActionConfig("splunk_token is required for format SPLUNK_HEC")
        ca_pem = cfg.optional_text(config, "ca_pem")
        if ca_pem:
            client_context(ca_pem)  # a bad bundle is a config error, found before any connection
        return cls(
            url=url,
            format=fmt,
            headers=_headers(cfg.mapping(config, "headers")),
            splunk_token=splunk_token,
            splunk_index=cfg.optional_text(config, "splunk_index"),
            splunk_host=cfg.text(config, "splunk_host", socket.gethostname()),
            ca_pem=ca_pem,
            verify=cfg.flag(config, "verify", True),
            proxy=cfg.optional_text(config, "proxy"),
            timeout_s=cfg.number(config, "timeout_s", 5.0, low=0.1, high=120),
            max_attempts=cfg.integer(config, "max_attempts", 4, low=1, high=20),
            backoff_base_s=cfg.number(config, "backoff_base_s", 0.5, low=0, high=60),
            backoff_max_s=cfg.number(config, "backoff_max_s", 30.0, low=0, high=600),
            max_retry_after_s=cfg.number(config, "max_retry_after_s", 60.0, low=0, high=3600),
        )

    @property
    def label(self) -> str:
        port = f":{self.url.port}" if self.url.port else ""
        return f"{self.url.scheme}://{self.url.host}{port}"


def _headers(raw: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    headers = []
    for name, value in raw.items():
        if not isinstance(value, str) or any(ch in f"{name}{value}" for ch in "\r\n\0"):
            # The header's name is safe to show; its value may be a token.
            raise InvalidActionConfig(f"headers.{name} must be a single-line string")
        headers.append((str(name), value))
    return tuple(headers)


# --- the request (pure) ---------------------------------------------------------------------------


def request_body(message: AlertMessage, settings: WebhookSettings) -> dict[str, Any]:
    if settings.format == "JSON":
        return message.to_dict()
    body: dict[str, Any] = {
        "time": message.timestamp,
        "host": settings.splunk_host,
        "source": "fulcrum",
        "sourcetype": "fulcrum:alert",
        "event": message.to_dict(),
    }
    if settings.splunk_index:
        body["index"] = settings.splunk_index
    return body


def request_headers(settings: WebhookSettings) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    headers.update(settings.headers)
    if settings.format == "SPLUNK_HEC":
        headers["Authorization"] = f"Splunk {settings.splunk_token}"
    return headers


def backoff_delay(settings: WebhookSettings, failed_attempts: int) -> float:
    """The wait after the `failed_attempts`-th failure: base * 2**(n-1), capped."""
    return float(min(settings.backoff_base_s * 2 ** (failed_attempts - 1), settings.backoff_max_s))


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


# --- delivery -------------------------------------------------------------------------------------


class WebhookSender:
    def __init__(
        self, config: Mapping[str, Any], *, sleep: Sleep = asyncio.sleep, clock: Clock | None = None
    ) -> None:
        self.settings = WebhookSettings.from_config(config)
        self._sleep = sleep
        self._clock = clock or SystemClock()

    async def send(self, message: AlertMessage) -> None:
        s = self.settings
        content = json.dumps(request_body(message, s), default=str).encode()
        headers = request_headers(s)
        async with httpx.AsyncClient(
            verify=client_context(s.ca_pem, s.verify) if s.url.scheme == "https" else True,
            timeout=s.timeout_s,
            follow_redirects=False,
            trust_env=False,
            proxy=s.proxy,
        ) as client:
            attempt = 0
            while True:
                attempt += 1
                reason, wait = await self._attempt(client, content, headers, attempt)
                if reason is None:
                    log.debug("alert %s posted to %s (attempt %d)", message.alert_uuid, s.label, attempt)
                    return
                if wait is None or attempt == s.max_attempts:
                    raise DeliveryError(
                        f"webhook {s.label}: {reason} (attempt {attempt} of {s.max_attempts})"
                    )
                log.info("webhook %s: %s; retrying in %.2f s", s.label, reason, wait)
                await self._sleep(wait)

    async def _attempt(
        self, client: httpx.AsyncClient, content: bytes, headers: dict[str, str], attempt: int
    ) -> tuple[str | None, float | None]:
        """(None, None) on success, else (reason, seconds to wait before the next attempt or None when
        retrying cannot help)."""
        s = self.settings
        try:
            response = await client.post(s.url, content=content, headers=headers)
        except httpx.TimeoutException:
            return f"timed out after {s.timeout_s:g} s", backoff_delay(s, attempt)
        except httpx.TransportError as exc:
            cert_error = _certificate_error(exc)
            if cert_error is not None:
                return f"certificate verify failed: {cert_error.verify_message}", None
            return f"connection failed ({exc.__class__.__name__})", backoff_delay(s, attempt)
        if response.is_success:
            return None, None
        reason = f"HTTP {response.status_code}"
        if not is_retryable_status(response.status_code):
            return reason, None
        asked = retry_after_s(response.headers.get("Retry-After"), self._clock.now())
        if asked is None:
            return reason, backoff_delay(s, attempt)
        if asked > s.max_retry_after_s:
            return f"{reason} with Retry-After {asked:g} s, beyond max_retry_after_s", None
        return reason, asked


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None

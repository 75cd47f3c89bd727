"""Alerts as plain-text email over SMTP, with STARTTLS and AUTH.

The config dict is an Avi `alertemailconfig` (the recipients) merged with the system's email settings
(the server), with the password already decrypted:

    {
      "smtp_server": "mail.example.com",
      "smtp_port": 587,                   # optional; default 587 with starttls, 25 without
      "starttls": true,                   # optional, default true; when true the server must offer it
      "ca_pem": "-----BEGIN CERTIFICATE-----...",  # optional; default the system trust store
      "verify": true,                     # optional; false accepts any server certificate
      "username": "alerts",               # optional; AUTH is used when set
      "password": "...",                  # SECRET
      "allow_insecure_auth": false,       # optional; true allows AUTH without STARTTLS
      "from_email": "fulcrum@example.com",
      "to_emails": "ops@example.com, oncall@example.com",  # comma list (or a list)
      "cc_emails": "lead@example.com",    # optional
      "timeout_s": 10                     # optional
    }

The SMTP conversation is blocking `smtplib` run in a worker thread, so it does not hold the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from fulcrum.controller.services.notify import config as cfg
from fulcrum.controller.services.notify.message import (
    AlertMessage,
    DeliveryError,
    InvalidActionConfig,
    os_error_reason,
)
from fulcrum.controller.services.notify.tls import client_context, describe_tls_error

log = logging.getLogger(__name__)

SECRET_KEYS = ("password",)
LEVEL_WORD = {"ALERT_LOW": "LOW", "ALERT_MEDIUM": "MEDIUM", "ALERT_HIGH": "HIGH"}


@dataclass(frozen=True)
class EmailSettings:
    server: str
    port: int
    starttls: bool
    ca_pem: str | None
    verify: bool
    username: str | None
    password: str | None
    from_email: str
    to_emails: tuple[str, ...]
    cc_emails: tuple[str, ...]
    timeout_s: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EmailSettings:
        starttls = cfg.flag(config, "starttls", True)
        username = cfg.optional_text(config, "username")
        if username and not starttls and not cfg.flag(config, "allow_insecure_auth", False):
            raise InvalidActionConfig(
                "username is set but starttls is off: the password would cross the network in clear "
                "(set starttls, or allow_insecure_auth for a trusted relay)"
            )
        to_emails = cfg.address_list(config, "to_emails")
        if not to_emails:
            raise InvalidActionConfig("to_emails is required")
        ca_pem = cfg.optional_text(config, "ca_pem")
        if ca_pem:
            client_context(ca_pem)  # a bad bundle is a config error, found before any connection
        return cls(
            server=cfg.text(config, "smtp_server"),
            port=cfg.integer(config, "smtp_port", 587 if starttls else 25, low=1, high=65535),
            starttls=starttls,
            ca_pem=ca_pem,
            verify=cfg.flag(config, "verify", True),
            username=username,
            password=cfg.text(config, "password") if username else None,
            from_email=cfg.text(config, "from_email"),
            to_emails=to_emails,
            cc_emails=cfg.address_list(config, "cc_emails"),
            timeout_s=cfg.number(config, "timeout_s", 10.0, low=0.1, high=300),
        )

    @property
    def label(self) -> str:
        return f"smtp://{self.server}:{self.port}"


# --- the message (pure) ---------------------------------------------------------------------------


def subject_of(message: AlertMessage) -> str:
    target = f" on {message.obj_name}" if message.obj_name else ""
    return _one_line(f"[Fulcrum {LEVEL_WORD[message.level.value]}] {message.name}{target}")


def body_of(message: AlertMessage) -> str:
    lines = [
        message.summary,
        "",
        f"Alert:     {message.name}",
        f"Level:     {message.level.value}",
        f"Object:    {_object_of(message)}",
        f"Tenant:    {message.tenant or '-'}",
    ]
    if message.event_id:
        lines.append(f"Event:     {message.event_id}")
    if message.metric_id:
        lines.append(f"Metric:    {message.metric_id}")
    lines += [f"Time:      {message.iso_time()}", f"Alert id:  {message.alert_uuid}"]
    if message.details:
        lines += ["", "Details:"]
        lines += [f"  {key}: {_detail(value)}" for key, value in sorted(message.details.items())]
    return "\n".join(lines) + "\n"


def build_email(message: AlertMessage, settings: EmailSettings) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = settings.from_email
    mail["To"] = ", ".join(settings.to_emails)
    if settings.cc_emails:
        mail["Cc"] = ", ".join(settings.cc_emails)
    mail["Subject"] = subject_of(message)
    mail["Date"] = formatdate(message.timestamp, usegmt=True)
    mail["Message-ID"] = make_msgid(idstring=message.alert_uuid[:32] or None, domain="fulcrum.invalid")
    mail.set_content(body_of(message))
    return mail


def _object_of(message: AlertMessage) -> str:
    named = " ".join(part for part in (message.obj_type, message.obj_name) if part) or "-"
    return f"{named} ({message.obj_uuid})" if message.obj_uuid else named


def _detail(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- delivery -------------------------------------------------------------------------------------


class EmailSender:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.settings = EmailSettings.from_config(config)

    async def send(self, message: AlertMessage) -> None:
        mail = build_email(message, self.settings)
        await asyncio.to_thread(self._deliver, mail)
        log.debug("alert %s mailed to %d recipient(s)", message.alert_uuid, len(self._recipients()))

    def _recipients(self) -> tuple[str, ...]:
        return self.settings.to_emails + self.settings.cc_emails

    def _deliver(self, mail: EmailMessage) -> None:
        s = self.settings
        try:
            with smtplib.SMTP(s.server, s.port, timeout=s.timeout_s) as smtp:
                smtp.ehlo()
                if s.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(f"{s.label}: the server does not offer STARTTLS")
                    smtp.starttls(context=client_context(s.ca_pem, s.verify))
                    smtp.ehlo()
                if s.username:
                    self._login(smtp)
                refused = smtp.send_message(mail, from_addr=s.from_email, to_addrs=list(self._recipients()))
        except DeliveryError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{s.label}: every recipient refused ({_refusals(exc.recipients)})") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{s.label}: {_reply(exc.smtp_code, exc.smtp_error)}") from None
        except smtplib.SMTPServerDisconnected:
            raise DeliveryError(f"{s.label}: the server closed the connection") from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"{s.label}: SMTP error ({exc.__class__.__name__})") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"{s.label}: {describe_tls_error(exc)}") from None
        except TimeoutError:
            raise DeliveryError(f"{s.label}: timed out after {s.timeout_s:g} s") from None
        except OSError as exc:
            raise DeliveryError(f"{s.label}: {os_error_reason(exc)}") from None
        if refused:
            raise DeliveryError(f"{s.label}: some recipients refused ({_refusals(refused)})")

    def _login(self, smtp: smtplib.SMTP) -> None:
        # One mechanism, one try: smtplib's login() would retry a wrong password with every mechanism
        # the server offers, which counts double against lockout policies. PLAIN runs inside TLS.
        s = self.settings
        offered = (smtp.esmtp_features.get("auth") or "").upper().split()
        mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None:
            raise DeliveryError(f"{s.label}: the server offers no AUTH PLAIN or LOGIN")
        smtp.user, smtp.password = s.username or "", s.password or ""
        authobject = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        try:
            smtp.auth(mechanism, authobject, initial_response_ok=mechanism == "PLAIN")
        except smtplib.SMTPAuthenticationError as exc:
            # The server's reply text is left out: some servers echo what they were sent.
            raise DeliveryError(
                f"{s.label}: authentication failed for user {s.username!r} (reply {exc.smtp_code})"
            ) from None
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"{s.label}: authentication failed ({exc.__class__.__name__})") from None
        finally:
            smtp.password = ""


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"server replied {code} {_one_line(message)}"


def _refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{rcpt}: {code}" for rcpt, (code, _) in sorted(refused.items()))

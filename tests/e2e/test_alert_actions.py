"""Alert action senders against real receivers on loopback.

Syslog goes to a UDP socket and TCP/TLS listeners whose bytes are parsed as RFC 5424 with RFC 6587
framing; email to aiosmtpd with STARTTLS and AUTH; SNMP traps to the real snmptrapd (started per test
on a free port with its own config, stopped by its pid); webhooks to an HTTP(S) server that answers
from a script. What is checked is what the receiver got, and the reason a failed delivery gives.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulcrum.controller.services.notify import (
    AlertLevel,
    AlertMessage,
    DeliveryError,
    EmailSender,
    InvalidActionConfig,
    SnmpTrapSender,
    SyslogSender,
    WebhookSender,
    build_sender,
)
from fulcrum.controller.services.notify import snmp as snmp_oids
from fulcrum.controller.services.notify.syslog import escape_param
from fulcrum.controller.services.notify.webhook import retry_after_s
from support.certs import self_signed
from support.receivers import (
    HttpReceiver,
    Reply,
    SmtpReceiver,
    Snmptrapd,
    StreamSyslogReceiver,
    UdpSyslogReceiver,
    V3User,
    iter_frames,
    parse_rfc5424,
    server_tls_context,
)

TRICKY_NAME = 'vs "web" \\ down]'  # every character SD-PARAM escaping must handle
SECRET = "s3cret-Passw0rd!"


@pytest.fixture
def alert() -> AlertMessage:
    return AlertMessage(
        alert_uuid="alert-7f2c",
        name=TRICKY_NAME,
        level=AlertLevel.HIGH,
        summary="Virtual service vs-web is DOWN: no pool member is up\nsecond line",
        timestamp=1_717_243_200.25,
        event_id="VS_DOWN",
        obj_type="virtualservice",
        obj_name="vs-web",
        obj_uuid="virtualservice-1234",
        tenant="admin",
        details={"reason": "all servers down", "servers_up": 0},
    )


def send(sender: object, message: AlertMessage) -> None:
    asyncio.run(sender.send(message))  # type: ignore[attr-defined]


# --- syslog ---------------------------------------------------------------------------------------


def test_syslog_over_udp_is_rfc5424_with_escaped_structured_data(alert: AlertMessage) -> None:
    with UdpSyslogReceiver() as receiver:
        config = {
            "sender_hostname": "ctrl-1",
            "syslog_servers": [{"syslog_server": "127.0.0.1", "syslog_server_port": receiver.port}],
        }
        send(SyslogSender(config), alert)
        record = parse_rfc5424(receiver.receive())

    assert (record.facility, record.severity, record.pri) == (20, 2, 162)  # LOCAL4, crit
    assert record.version == 1
    assert record.timestamp.timestamp() == alert.timestamp
    assert (record.hostname, record.app_name, record.procid, record.msgid) == (
        "ctrl-1",
        "fulcrum",
        "-",
        "VS_DOWN",
    )
    assert record.structured_data == {
        "fulcrum@32473": {
            "uuid": "alert-7f2c",
            "alert": TRICKY_NAME,
            "level": "ALERT_HIGH",
            "obj_type": "virtualservice",
            "obj": "vs-web",
            "obj_uuid": "virtualservice-1234",
            "tenant": "admin",
            "event_id": "VS_DOWN",
        }
    }
    assert record.msg_has_bom
    assert record.msg == "Virtual service vs-web is DOWN: no pool member is up second line"


def test_syslog_over_tcp_uses_octet_counting(alert: AlertMessage) -> None:
    medium = AlertMessage(
        alert_uuid="alert-2",
        name="se-cpu-high",
        level=AlertLevel.MEDIUM,
        summary="SE cpu above 90%",
        timestamp=alert.timestamp,
        metric_id="se_stats.avg_cpu_usage",
    )
    with StreamSyslogReceiver() as receiver:
        config = {
            "facility": "LOCAL0",
            "syslog_servers": [
                {"syslog_server": "127.0.0.1", "syslog_server_port": receiver.port, "protocol": "TCP"}
            ],
        }
        sender = SyslogSender(config)
        send(sender, alert)
        send(sender, medium)
        records = list(iter_frames(receiver.wait_streams(2)))

    assert [(r.facility, r.severity) for r in records] == [(16, 2), (16, 4)]
    assert records[1].msgid == "se_stats.avg_cpu_usage"
    assert records[1].structured_data["fulcrum@32473"]["metric_id"] == "se_stats.avg_cpu_usage"
    assert records[1].msg == "SE cpu above 90%"


def test_syslog_over_tls_verifies_the_server(tmp_path: Path, alert: AlertMessage) -> None:
    cert, key = self_signed("syslog.test", dns_names=("syslog.test",), ip_names=("127.0.0.1",))
    with StreamSyslogReceiver(tls=server_tls_context(tmp_path, cert, key)) as receiver:
        server = {"syslog_server": "127.0.0.1", "syslog_server_port": receiver.port, "protocol": "TLS"}
        send(SyslogSender({"syslog_servers": [{**server, "ca_pem": cert}]}), alert)
        (record,) = list(iter_frames(receiver.wait_streams(1)))
        assert record.structured_data["fulcrum@32473"]["alert"] == TRICKY_NAME

        other_ca, _ = self_signed("other-ca")
        with pytest.raises(DeliveryError, match="certificate verify failed"):
            send(SyslogSender({"syslog_servers": [{**server, "ca_pem": other_ca}]}), alert)
        with pytest.raises(DeliveryError, match="certificate verify failed"):  # the system store
            send(SyslogSender({"syslog_servers": [server]}), alert)
        send(SyslogSender({"syslog_servers": [{**server, "verify": False}]}), alert)
        assert len(receiver.wait_streams(2)) == 2  # only the verified and the opted-out ones arrived


def test_syslog_one_dead_server_does_not_stop_the_others(alert: AlertMessage) -> None:
    with StreamSyslogReceiver() as closed:
        dead_port = closed.port
    with UdpSyslogReceiver() as receiver:
        config = {
            "syslog_servers": [
                {"syslog_server": "127.0.0.1", "syslog_server_port": dead_port, "protocol": "TCP"},
                {"syslog_server": "127.0.0.1", "syslog_server_port": receiver.port, "protocol": "UDP"},
            ]
        }
        with pytest.raises(DeliveryError, match=rf"tcp://127.0.0.1:{dead_port}: .*refused"):
            send(SyslogSender(config), alert)
        assert parse_rfc5424(receiver.receive()).msgid == "VS_DOWN"


def test_sd_param_escaping() -> None:
    assert escape_param('a"b\\c]d') == 'a\\"b\\\\c\\]d'


# --- email ----------------------------------------------------------------------------------------


@pytest.fixture
def smtp_tls(tmp_path: Path) -> tuple[str, object]:
    cert, key = self_signed("mail.test", dns_names=("mail.test",), ip_names=("127.0.0.1",))
    return cert, server_tls_context(tmp_path / "smtp", cert, key)


@pytest.fixture
def smtp(smtp_tls: tuple[str, object]) -> Iterator[SmtpReceiver]:
    _, context = smtp_tls
    with SmtpReceiver(tls=context, users={"alerts": SECRET}) as receiver:  # type: ignore[arg-type]
        yield receiver


def email_config(smtp: SmtpReceiver, ca_pem: str, **overrides: object) -> dict[str, object]:
    return {
        "smtp_server": "127.0.0.1",
        "smtp_port": smtp.port,
        "starttls": True,
        "ca_pem": ca_pem,
        "username": "alerts",
        "password": SECRET,
        "from_email": "fulcrum@example.com",
        "to_emails": "ops@example.com, oncall@example.com",
        "cc_emails": "lead@example.com",
        **overrides,
    }


def test_email_over_starttls_with_auth(
    smtp: SmtpReceiver, smtp_tls: tuple[str, object], alert: AlertMessage
) -> None:
    send(EmailSender(email_config(smtp, smtp_tls[0])), alert)

    (mail,) = smtp.mails
    assert mail.over_tls and mail.authenticated_as == "alerts"
    assert mail.mail_from == "fulcrum@example.com"
    assert mail.rcpt_tos == ["ops@example.com", "oncall@example.com", "lead@example.com"]
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert parsed["From"] == "fulcrum@example.com"
    assert parsed["To"] == "ops@example.com, oncall@example.com"
    assert parsed["Cc"] == "lead@example.com"
    assert parsed["Subject"] == f"[Fulcrum HIGH] {TRICKY_NAME} on vs-web"
    body = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert body.startswith(alert.summary)
    for line in (
        "Level:     ALERT_HIGH",
        "Object:    virtualservice vs-web (virtualservice-1234)",
        "Event:     VS_DOWN",
        "Time:      2024-06-01T12:00:00.250000Z",
        "  reason: all servers down",
        "  servers_up: 0",
    ):
        assert line in body


def test_email_wrong_password_fails_without_revealing_it(
    smtp: SmtpReceiver, smtp_tls: tuple[str, object], alert: AlertMessage, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-" + SECRET
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DeliveryError, match="authentication failed for user 'alerts'") as failure:
        send(EmailSender(email_config(smtp, smtp_tls[0], password=wrong)), alert)
    assert smtp.auth_attempts == [("alerts", False)]
    assert smtp.mails == []
    for text in (str(failure.value), repr(failure.value.__cause__), caplog.text):
        assert wrong not in text and SECRET not in text


def test_email_refuses_an_untrusted_server(smtp: SmtpReceiver, alert: AlertMessage) -> None:
    other_ca, _ = self_signed("other-ca")
    with pytest.raises(DeliveryError, match="certificate verify failed"):
        send(EmailSender(email_config(smtp, other_ca)), alert)
    assert smtp.auth_attempts == [] and smtp.mails == []


def test_email_requires_starttls_when_configured(alert: AlertMessage) -> None:
    with SmtpReceiver() as plain:
        config = {
            "smtp_server": "127.0.0.1",
            "smtp_port": plain.port,
            "from_email": "fulcrum@example.com",
            "to_emails": ["ops@example.com"],
        }
        with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
            send(EmailSender(config), alert)
        with pytest.raises(InvalidActionConfig, match="in clear"):
            EmailSender({**config, "starttls": False, "username": "alerts", "password": SECRET})
        send(EmailSender({**config, "starttls": False}), alert)  # an explicitly plain relay
        assert [m.rcpt_tos for m in plain.mails] == [["ops@example.com"]]


# --- SNMP traps -----------------------------------------------------------------------------------

ENGINE_ID = "80007ed904" + b"fulcrum-test".hex()
V3 = V3User(ENGINE_ID, "fulcrum", "SHA", "auth-" + SECRET, "AES", "priv-" + SECRET)
needs_snmptrapd = pytest.mark.skipif(
    not Snmptrapd.available(), reason="snmptrapd not installed: make test apt-get installs it"
)


@pytest.fixture
def trapd(tmp_path: Path) -> Iterator[Snmptrapd]:
    with Snmptrapd(tmp_path / "snmptrapd", community="fulcrum-c0mm", users=(V3,)) as receiver:
        yield receiver


def v3_config(trapd: Snmptrapd, **user: str) -> dict[str, object]:
    return {
        "engine_id": ENGINE_ID,
        "trap_servers": [
            {
                "ip_addr": {"addr": "127.0.0.1", "type": "V4"},
                "port": trapd.port,
                "version": "SNMP_VER3",
                "user": {
                    "username": "fulcrum",
                    "auth_type": "SNMP_V3_AUTH_SHA",
                    "auth_passphrase": V3.auth_passphrase,
                    "priv_type": "SNMP_V3_PRIV_AES",
                    "priv_passphrase": V3.priv_passphrase,
                    **user,
                },
            }
        ],
    }


def assert_alert_trap(trap_varbinds: dict[str, tuple[str, object]], alert: AlertMessage) -> None:
    oid = snmp_oids.VARBINDS
    assert trap_varbinds["1.3.6.1.6.3.1.1.4.1.0"] == ("OID", "1.3.6.1.4.1.32473.1.0.1")  # snmpTrapOID.0
    assert "1.3.6.1.2.1.1.3.0" in trap_varbinds  # sysUpTime.0
    values = {name: trap_varbinds[oid[name]][1] for name in oid}
    assert values == {
        "fulcrumAlertUuid": alert.alert_uuid,
        "fulcrumAlertName": alert.name,
        "fulcrumAlertLevel": 3,
        "fulcrumAlertObjectType": "virtualservice",
        "fulcrumAlertObjectName": "vs-web",
        "fulcrumAlertObjectUuid": "virtualservice-1234",
        "fulcrumAlertTenant": "admin",
        "fulcrumAlertEventId": "VS_DOWN",
        "fulcrumAlertMetricId": "",
        "fulcrumAlertSummary": alert.summary.replace("\n", " "),  # one line, as in syslog
        "fulcrumAlertTime": "2024-06-01T12:00:00.250000Z",
    }
    assert trap_varbinds[oid["fulcrumAlertLevel"]][0] == "INTEGER"


@needs_snmptrapd
def test_snmp_v2c_trap(trapd: Snmptrapd, alert: AlertMessage) -> None:
    config = {
        "trap_servers": [
            {"ip_addr": "127.0.0.1", "port": trapd.port, "version": "SNMP_VER2", "community": "fulcrum-c0mm"}
        ]
    }
    send(build_sender("snmp_trap", config), alert)
    (trap,) = trapd.wait_traps(1)
    assert trap.source.startswith("UDP: [127.0.0.1]")
    assert_alert_trap(trap.varbinds, alert)


class FixedClock:
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


@needs_snmptrapd
def test_snmp_v3_authpriv_traps(trapd: Snmptrapd, alert: AlertMessage) -> None:
    # Every send uses a fresh engine with the same id whose clock starts at zero; snmptrapd accepts
    # it because snmpEngineBoots comes from the wall clock and so never goes down.
    now = time.time()
    send(SnmpTrapSender(v3_config(trapd), clock=FixedClock(now)), alert)
    send(SnmpTrapSender(v3_config(trapd), clock=FixedClock(now)), alert)
    send(SnmpTrapSender(v3_config(trapd), clock=FixedClock(now + 3600)), alert)
    traps = trapd.wait_traps(3)
    for trap in traps:
        assert_alert_trap(trap.varbinds, alert)

    # Boots that went down (a clock set back) look like a replay to the receiver, which drops them.
    late = AlertMessage(alert_uuid="from-the-past", name="x", level=AlertLevel.LOW, summary="x", timestamp=0)
    send(SnmpTrapSender(v3_config(trapd), clock=FixedClock(now)), late)
    send(SnmpTrapSender(v3_config(trapd), clock=FixedClock(now + 3600)), alert)
    assert len(trapd.wait_traps(4)) == 4
    assert "from-the-past" not in trapd.log()


@needs_snmptrapd
@pytest.mark.parametrize(
    ("wrong", "rejection"),
    [
        ("auth_passphrase", "Authentication failed for fulcrum"),
        ("priv_passphrase", "error parsing ScopedPDU"),
    ],
)
def test_snmp_v3_wrong_passphrase_is_not_delivered(
    trapd: Snmptrapd, alert: AlertMessage, wrong: str, rejection: str
) -> None:
    rejected = AlertMessage(
        alert_uuid="must-not-arrive", name="x", level=AlertLevel.LOW, summary="x", timestamp=0
    )
    send(
        SnmpTrapSender(v3_config(trapd, **{wrong: "not-the-" + SECRET})), rejected
    )  # no error: unacknowledged
    # A good trap right behind the bad one marks when snmptrapd has handled both.
    send(SnmpTrapSender(v3_config(trapd)), alert)
    (trap,) = trapd.wait_traps(1)
    assert trap.value(snmp_oids.VARBINDS["fulcrumAlertUuid"]) == alert.alert_uuid
    assert rejection in trapd.log()  # it arrived, and was refused
    assert "must-not-arrive" not in trapd.log()


def test_snmp_config_is_checked_before_sending() -> None:
    with pytest.raises(
        InvalidActionConfig, match=r"trap_servers\[0\]\.user\.auth_passphrase must have at least 8"
    ):
        SnmpTrapSender(
            {
                "trap_servers": [
                    {
                        "ip_addr": "127.0.0.1",
                        "version": "SNMP_VER3",
                        "user": {"username": "u", "auth_passphrase": "short"},
                    }
                ]
            }
        )
    with pytest.raises(InvalidActionConfig, match="priv_type must be one of"):
        SnmpTrapSender(
            {
                "trap_servers": [
                    {
                        "ip_addr": "127.0.0.1",
                        "version": "SNMP_VER3",
                        "user": {"username": "u", "priv_type": "SNMP_V3_PRIV_DES"},
                    }
                ]
            }
        )


# --- webhooks -------------------------------------------------------------------------------------

TOKEN_PATH = "/hooks/T0KEN-in-path"


class RecordingSleep:
    """Really sleeps (the delays are tiny) and records what was asked, to check the backoff shape."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(seconds)


def test_webhook_posts_json_with_custom_headers(alert: AlertMessage) -> None:
    with HttpReceiver() as receiver:
        config = {"url": receiver.url(TOKEN_PATH), "headers": {"X-Api-Key": SECRET}}
        send(WebhookSender(config), alert)
    (request,) = receiver.requests
    assert request.path == TOKEN_PATH
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "alert_uuid": "alert-7f2c",
        "name": TRICKY_NAME,
        "level": "ALERT_HIGH",
        "summary": alert.summary,
        "timestamp": alert.timestamp,
        "time": "2024-06-01T12:00:00.250000Z",
        "event_id": "VS_DOWN",
        "metric_id": None,
        "obj_type": "virtualservice",
        "obj_name": "vs-web",
        "obj_uuid": "virtualservice-1234",
        "tenant": "admin",
        "details": {"reason": "all servers down", "servers_up": 0},
    }


def test_webhook_splunk_hec_over_verified_https(tmp_path: Path, alert: AlertMessage) -> None:
    cert, key = self_signed("splunk.test", ip_names=("127.0.0.1",))
    with HttpReceiver(tls=server_tls_context(tmp_path, cert, key)) as receiver:
        config = {
            "url": receiver.url("/services/collector/event"),
            "format": "SPLUNK_HEC",
            "splunk_token": SECRET,
            "splunk_index": "alerts",
            "splunk_host": "ctrl-1",
            "ca_pem": cert,
        }
        send(WebhookSender(config), alert)
        (request,) = receiver.requests
        assert request.headers["authorization"] == f"Splunk {SECRET}"
        assert request.json() == {
            "time": alert.timestamp,
            "host": "ctrl-1",
            "source": "fulcrum",
            "sourcetype": "fulcrum:alert",
            "index": "alerts",
            "event": alert.to_dict(),
        }

        other_ca, _ = self_signed("other-ca")
        sleep = RecordingSleep()
        with pytest.raises(DeliveryError, match=r"certificate verify failed.*\(attempt 1 of 4\)"):
            send(WebhookSender({**config, "ca_pem": other_ca}, sleep=sleep), alert)
        assert sleep.delays == [] and len(receiver.requests) == 1  # a bad certificate is not retried


def test_webhook_retries_5xx_with_exponential_backoff(alert: AlertMessage) -> None:
    with HttpReceiver([Reply(503), Reply(503), Reply(200)]) as receiver:
        sleep = RecordingSleep()
        config = {"url": receiver.url(TOKEN_PATH), "backoff_base_s": 0.02, "max_attempts": 5}
        send(WebhookSender(config, sleep=sleep), alert)
    assert len(receiver.requests) == 3
    assert sleep.delays == [0.02, 0.04]
    assert {r.body for r in receiver.requests} == {receiver.requests[0].body}  # the same alert each time


def test_webhook_gives_up_after_max_attempts_without_naming_the_path(alert: AlertMessage) -> None:
    with HttpReceiver([Reply(500)]) as receiver:
        config = {"url": receiver.url(TOKEN_PATH), "backoff_base_s": 0.001, "max_attempts": 3}
        with pytest.raises(DeliveryError) as failure:
            send(WebhookSender(config), alert)
    assert len(receiver.requests) == 3
    assert str(failure.value) == f"webhook http://127.0.0.1:{receiver.port}: HTTP 500 (attempt 3 of 3)"
    assert "T0KEN" not in str(failure.value)


def test_webhook_does_not_retry_other_4xx(alert: AlertMessage) -> None:
    with (
        HttpReceiver([Reply(400), Reply(200)]) as receiver,
        pytest.raises(DeliveryError, match=r"HTTP 400 \(attempt 1 of 4\)"),
    ):
        send(WebhookSender({"url": receiver.url(), "backoff_base_s": 0.001}), alert)
    assert len(receiver.requests) == 1


def test_webhook_honours_retry_after(alert: AlertMessage) -> None:
    with HttpReceiver([Reply(429, {"Retry-After": "1"}), Reply(200)]) as receiver:
        sleep = RecordingSleep()
        send(WebhookSender({"url": receiver.url(), "backoff_base_s": 0.001}, sleep=sleep), alert)
    first, second = receiver.requests
    assert sleep.delays == [1.0]
    assert second.at - first.at >= 1.0

    with HttpReceiver([Reply(503, {"Retry-After": "120"}), Reply(200)]) as receiver:
        config = {"url": receiver.url(), "max_retry_after_s": 30}
        with pytest.raises(DeliveryError, match="Retry-After 120 s, beyond max_retry_after_s"):
            send(WebhookSender(config), alert)
    assert len(receiver.requests) == 1


def test_webhook_retries_connection_errors(alert: AlertMessage) -> None:
    with HttpReceiver() as closed:
        url = closed.url(TOKEN_PATH)
    sleep = RecordingSleep()
    with pytest.raises(DeliveryError, match=r"connection failed \(ConnectError\) \(attempt 3 of 3\)"):
        send(WebhookSender({"url": url, "max_attempts": 3, "backoff_base_s": 0.01}, sleep=sleep), alert)
    assert sleep.delays == [0.01, 0.02]


def test_retry_after_accepts_an_http_date() -> None:
    now = time.time()
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert retry_after_s(later, now) == pytest.approx(30, abs=1)
    assert retry_after_s("soon", now) is None

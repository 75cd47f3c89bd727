"""Real receivers for alert actions, on loopback: syslog over UDP, TCP and TLS, SMTP with STARTTLS and
AUTH (aiosmtpd), snmptrapd, and an HTTP(S) endpoint that records requests and answers from a script.

Each receiver is a context manager that stops exactly what it started. The parsers here (RFC 5424,
RFC 6587 octet counting, snmptrapd's output) are written from the RFCs, independently of the senders
they check.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from support.processes import free_port

LOOPBACK = "127.0.0.1"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def write_tls_files(directory: Path, cert_pem: str, key_pem: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "server.crt", directory / "server.key"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    return cert, key


def server_tls_context(directory: Path, cert_pem: str, key_pem: str) -> ssl.SSLContext:
    cert, key = write_tls_files(directory, cert_pem, key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class _Receiver:
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


# --- syslog ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Syslog5424:
    pri: int
    version: int
    timestamp: dt.datetime
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: dict[str, dict[str, str]]
    msg: str
    msg_has_bom: bool

    @property
    def facility(self) -> int:
        return self.pri // 8

    @property
    def severity(self) -> int:
        return self.pri % 8


_HEADER = re.compile(rb"<(\d{1,3})>([1-9]\d{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ")
_SD_NAME = re.compile(r"[\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]{1,32}")  # PRINTUSASCII but = ] " (and SP)
_BOM = b"\xef\xbb\xbf"


def parse_rfc5424(data: bytes) -> Syslog5424:
    """A strict RFC 5424 parse: raises AssertionError on the first thing that does not conform."""
    header = _HEADER.match(data)
    assert header, f"not an RFC 5424 header: {data[:80]!r}"
    pri, version, timestamp, hostname, app_name, procid, msgid = (g.decode("ascii") for g in header.groups())
    assert 0 <= int(pri) <= 191, f"PRI {pri} out of range"
    assert len(hostname) <= 255 and len(app_name) <= 48 and len(procid) <= 128 and len(msgid) <= 32
    parsed_time = dt.datetime.fromisoformat(timestamp)
    assert parsed_time.tzinfo is not None, "TIMESTAMP must carry a time zone"
    rest = data[header.end() :].decode("utf-8")
    structured, rest = _parse_structured_data(rest)
    msg_has_bom = False
    if rest:
        assert rest.startswith(" "), "MSG must follow STRUCTURED-DATA after one space"
        raw = rest[1:].encode()
        msg_has_bom = raw.startswith(_BOM)
        rest = raw.removeprefix(_BOM).decode("utf-8")
    return Syslog5424(
        int(pri), int(version), parsed_time, hostname, app_name, procid, msgid, structured, rest, msg_has_bom
    )


def _parse_structured_data(text: str) -> tuple[dict[str, dict[str, str]], str]:
    if text.startswith("-"):
        return {}, text[1:]
    elements: dict[str, dict[str, str]] = {}
    pos = 0
    assert text.startswith("["), "STRUCTURED-DATA must be '-' or start with '['"
    while pos < len(text) and text[pos] == "[":
        pos += 1
        sd_id = _SD_NAME.match(text, pos)
        assert sd_id, f"bad SD-ID at {text[pos : pos + 20]!r}"
        pos = sd_id.end()
        params: dict[str, str] = {}
        while text[pos] == " ":
            name = _SD_NAME.match(text, pos + 1)
            assert name, f"bad PARAM-NAME at {text[pos : pos + 20]!r}"
            pos = name.end()
            assert text[pos : pos + 2] == '="', "PARAM-NAME must be followed by '=\"'"
            pos += 2
            value: list[str] = []
            while text[pos] != '"':
                if text[pos] == "\\" and text[pos + 1] in '"\\]':
                    value.append(text[pos + 1])
                    pos += 2
                else:
                    assert text[pos] != "]", "an unescaped ']' inside PARAM-VALUE"
                    value.append(text[pos])
                    pos += 1
            pos += 1
            params[name.group()] = "".join(value)
        assert text[pos] == "]", f"SD-ELEMENT not closed at {text[pos : pos + 20]!r}"
        pos += 1
        elements[sd_id.group()] = params
    return elements, text[pos:]


def split_octet_counted(stream: bytes) -> list[bytes]:
    """Frames of an RFC 6587 octet-counted stream (`MSG-LEN SP SYSLOG-MSG`...); raises AssertionError if
    the stream is not exactly a sequence of such frames."""
    frames = []
    pos = 0
    while pos < len(stream):
        length = re.compile(rb"[1-9]\d{0,8} ").match(stream, pos)
        assert length, f"no MSG-LEN at offset {pos}: {stream[pos : pos + 20]!r}"
        pos = length.end()
        size = int(length.group()[:-1])
        assert pos + size <= len(stream), f"frame of {size} octets truncated"
        frames.append(stream[pos : pos + size])
        pos += size
    return frames


class UdpSyslogReceiver(_Receiver):
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port: int = self.sock.getsockname()[1]

    def start(self) -> None:
        pass

    def receive(self, timeout: float = 5.0) -> bytes:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65535)
        return data

    def stop(self) -> None:
        self.sock.close()


class StreamSyslogReceiver(_Receiver):
    """A TCP (or, with `tls`, TLS) listener that keeps each connection's whole byte stream."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self.listener.getsockname()[1]
        self._streams: dict[int, bytes] = {}  # accept order -> the connection's bytes
        self.handshake_failures: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.listener.settimeout(0.1)
        self._stopping = threading.Event()
        accept = threading.Thread(target=self._accept, name="syslog-accept", daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        accepted = 0
        while not self._stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            reader = threading.Thread(target=self._read, args=(conn, accepted), daemon=True)
            accepted += 1
            reader.start()
            self._threads.append(reader)

    def _read(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(5)
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except (ssl.SSLError, OSError) as exc:
            with self._lock:
                self.handshake_failures.append(exc.__class__.__name__)
            return
        finally:
            conn.close()
        with self._lock:
            self._streams[index] = b"".join(chunks)

    @property
    def streams(self) -> list[bytes]:
        """The bytes of each closed connection, in the order the connections were accepted."""
        with self._lock:
            return [self._streams[i] for i in sorted(self._streams)]

    def wait_streams(self, count: int, timeout: float = 5.0) -> list[bytes]:
        wait_until(lambda: len(self._streams) >= count, timeout, f"{count} syslog connection(s)")
        return self.streams

    def stop(self) -> None:
        self._stopping.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


# --- SMTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    over_tls: bool
    authenticated_as: str | None


class _RecordingHandler:
    def __init__(self) -> None:
        self.mails: list[ReceivedMail] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self.mails.append(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(envelope.original_content or b""),
                over_tls=session.ssl is not None,
                authenticated_as=login,
            )
        )
        return "250 Message accepted for delivery"


class SmtpReceiver(_Receiver):
    """aiosmtpd on loopback. With `tls`, STARTTLS is offered and required before MAIL; with `users`,
    AUTH (PLAIN/LOGIN, only after STARTTLS) is required."""

    def __init__(self, tls: ssl.SSLContext | None = None, users: dict[str, str] | None = None) -> None:
        self.handler = _RecordingHandler()
        self.users = users or {}
        self.port = free_port()
        self.auth_attempts: list[tuple[str, bool]] = []
        self.controller = Controller(
            self.handler,
            hostname=LOOPBACK,
            port=self.port,
            tls_context=tls,
            require_starttls=tls is not None,
            auth_required=bool(self.users),
            auth_require_tls=True,
            authenticator=self._authenticate if self.users else None,
        )

    @property
    def mails(self) -> list[ReceivedMail]:
        return self.handler.mails

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        ok = self.users.get(login) == auth_data.password.decode()
        self.auth_attempts.append((login, ok))
        return AuthResult(success=ok, handled=False, auth_data=login)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# --- snmptrapd ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class V3User:
    engine_id: str  # hex, without 0x
    username: str
    auth_protocol: str  # as snmptrapd spells it: SHA, MD5, SHA-256, ...
    auth_passphrase: str
    priv_protocol: str  # AES or DES
    priv_passphrase: str


@dataclass(frozen=True)
class Trap:
    source: str
    varbinds: dict[str, tuple[str, Any]]  # numeric OID without the leading dot -> (type, value)

    def value(self, oid: str) -> Any:
        return self.varbinds[oid][1]


def udp_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class Snmptrapd(_Receiver):
    """The real snmptrapd, in the foreground, on a free loopback UDP port, with its own config file and
    persistent directory under `workdir` (it reads no system config), logging each trap as one line:
    `TRAP<TAB>transport<TAB>oid = TYPE: value<TAB>...`."""

    BINARY = "snmptrapd"

    def __init__(self, workdir: Path, community: str = "public", users: tuple[V3User, ...] = ()) -> None:
        self.workdir = workdir
        self.community = community
        self.users = users
        self.port = udp_free_port()
        self.log_path = workdir / "snmptrapd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.BINARY) is not None or Path("/usr/sbin/snmptrapd").exists()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "persist").mkdir(exist_ok=True)
        conf = self.workdir / "snmptrapd.conf"
        lines = [
            "disableAuthorization yes",
            f"authCommunity log {self.community}",
            *(
                f"createUser -e 0x{u.engine_id} {u.username} {u.auth_protocol} {u.auth_passphrase} "
                f"{u.priv_protocol} {u.priv_passphrase}"
                for u in self.users
            ),
            r"format2 TRAP\t%b\t%V\t%v\n",
        ]
        conf.write_text("\n".join(lines) + "\n")
        binary = shutil.which(self.BINARY) or "/usr/sbin/snmptrapd"
        argv = [binary, "-f", "-Lf", str(self.log_path), "-C", "-c", str(conf), "-n", "-On"]
        argv.append(f"udp:{LOOPBACK}:{self.port}")
        # No MIBs: the output stays numeric and no system MIB directory is read.
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SNMP_PERSISTENT_DIR": str(self.workdir / "persist"),
            "MIBS": "",
        }
        stderr = open(self.workdir / "snmptrapd.stderr", "wb")  # noqa: SIM115 - closed in stop()
        self._stderr = stderr
        self.process = subprocess.Popen(argv, stdout=stderr, stderr=stderr, env=env)
        wait_until(
            lambda: "NET-SNMP version" in self.log() or self.process.poll() is not None, 10, "snmptrapd"
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"snmptrapd exited with {self.process.returncode}: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def traps(self) -> list[Trap]:
        return [_parse_trap_line(line) for line in self.log().splitlines() if line.startswith("TRAP\t")]

    def wait_traps(self, count: int, timeout: float = 5.0) -> list[Trap]:
        wait_until(lambda: len(self.traps()) >= count, timeout, f"{count} trap(s) in snmptrapd's log")
        return self.traps()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None:
            self._stderr.close()


_VARBIND = re.compile(r"\.?([\d.]+) = (?:([\w-]+): ?)?(.*)", re.DOTALL)  # an empty string has no type


def _parse_trap_line(line: str) -> Trap:
    _, source, *varbinds = line.split("\t")
    parsed: dict[str, tuple[str, Any]] = {}
    for item in varbinds:
        match = _VARBIND.fullmatch(item.strip())
        assert match, f"unreadable varbind {item!r}"
        oid, kind, raw = match.groups()
        kind = kind or "STRING"
        parsed[oid] = (kind, _varbind_value(kind, raw))
    return Trap(source, parsed)


def _varbind_value(kind: str, raw: str) -> Any:
    if kind == "STRING":
        return json.loads(raw) if raw.startswith('"') else raw  # net-snmp quotes like a JSON string
    if kind == "Hex-STRING":
        return bytes.fromhex(raw).decode("utf-8")
    if kind in ("INTEGER", "Gauge32", "Counter32"):
        return int(raw)
    if kind == "OID":
        return raw.lstrip(".")
    return raw


# --- HTTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"text":"Success","code":0}'


class HttpReceiver(_Receiver):
    """An HTTP(S) server on loopback that records every request and answers with `replies` in order
    (the last one again once they run out)."""

    def __init__(self, replies: list[Reply] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.replies = replies or [Reply()]
        self.requests: list[RecordedRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    index = len(receiver.requests)
                    receiver.requests.append(
                        RecordedRequest(
                            "POST",
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                        )
                    )
                reply = receiver.replies[min(index, len(receiver.replies) - 1)]
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def iter_frames(streams: list[bytes]) -> Iterator[Syslog5424]:
    for stream in streams:
        for frame in split_octet_counted(stream):
            yield parse_rfc5424(frame)

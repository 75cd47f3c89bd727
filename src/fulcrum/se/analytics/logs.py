"""Request logs: the format HAProxy writes them in, their parser, the socket that receives them, and the
bounded book that keeps one report interval's timer sums and the logs worth shipping.

HAProxy sends one datagram per HTTP request (per connection in L4) to the agent's UNIX datagram socket,
as the bare message (`format raw`). Fields are separated by single spaces and none but the last can
contain one: they are names the view generated, numbers, addresses, HAProxy's termination letters, the
TLS version and an HTTP method (a token). The last field of an HTTP line is the URI, quoted by HAProxy
(`%{+Q}HU`); HAProxy encodes every byte of it that could make the line ambiguous (control characters,
bytes >= 0x7f, `"` and `#`) as `#XX` (its `url_encode_map`), so `#XX` is the only escape to undo and
the URI round-trips exactly. HAProxy keeps at most `tune.http.logurilen` (1024) bytes of a request line
for its logs, so longer URIs arrive cut.

Timers are HAProxy's, in ms, -1 when the step was never reached: Th TLS handshake, Ti idle before the
request, TR receiving the request, Tw queue, Tc server connect, Tr server response headers, Ta the whole
request (HTTP), Tt the whole connection (L4).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import socket
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from fulcrum.protocol.se import AnalyticsSettings

log = logging.getLogger("fulcrum.se.analytics")
K = TypeVar("K")

# Version 1 of the formats: the first word says which (and lets the parser refuse anything else).
HTTP_LOG_FORMAT = "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
TCP_LOG_FORMAT = "t1 %Ts.%ms %f %b %s %ci %cp %Th %Tw %Tc %Tt %U %B %tsc %sslv"
LOG_LINE_MAX = 4096  # HAProxy's `len`: a 1024-byte URI, every byte encoded, still fits
_HTTP_WORDS = 21
_TCP_WORDS = 15
_TAGS = (b"h1 ", b"t1 ")
_NO_SERVER = "<NOSRV>"
_ENCODED = re.compile(rb"#([0-9A-Fa-f]{2})")
# The first letter of the termination state when the server or HAProxy failed the request, rather than
# the client (C, c) or nobody (-): S server, s server timeout, P proxy, R resource, I internal,
# K killed by an admin, D/U killed when the server went down / a backup came up.
_FAILURE_CAUSES = frozenset("SsPRIKDU")


@dataclass(frozen=True)
class ParsedLog:
    """One log line with HAProxy's names (the view maps them to ids) and raw timers."""

    http: bool
    ts: float
    frontend: str
    backend: str
    server: str | None  # None: no server was chosen
    client_ip: str
    client_port: int
    handshake_ms: int
    idle_ms: int
    request_ms: int
    queue_ms: int
    connect_ms: int
    response_ms: int
    total_ms: int
    status: int  # 0: none (L4, or no response was sent)
    bytes_in: int
    bytes_out: int
    termination: str
    tls_version: str | None
    method: str = ""
    uri: str = ""

    @property
    def client_latency_ms(self) -> int:
        """Receiving the request: the TLS handshake and the request itself (not keep-alive idle time)."""
        return max(self.handshake_ms, 0) + max(self.request_ms, 0)

    @property
    def server_latency_ms(self) -> int:
        """Connecting to the server and waiting for its response headers."""
        return max(self.connect_ms, 0) + max(self.response_ms, 0)


def decode_uri(raw: bytes) -> str:
    """Undo HAProxy's `#XX` encoding and the quotes of `%{+Q}` (a cut line may lack the closing one)."""
    if raw.startswith(b'"'):
        raw = raw[1:-1] if len(raw) > 1 and raw.endswith(b'"') else raw[1:]
    return _ENCODED.sub(lambda m: bytes([int(m.group(1), 16)]), raw).decode("utf-8", errors="replace")


def _text(raw: bytes) -> str:
    return raw.decode("ascii", errors="replace")


def _optional(raw: bytes) -> str | None:
    return None if raw in (b"-", b"") else _text(raw)


def parse_line(datagram: bytes) -> ParsedLog | None:
    """A log line of either format, or None when it is not one (a truncated or foreign datagram)."""
    line = datagram.rstrip(b"\r\n")
    tag = line[:3]
    try:
        if tag == _TAGS[0]:
            return _parse_http(line.split(b" ", _HTTP_WORDS - 1))
        if tag == _TAGS[1]:
            return _parse_tcp(line.split(b" "))
    except ValueError:
        return None
    return None


def _server(raw: bytes) -> str | None:
    server = _text(raw)
    return None if server == _NO_SERVER else server


def _port(raw: bytes) -> int:
    return int(raw) if raw.isdigit() else 0


def _parse_http(words: list[bytes]) -> ParsedLog | None:
    if len(words) != _HTTP_WORDS:
        return None
    _, ts, fe, be, srv, ci, cp, th, ti, treq, tw, tc, tr, ta, st, up, down, term, sslv, method, uri = words
    return ParsedLog(
        http=True,
        ts=float(ts),
        frontend=_text(fe),
        backend=_text(be),
        server=_server(srv),
        client_ip=_text(ci),
        client_port=_port(cp),
        handshake_ms=int(th),
        idle_ms=int(ti),
        request_ms=int(treq),
        queue_ms=int(tw),
        connect_ms=int(tc),
        response_ms=int(tr),
        total_ms=int(ta),
        status=max(int(st), 0),
        bytes_in=int(up),
        bytes_out=int(down),
        termination=_text(term),
        tls_version=_optional(sslv),
        method=_text(method),
        uri=decode_uri(uri),
    )


def _parse_tcp(words: list[bytes]) -> ParsedLog | None:
    if len(words) != _TCP_WORDS:
        return None
    _, ts, fe, be, srv, ci, cp, th, tw, tc, tt, up, down, term, sslv = words
    return ParsedLog(
        http=False,
        ts=float(ts),
        frontend=_text(fe),
        backend=_text(be),
        server=_server(srv),
        client_ip=_text(ci),
        client_port=_port(cp),
        handshake_ms=int(th),
        idle_ms=-1,
        request_ms=-1,
        queue_ms=int(tw),
        connect_ms=int(tc),
        response_ms=-1,
        total_ms=int(tt),
        status=0,
        bytes_in=int(up),
        bytes_out=int(down),
        termination=_text(term),
        tls_version=_optional(sslv),
    )


def significance(entry: ParsedLog, slow_request_ms: int) -> str | None:
    """Why a log must be shipped ("error", "slow", "termination"), or None when it may be sampled."""
    cause = entry.termination[:1]
    if entry.status >= 400 or (entry.status == 0 and cause in _FAILURE_CAUSES):
        return "error"
    if entry.total_ms >= slow_request_ms:
        return "slow"
    if cause not in ("-", ""):
        return "termination"
    return None


def _always_logged(entry: ParsedLog, slow_request_ms: int) -> bool:
    """Whether HAProxy logs this HTTP request whatever the sample: an error status, no response, or
    response headers that took at least the slow threshold after the request (queue + connect +
    response time, what its `date(0,ms),sub(txn.fulcrum_t0)` measures)."""
    if entry.status >= 400 or entry.status == 0:
        return True
    waited = sum(max(0, t) for t in (entry.queue_ms, entry.connect_ms, entry.response_ms))
    return waited >= slow_request_ms


# --- the book of one interval ---------------------------------------------------------------------


@dataclass
class Average:
    total: float = 0.0
    count: float = 0.0  # the sum of the weights

    def add(self, value: float, weight: float = 1.0) -> None:
        self.total += value * weight
        self.count += weight

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class Timers:
    """Sums of the timers of one frontend, backend or server over an interval (valid values only)."""

    client_latency: Average = field(default_factory=Average)
    total: Average = field(default_factory=Average)
    connect: Average = field(default_factory=Average)
    response: Average = field(default_factory=Average)


@dataclass
class LogDrain:
    """What an interval's logs say: timers by HAProxy name, and the logs kept (oldest first)."""

    frontends: dict[str, Timers] = field(default_factory=dict)
    backends: dict[tuple[str, str | None], Timers] = field(default_factory=dict)  # server None: all
    kept: list[tuple[ParsedLog, str]] = field(default_factory=list)  # (log, significance or "")
    dropped: int = 0  # significant or sampled logs that did not fit
    received: int = 0  # request log lines, malformed ones included
    malformed: int = 0
    foreign: int = 0  # other datagrams: HAProxy's own notices to the frontend's log ("Proxy ... stopped")


# More distinct proxy or server names than any config has: a bound on memory, whatever arrives.
MAX_TIMER_KEYS = 100_000


class LogBook:
    """Accumulates parsed logs between two `drain`s, in memory bounded by `max_logs_per_report`.

    Every log counts in the timer averages. Significant logs are always kept and a random
    `log_sample_percent` of the others; when the book is full a significant log replaces a sampled
    one, and whatever does not fit is only counted as dropped. Thread-safe: the receiver adds, the
    analytics loop drains.
    """

    def __init__(self, settings: AnalyticsSettings | None = None, rng: random.Random | None = None) -> None:
        self.settings = settings or AnalyticsSettings()
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not security
        self._lock = threading.Lock()
        self._drain = LogDrain()
        self._sampled: list[ParsedLog] = []
        self._significant: list[tuple[ParsedLog, str]] = []

    @property
    def parsed(self) -> int:
        """Request logs parsed since the last drain."""
        with self._lock:
            return self._drain.received - self._drain.malformed

    def add(self, datagram: bytes) -> None:
        entry = parse_line(datagram)
        with self._lock:
            drain = self._drain
            if not datagram.startswith(_TAGS):
                drain.foreign += 1
                return
            drain.received += 1
            if entry is None:
                drain.malformed += 1
                return
            settings = self.settings
            # HTTP frontends sample in HAProxy (see `render.view._log_view`): what arrives was kept
            # either always (an error, a slow answer) or with probability log_sample_percent.
            presampled = entry.http and settings.log_sample_percent < 100
            weight = 1.0
            if presampled and not _always_logged(entry, settings.slow_request_ms):
                weight = 100.0 / max(settings.log_sample_percent, 1e-6)
            self._account(entry, weight)
            reason = significance(entry, settings.slow_request_ms)
            if (
                reason is None
                and not presampled
                and self._rng.random() * 100.0 >= settings.log_sample_percent
            ):
                return
            limit = settings.max_logs_per_report
            if len(self._sampled) + len(self._significant) < limit:
                pass
            elif reason is not None and self._sampled:
                self._sampled.pop(self._rng.randrange(len(self._sampled)))
                drain.dropped += 1
            else:
                drain.dropped += 1
                return
            if reason is None:
                self._sampled.append(entry)
            else:
                self._significant.append((entry, reason))

    def _account(self, entry: ParsedLog, weight: float = 1.0) -> None:
        """Add the entry's timers to the interval's averages; a sampled entry stands for `weight`."""
        drain = self._drain
        frontend = _timers(drain.frontends, entry.frontend)
        if frontend is not None and entry.http:
            if entry.request_ms >= 0:
                frontend.client_latency.add(entry.client_latency_ms, weight)
            if entry.total_ms >= 0:
                frontend.total.add(entry.total_ms, weight)
        if entry.server is None:
            return
        for key in ((entry.backend, None), (entry.backend, entry.server)):
            timers = _timers(drain.backends, key)
            if timers is None:
                continue
            if entry.connect_ms >= 0:
                timers.connect.add(entry.connect_ms, weight)
            if entry.http and entry.response_ms >= 0:
                timers.response.add(entry.response_ms, weight)

    def drain(self) -> LogDrain:
        """Everything since the previous drain; the book starts empty again."""
        with self._lock:
            drain, self._drain = self._drain, LogDrain()
            kept = [(entry, "") for entry in self._sampled] + self._significant
            self._sampled, self._significant = [], []
        drain.kept = sorted(kept, key=lambda pair: pair[0].ts)
        return drain


def _timers(table: dict[K, Timers], key: K) -> Timers | None:
    timers = table.get(key)
    if timers is None and len(table) < MAX_TIMER_KEYS:
        timers = table[key] = Timers()
    return timers


# --- the socket -----------------------------------------------------------------------------------


class LogReceiver:
    """Owns the UNIX datagram socket HAProxy logs to and hands each datagram to `sink` on its thread.

    HAProxy never blocks on a log: when the socket's queue is full it drops the line (and counts it in
    `show info`), so the receiving thread does nothing but receive and hand over.
    """

    def __init__(
        self, path: Path, sink: Callable[[bytes], None], *, receive_buffer: int = 4 << 20, poll_s: float = 0.2
    ) -> None:
        self.path = path
        self._sink = sink
        self._receive_buffer = receive_buffer
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None

    def start(self) -> None:
        self._remove_stale_socket()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            with contextlib.suppress(OSError):  # the kernel caps it at net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            sock.settimeout(self._poll_s)
        except OSError:
            sock.close()
            raise
        self._inode = self.path.stat().st_ino
        self._sock = sock
        self._thread = threading.Thread(target=self._run, args=(sock,), name="log-receiver", daemon=True)
        self._thread.start()

    def _remove_stale_socket(self) -> None:
        """A socket left by a previous agent in our run directory; anything else is not ours to remove."""
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(f"{self.path} exists and is not a socket")
        self.path.unlink()

    def _run(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                datagram = sock.recv(LOG_LINE_MAX + 64)
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    log.exception("log socket failed; request logs stop")
                return
            try:
                self._sink(datagram)
            except Exception:
                log.exception("a request log could not be recorded")

    def stop(self) -> None:
        """Stop receiving and remove the socket file this receiver created (and only that one)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            if self.path.lstat().st_ino == self._inode:
                self.path.unlink()

"""Client of HAProxy's runtime API (the CLI on a UNIX socket): statistics and server-level changes.

Commands go either to the admin socket of the running worker, or through the master socket to one
worker by PID (`@!<pid> <command>`). The second form is what the agent uses right after a reload: the
admin socket is shared by old and new workers for a moment, the master socket is not.
"""

from __future__ import annotations

import csv
import io
import os
import re
import socket
import time
from pathlib import Path

from fulcrum.se.plan import (
    AddServer,
    AdminState,
    DeleteServer,
    EnableHealth,
    ObservedServer,
    RuntimeOp,
    SetState,
    SetWeight,
)

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_FORBIDDEN_IN_COMMAND = re.compile(r"[\x00-\x1f\x7f;]")  # `;` separates CLI commands, newline ends one
_SERVERS_STATE_MIN_FIELDS = 8  # be_id be_name srv_id srv_name srv_addr op_state admin_state uweight


class RuntimeApiError(RuntimeError):
    """The socket could not be reached, or HAProxy refused a command (the message is HAProxy's answer)."""


def send_command(socket_path: Path, command: str, timeout: float = 5.0) -> str:
    """Send one command on a fresh connection and return the whole answer.

    Half-closing the write side tells both the admin and the master CLI that no command follows, so
    they close the connection after answering.
    """
    if _FORBIDDEN_IN_COMMAND.search(command):
        raise ValueError(f"refusing a CLI command with control characters or ';': {command!r}")
    chunks = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(command.encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        raise RuntimeApiError(f"{socket_path}: {command.split(' ', 1)[0]}: {exc}") from exc
    return b"".join(chunks).decode(errors="replace")


def parse_show_stat(text: str) -> list[dict[str, str]]:
    """`show stat` CSV as one dict per proxy/server row, keyed by the header's column names."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        return []
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    return [{key: value for key, value in row.items() if key} for row in reader]


def parse_servers_state(text: str) -> list[ObservedServer]:
    """`show servers state` (format version 1) as observed servers."""
    servers = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < _SERVERS_STATE_MIN_FIELDS or not fields[0].isdigit():
            continue  # the format version line, the header, blank lines
        servers.append(
            ObservedServer(
                backend=fields[1], name=fields[3], admin_flags=int(fields[6]), user_weight=int(fields[7])
            )
        )
    return servers


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a HAProxy proxy or server name: {name!r}")
    return name


class RuntimeApi:
    """The runtime API of one HAProxy worker."""

    def __init__(self, socket_path: Path, *, worker_pid: int | None = None, timeout: float = 5.0) -> None:
        """`socket_path` is the admin socket, or the master socket when `worker_pid` picks the worker."""
        self.socket_path = socket_path
        self.worker_pid = worker_pid
        self.timeout = timeout

    def command(self, command: str) -> str:
        prefix = f"@!{self.worker_pid} " if self.worker_pid is not None else ""
        return send_command(self.socket_path, prefix + command, self.timeout)

    def _expect_silent(self, command: str) -> None:
        """Commands that answer nothing on success and a message on failure."""
        answer = self.command(command).strip()
        if answer:
            raise RuntimeApiError(f"{command}: {answer}")

    # --- reads ------------------------------------------------------------------------------------

    def show_stat(self) -> list[dict[str, str]]:
        return parse_show_stat(self.command("show stat"))

    def show_backends(self) -> list[str]:
        return [line for line in self.command("show backend").splitlines() if line and line[0] != "#"]

    def show_servers_state(self) -> list[ObservedServer]:
        return parse_servers_state(self.command("show servers state"))

    def save_server_state(self, path: Path) -> None:
        """Write `show servers state` to the state file that the next process loads (atomically)."""
        text = self.command("show servers state")
        if not text.startswith("1\n"):
            raise RuntimeApiError(f"unexpected `show servers state` answer: {text[:200]!r}")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    # --- server changes ---------------------------------------------------------------------------

    def set_server_state(self, backend: str, server: str, state: AdminState) -> None:
        self._expect_silent(f"set server {_checked_name(backend)}/{_checked_name(server)} state {state}")

    def set_server_weight(self, backend: str, server: str, weight: int) -> None:
        if not 0 <= weight <= 256:
            raise ValueError(f"weight {weight} is out of 0..256")
        self._expect_silent(f"set server {_checked_name(backend)}/{_checked_name(server)} weight {weight}")

    def add_server(self, backend: str, server: str, address: str, arguments: str) -> None:
        """Add a server (it starts in maintenance with health checks off: see `enable_health`)."""
        command = f"add server {_checked_name(backend)}/{_checked_name(server)} {address} {arguments}"
        answer = self.command(command).strip()
        if answer != "New server registered.":
            raise RuntimeApiError(f"add server {backend}/{server}: {answer}")

    def enable_health(self, backend: str, server: str) -> None:
        self._expect_silent(f"enable health {_checked_name(backend)}/{_checked_name(server)}")

    def delete_server(self, backend: str, server: str, *, drain_s: float = 5.0, wait_s: float = 2.0) -> None:
        """Maintenance (no new requests), let requests in flight finish, then delete.

        Only when requests are still running after `drain_s` are its sessions cut, so removing a server
        under load normally fails no request.
        """
        target = f"{_checked_name(backend)}/{_checked_name(server)}"
        self.set_server_state(backend, server, AdminState.MAINT)
        if self._try_delete(target, drain_s):
            return
        self.command(f"shutdown sessions server {target}")
        if not self._try_delete(target, wait_s):
            raise RuntimeApiError(f"del server {target}: the server still has connections")

    def _try_delete(self, target: str, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while True:
            if self.command(f"del server {target}").strip() == "Server deleted.":
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def execute(self, op: RuntimeOp) -> None:
        match op:
            case AddServer(backend, server, address, arguments):
                self.add_server(backend, server, address, arguments)
            case DeleteServer(backend, server):
                self.delete_server(backend, server)
            case SetState(backend, server, state):
                self.set_server_state(backend, server, state)
            case SetWeight(backend, server, weight):
                self.set_server_weight(backend, server, weight)
            case EnableHealth(backend, server):
                self.enable_health(backend, server)

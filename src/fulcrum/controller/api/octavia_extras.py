"""Octavia's side resources: providers, flavors and flavor profiles (SE groups), quotas, amphorae
(a read-only view of SEs), and the read-only Networking-API view of VIP networks and subnets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

Run = Callable[[Callable[[], Any]], Any]


def routes(router: APIRouter, prefix: str, run: Run, shape_list: Any, admin: Any, body: Any) -> None:
    """Providers, flavors, flavor profiles and quotas under `prefix`."""


def amphora_routes(router: APIRouter, run: Run, shape_list: Any, admin: Any) -> None:
    """`/v2/octavia/amphorae`."""


def network_routes(router: APIRouter, run: Run, shape_list: Any) -> None:
    """`/v2.0/networks` and `/v2.0/subnets`."""

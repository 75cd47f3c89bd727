"""The contract every cloud connector fulfils, shaped for OpenStack from the start.

On OpenStack an SE is a Nova VM booted from the SE image with cloud-init user data carrying the
bootstrap; its ports sit on a management and data networks; a VIP is a Neutron port whose address is
added to the SE ports' allowed-address-pairs and moved between SEs on failover, with a floating IP for
north-south VIPs. The local connector implements the same calls with processes and loopback addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


@dataclass(frozen=True)
class Bootstrap:
    """What a new SE needs to call home: where the controller is and a one-time token."""

    controller_url: str
    se_uuid: str
    token: str


@dataclass(frozen=True)
class SeSpec:
    se_uuid: str
    name: str
    se_group_uuid: str
    tenant_context: str | None  # OpenStack project for tenant SEs; None = the service project
    mgmt_network: str | None
    data_networks: tuple[str, ...]
    vcpus: int
    memory_mb: int
    bootstrap: Bootstrap


class SeObservation(StrEnum):
    RUNNING = "RUNNING"
    STARTING = "STARTING"
    GONE = "GONE"  # never existed here, deleted, or crashed beyond recovery


@dataclass(frozen=True)
class VipAllocation:
    address: str
    network: str | None = None
    port_id: str | None = None  # Neutron port on OpenStack
    floating_ip: str | None = None


@dataclass(frozen=True)
class SeDetails:
    """Cloud-specific facts shown in the SE runtime (PIDs for local, Nova id for OpenStack)."""

    cloud_id: str
    facts: dict[str, Any] = field(default_factory=dict)


class CloudConnector(Protocol):
    def create_se(self, spec: SeSpec) -> SeDetails:
        """Start creating an SE; returns at once, the SE registers itself when it is up."""
        ...

    def delete_se(self, se_uuid: str) -> None:
        """Remove the SE and everything created for it; deleting an absent SE is not an error."""
        ...

    def observe_se(self, se_uuid: str) -> SeObservation: ...

    def data_address(self, se_uuid: str) -> str | None:
        """The SE's own address on the data network: secondaries of a scaled-out VS listen there for the
        connections the primary hands over. None while the cloud has not assigned one."""
        ...

    def se_details(self, se_uuid: str) -> SeDetails | None: ...

    def known_ses(self) -> list[str]:
        """Every SE this connector created and has not deleted (to adopt after a restart)."""
        ...

    def allocate_vip(self, network: str | None, address: str | None) -> VipAllocation: ...

    def release_vip(self, allocation: VipAllocation) -> None: ...

    def attach_vip(self, allocation: VipAllocation, se_uuid: str) -> None: ...

    def move_vip(self, allocation: VipAllocation, from_se: str, to_se: str) -> None: ...

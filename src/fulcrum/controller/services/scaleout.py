"""What each SE of a virtual service is told to do, given the VS's placements: pure functions.

* A VS on one SE (or on an active with a legacy standby) is rendered directly: its primary binds the VIP.
  A legacy standby gets the VS as STANDBY (backends warm, no VIP).
* A VS on several SEs is scaled out: every SE runs a worker frontend on its own data address at the
  listener ports plus the VS's `worker_port_offset`; the primary also binds the VIP and distributes new
  connections over all of them (PROXY protocol v2). A DRAINING SE stays in the distributor as `drain`.
* **VIP handover.** When the primary moves while the previous one is alive (migration, scale-in of the
  primary, switchover), the previous primary keeps binding the VIP until the new one has applied a
  config that binds it, so the VIP is never unbound in between (on the local cloud two SEs may bind one
  loopback VIP at once: HAProxy uses SO_REUSEPORT). Until then its own worker also stays ready, even
  when it is being drained, so that connections refused by a worker that does not listen yet are
  redispatched to one that does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from fulcrum.placement.plan import Placement, Role
from fulcrum.protocol import se as wire

WORKER_OFFSET_FIRST = 20000
MAX_PORT = 65535
MIN_WORKER_PORT = 1024


def serving(placements: Iterable[Placement]) -> list[Placement]:
    """The placements that take traffic (or finish it): all but legacy standbys."""
    return [p for p in placements if p.role != Role.STANDBY]


def is_scaled_out(placements: Iterable[Placement]) -> bool:
    return len(serving(placements)) >= 2


def vs_renders(
    spec: wire.VsSpec,
    placements: list[Placement],
    addresses: Mapping[str, str | None],
    offset: int | None,
    bound: Collection[str],
    alive: Collection[str],
) -> dict[str, wire.VsSpec]:
    """The VsSpec each SE of the VS gets. `bound`: SEs whose applied config binds the VIP; `alive`: SEs up."""
    primary = next((p.se_uuid for p in placements if p.role == Role.PRIMARY), None)
    holder = None  # the previous primary that keeps the VIP until the new primary binds it
    if primary is not None and primary not in bound:
        holder = next(
            (
                p.se_uuid
                for p in placements
                if p.se_uuid != primary and p.se_uuid in bound and p.se_uuid in alive
            ),
            None,
        )
    workers = serving(placements)
    scaled = len(workers) >= 2 and offset is not None and all(addresses.get(p.se_uuid) for p in workers)
    peers = (
        tuple(
            wire.ScaleOutPeer(
                se_uuid=p.se_uuid,
                address=addresses[p.se_uuid] or "",
                # The previous primary keeps serving until the new primary has bound the VIP: the new
                # one's worker may not listen yet, and a connection needs somewhere to be redispatched to.
                state=wire.PeerState.DRAIN
                if p.role == Role.DRAINING and p.se_uuid != holder
                else wire.PeerState.READY,
            )
            for p in workers
        )
        if scaled
        else ()
    )
    renders: dict[str, wire.VsSpec] = {}
    for p in placements:
        owns_vip = p.se_uuid in (primary, holder) or primary is None
        if p.role == Role.STANDBY and not owns_vip:
            renders[p.se_uuid] = spec.model_copy(update={"role": wire.VsRole.STANDBY})
        elif not scaled:
            if owns_vip:
                renders[p.se_uuid] = spec
        else:
            assert offset is not None
            renders[p.se_uuid] = spec.model_copy(
                update={
                    "role": wire.VsRole.PRIMARY if owns_vip else wire.VsRole.SECONDARY,
                    "scaleout": wire.ScaleOutSpec(
                        worker_address=addresses[p.se_uuid] or "",
                        worker_port_offset=offset,
                        peers=peers if owns_vip else (),
                    ),
                }
            )
    return renders


def listener_ports(spec: wire.VsSpec) -> set[int]:
    ports: set[int] = set()
    for listener in spec.listeners:
        end = listener.port_range_end or listener.port
        ports.update(range(listener.port, max(end, listener.port) + 1))
    return ports


def offset_fits(offset: int, ports: set[int], taken: set[int]) -> bool:
    return offset != 0 and all(
        MIN_WORKER_PORT <= p + offset <= MAX_PORT and p + offset not in taken for p in ports
    )


def allocate_offset(ports: set[int], taken: set[int]) -> int | None:
    """An offset that maps `ports` onto unprivileged ports nobody else uses: +20000, +20001, ... for low
    listener ports, -20000, -20001, ... for high ones."""
    if not ports:
        return None
    for step in range(MAX_PORT - WORKER_OFFSET_FIRST):
        for offset in (WORKER_OFFSET_FIRST + step, -(WORKER_OFFSET_FIRST + step)):
            if offset_fits(offset, ports, taken):
                return offset
    return None

"""What each SE of a VS is told to do (roles, scale-out peers, VIP handover), and worker port offsets."""

from __future__ import annotations

from fulcrum.controller.services.scaleout import allocate_offset, listener_ports, offset_fits, vs_renders
from fulcrum.placement.plan import Placement, Role
from fulcrum.protocol import se as wire

SPEC = wire.VsSpec(
    uuid="vs-1",
    name="web",
    tenant_uuid="t",
    vips=("127.100.0.1",),
    listeners=(wire.ListenerSpec(port=80), wire.ListenerSpec(port=443, tls=False)),
    app_type=wire.AppType.HTTP,
)
ADDRESSES = {"a": "127.254.0.1", "b": "127.254.0.2", "c": "127.254.0.3"}


def p(se: str, role: Role) -> Placement:
    return Placement("vs-1", se, role)


def summary(renders: dict[str, wire.VsSpec]) -> dict[str, tuple[str, tuple[tuple[str, str], ...] | None]]:
    return {
        se: (
            spec.role.value,
            tuple((peer.se_uuid, peer.state.value) for peer in spec.scaleout.peers)
            if spec.scaleout
            else None,
        )
        for se, spec in renders.items()
    }


def test_one_se_is_rendered_directly() -> None:
    renders = vs_renders(SPEC, [p("a", Role.PRIMARY)], ADDRESSES, None, {"a"}, {"a"})
    assert renders == {"a": SPEC}


def test_scaled_out_primary_distributes_to_every_se_and_secondaries_only_work() -> None:
    placements = [p("a", Role.PRIMARY), p("b", Role.SECONDARY), p("c", Role.DRAINING)]
    renders = vs_renders(SPEC, placements, ADDRESSES, 20000, {"a"}, {"a", "b", "c"})
    assert summary(renders) == {
        "a": ("PRIMARY", (("a", "READY"), ("b", "READY"), ("c", "DRAIN"))),
        "b": ("SECONDARY", ()),
        "c": ("SECONDARY", ()),
    }
    assert renders["b"].scaleout is not None
    assert (renders["b"].scaleout.worker_address, renders["b"].scaleout.worker_port_offset) == (
        "127.254.0.2",
        20000,
    )


def test_the_old_primary_keeps_the_vip_until_the_new_one_binds_it() -> None:
    placements = [p("b", Role.PRIMARY), p("a", Role.DRAINING)]
    during = vs_renders(SPEC, placements, ADDRESSES, 20000, {"a"}, {"a", "b"})
    assert summary(during) == {
        "b": ("PRIMARY", (("b", "READY"), ("a", "READY"))),
        "a": ("PRIMARY", (("b", "READY"), ("a", "READY"))),
    }
    after = vs_renders(SPEC, placements, ADDRESSES, 20000, {"a", "b"}, {"a", "b"})
    assert summary(after) == {"b": ("PRIMARY", (("b", "READY"), ("a", "DRAIN"))), "a": ("SECONDARY", ())}
    # A dead old primary holds nothing.
    dead = vs_renders(SPEC, placements, ADDRESSES, 20000, {"a"}, {"b"})
    assert summary(dead)["a"] == ("SECONDARY", ())


def test_legacy_standby_is_warm_without_the_vip_and_keeps_it_during_a_switchover() -> None:
    steady = vs_renders(
        SPEC, [p("a", Role.PRIMARY), p("b", Role.STANDBY)], ADDRESSES, None, {"a"}, {"a", "b"}
    )
    assert summary(steady) == {"a": ("PRIMARY", None), "b": ("STANDBY", None)}
    switching = vs_renders(
        SPEC, [p("b", Role.PRIMARY), p("a", Role.STANDBY)], ADDRESSES, None, {"a"}, {"a", "b"}
    )
    assert summary(switching) == {"b": ("PRIMARY", None), "a": ("PRIMARY", None)}


def test_without_data_addresses_only_the_primary_serves() -> None:
    renders = vs_renders(
        SPEC, [p("a", Role.PRIMARY), p("b", Role.SECONDARY)], {"a": None, "b": None}, 20000, {"a"}, {"a", "b"}
    )
    assert summary(renders) == {"a": ("PRIMARY", None)}


def test_offsets_avoid_taken_ports_and_overflow() -> None:
    ports = listener_ports(SPEC)
    assert ports == {80, 443}
    assert allocate_offset(ports, set()) == 20000
    assert allocate_offset(ports, {20080}) == 20001
    assert not offset_fits(65100, ports, set())
    assert not offset_fits(0, ports, set())
    assert allocate_offset({50000}, set()) == -20000  # high listener ports shift down
    assert allocate_offset({50000}, {30000}) == -20001
    assert allocate_offset({1024, 65535}, set()) is None  # no shift keeps both in 1024..65535
    ranged = SPEC.model_copy(update={"listeners": (wire.ListenerSpec(port=8000, port_range_end=8002),)})
    assert listener_ports(ranged) == {8000, 8001, 8002}

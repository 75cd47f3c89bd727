"""Octavia clients with real Keystone credentials, as in an OpenStack cloud: the controller is in the
Keystone catalog as the `load-balancer` (and, without Neutron, `network`) service, openstacksdk logs in
with a user's password, finds Fulcrum through the catalog, and builds a working load balancer in its
project; the project is a Fulcrum tenant, roles decide who may change what.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openstack
import openstack.exceptions
import pytest

from fulcrum.controller.services.octavia import ids
from support.fullstack import Stack, running_stack, wait_for
from support.keystone import KeystoneLab, KeystoneUser

pytestmark = [
    pytest.mark.keystone,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),  # openstacksdk's own deprecations
]


@dataclass
class Cloud:
    lab: KeystoneLab
    stack: Stack
    blue: dict[str, Any]
    green: dict[str, Any]
    member: KeystoneUser  # load-balancer_member in blue
    observer: KeystoneUser  # load-balancer_observer in blue
    stranger: KeystoneUser  # member in green

    def connect(self, user: KeystoneUser, project: dict[str, Any]) -> Any:
        return openstack.connect(
            auth_type="password",
            auth={
                "auth_url": self.lab.url,
                "username": user.name,
                "password": user.password,
                "project_id": project["id"],
                "user_domain_name": "Default",
            },
            region_name="RegionOne",
            identity_api_version="3",
        )


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    lab = KeystoneLab()
    try:
        service_project = lab.project("lb-service")
        service_user = lab.user("fulcrum-lb", service_project["id"], roles=("service",))
        env = {
            "FULCRUM_KEYSTONE_URL": lab.url,
            "FULCRUM_KEYSTONE_USER": service_user.name,
            "FULCRUM_KEYSTONE_PASSWORD": service_user.password,
            "FULCRUM_KEYSTONE_PROJECT": service_project["name"],
        }
        with running_stack(**env) as stack:
            lab.endpoint("load-balancer", stack.controller.url, name=lab.name("octavia"))
            lab.endpoint("network", stack.controller.url, name=lab.name("neutron"))
            blue, green = lab.project("blue"), lab.project("green")
            yield Cloud(
                lab=lab,
                stack=stack,
                blue=blue,
                green=green,
                member=lab.user("lb-member", blue["id"], roles=("load-balancer_member",)),
                observer=lab.user("lb-observer", blue["id"], roles=("load-balancer_observer",)),
                stranger=lab.user("green-member", green["id"], roles=("member",)),
            )
    finally:
        lab.close()


def test_a_project_member_builds_a_load_balancer_found_through_the_catalog(cloud: Cloud) -> None:
    conn = cloud.connect(cloud.member, cloud.blue)
    subnet = conn.network.find_subnet("Default-Cloud-vip-subnet", ignore_missing=False)
    backends = cloud.stack.backends
    lb = conn.load_balancer.create_load_balancer(
        name="blue-web",
        vip_subnet_id=subnet.id,
        listeners=[{
            "name": "http", "protocol": "HTTP", "protocol_port": 18090,
            "default_pool": {
                "name": "web", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "members": [{"address": "127.0.0.1", "protocol_port": b.port} for b in backends],
            },
        }],
    )  # fmt: skip
    assert lb.project_id == cloud.blue["id"].replace("-", "")
    conn.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", failures=["ERROR"], wait=60)
    wait_for(
        "ONLINE", lambda: conn.load_balancer.get_load_balancer(lb.id).operating_status == "ONLINE", timeout=60
    )
    seen = {httpx.get(f"http://{lb.vip_address}:18090/", timeout=3).text for _ in range(8)}
    assert seen == {"alpha", "beta"}

    # The project is a Fulcrum tenant: the admin sees the VS there.
    with cloud.stack.controller.client() as admin:
        tenant = ids.tenant_of(cloud.blue["id"])
        vs = admin.get(
            f"/api/virtualservice/virtualservice-{lb.listeners[0]['id']}",
            headers={"X-Fulcrum-Tenant": tenant},
        )
        assert vs.status_code == 200, vs.text
        assert vs.json()["tenant_ref"] == f"/api/tenant/{tenant}"

    # An observer of the same project reads, but may not change anything.
    watcher = cloud.connect(cloud.observer, cloud.blue)
    assert [x.id for x in watcher.load_balancer.load_balancers()] == [lb.id]
    with pytest.raises(openstack.exceptions.ForbiddenException):
        watcher.load_balancer.update_load_balancer(lb.id, description="mine now")

    # Another project sees nothing and cannot reach it.
    outsider = cloud.connect(cloud.stranger, cloud.green)
    assert list(outsider.load_balancer.load_balancers()) == []
    with pytest.raises(openstack.exceptions.NotFoundException):
        outsider.load_balancer.get_load_balancer(lb.id)

    shown = conn.load_balancer.get_load_balancer(lb.id)
    conn.load_balancer.delete_load_balancer(lb.id, cascade=True)
    conn.load_balancer.wait_for_delete(shown, wait=60)


def test_a_bad_token_is_refused_in_octavias_shape(cloud: Cloud) -> None:
    answer = httpx.get(
        f"{cloud.stack.controller.url}/v2/lbaas/loadbalancers", headers={"X-Auth-Token": "not-a-token"}
    )
    assert answer.status_code == 401
    assert answer.json()["faultcode"] == "Client"

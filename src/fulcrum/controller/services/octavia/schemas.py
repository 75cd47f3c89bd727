"""Request bodies of the Octavia v2 API, checked at the edge. Unknown attributes are refused (400), as
Octavia does; options Fulcrum does not implement are accepted by the schema and refused by the service
with Octavia's "provider does not support" answer (501), so the caller learns which option it was."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from fulcrum.controller.services.errors import InvalidInput
from fulcrum.controller.services.objects import format_validation
from fulcrum.model.types import Hostname, IPAddress, Network, Port

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control or line-break characters")
    return value


Text = Annotated[str, StringConstraints(max_length=255), AfterValidator(_text)]
LongText = Annotated[str, StringConstraints(max_length=255), AfterValidator(_text)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_text)]
Id = Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-fA-F-]{32,36}$")]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_text)]
Token = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
]
Timeout = Annotated[int, Field(ge=0, le=86_400_000)]
Codes = Annotated[str, StringConstraints(pattern=r"^[1-5][0-9]{2}((-[1-5][0-9]{2})|(,[1-5][0-9]{2})*)$")]
UrlPath = Annotated[str, StringConstraints(max_length=1024, pattern=r"^/[\x21-\x7e]*$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Owned(_In):
    project_id: Id | None = None
    tenant_id: Id | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)


class SessionPersistence(_In):
    type: Literal["SOURCE_IP", "HTTP_COOKIE", "APP_COOKIE"]
    cookie_name: Token | None = None
    persistence_timeout: Annotated[int, Field(ge=0, le=86400 * 365)] | None = None
    persistence_granularity: Network | None = None


class HealthMonitor(_Owned):
    name: Text = ""
    pool_id: Id | None = None
    type: Literal["HTTP", "HTTPS", "TCP", "PING", "TLS-HELLO", "UDP-CONNECT", "SCTP"]
    delay: Annotated[int, Field(ge=0, le=3600)]
    timeout: Annotated[int, Field(ge=0, le=3600)]
    max_retries: Annotated[int, Field(ge=1, le=10)]
    max_retries_down: Annotated[int, Field(ge=1, le=10)] = 3
    http_method: (
        Literal["GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "PATCH", "CONNECT"] | None
    ) = None
    url_path: UrlPath | None = None
    expected_codes: Codes | None = None
    http_version: Literal[1.0, 1.1] | None = None
    domain_name: Hostname | None = None
    admin_state_up: bool = True


class Member(_Owned):
    name: Text = ""
    address: IPAddress
    protocol_port: Port
    weight: Annotated[int, Field(ge=0, le=256)] = 1
    backup: bool = False
    admin_state_up: bool = True
    subnet_id: Id | None = None
    monitor_address: IPAddress | None = None
    monitor_port: Port | None = None
    vnic_type: Literal["normal"] | None = None
    request_sriov: bool | None = None


class Pool(_Owned):
    name: Text = ""
    description: LongText = ""
    admin_state_up: bool = True
    protocol: Literal["HTTP", "HTTPS", "TCP", "PROXY", "PROXYV2", "UDP", "SCTP"]
    lb_algorithm: Literal["ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP", "SOURCE_IP_PORT"]
    listener_id: Id | None = None
    loadbalancer_id: Id | None = None
    session_persistence: SessionPersistence | None = None
    tls_enabled: bool = False
    tls_container_ref: Ref | None = None
    ca_tls_container_ref: Ref | None = None
    crl_container_ref: Ref | None = None
    tls_ciphers: Text | None = None
    tls_versions: list[Text] | None = None
    alpn_protocols: list[Text] | None = None
    members: list[Member] | None = None  # fully-populated create only
    healthmonitor: HealthMonitor | None = None  # fully-populated create only


class NamedPool(_In):
    """In a single-call create, a listener or policy may name a pool of the load balancer's `pools`."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]


class L7Rule(_Owned):
    type: Literal[
        "HOST_NAME", "PATH", "FILE_TYPE", "HEADER", "COOKIE", "SSL_CONN_HAS_CERT", "SSL_VERIFY_RESULT",
        "SSL_DN_FIELD",
    ]  # fmt: skip
    compare_type: Literal["EQUAL_TO", "STARTS_WITH", "ENDS_WITH", "CONTAINS", "REGEX"]
    key: Text | None = None
    value: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    invert: bool = False
    admin_state_up: bool = True


class L7Policy(_Owned):
    name: Text = ""
    description: LongText = ""
    admin_state_up: bool = True
    listener_id: Id | None = None
    action: Literal["REDIRECT_TO_POOL", "REDIRECT_TO_URL", "REDIRECT_PREFIX", "REJECT"]
    position: Annotated[int, Field(ge=1, le=2147483647)] | None = None
    redirect_pool_id: Id | None = None
    redirect_pool: Pool | NamedPool | None = None  # fully-populated create only
    redirect_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    redirect_prefix: Annotated[str, StringConstraints(max_length=2048)] | None = None
    redirect_http_code: Literal[301, 302, 303, 307, 308] | None = None
    rules: list[L7Rule] | None = None  # fully-populated create only


class Listener(_Owned):
    name: Text = ""
    description: LongText = ""
    admin_state_up: bool = True
    protocol: Literal["HTTP", "HTTPS", "TCP", "TERMINATED_HTTPS", "UDP", "SCTP", "PROMETHEUS"]
    protocol_port: Port
    loadbalancer_id: Id | None = None
    default_pool_id: Id | None = None
    default_pool: Pool | NamedPool | None = None  # fully-populated create only
    connection_limit: Annotated[int, Field(ge=-1, le=1_000_000)] = -1
    default_tls_container_ref: Ref | None = None
    sni_container_refs: list[Ref] = Field(default_factory=list, max_length=64)
    insert_headers: dict[Token, Text] = Field(default_factory=dict, max_length=16)
    timeout_client_data: Timeout | None = None
    timeout_member_connect: Timeout | None = None
    timeout_member_data: Timeout | None = None
    timeout_tcp_inspect: Timeout | None = None
    allowed_cidrs: list[Network] | None = Field(None, max_length=100)
    client_ca_tls_container_ref: Ref | None = None
    client_authentication: Literal["NONE", "OPTIONAL", "MANDATORY"] = "NONE"
    client_crl_container_ref: Ref | None = None
    tls_ciphers: Text | None = None
    tls_versions: list[Text] | None = None
    alpn_protocols: list[Text] | None = None
    hsts_max_age: int | None = None
    hsts_include_subdomains: bool | None = None
    hsts_preload: bool | None = None
    l7policies: list[L7Policy] | None = None  # fully-populated create only


class LoadBalancer(_Owned):
    name: Text = ""
    description: LongText = ""
    admin_state_up: bool = True
    vip_address: IPAddress | None = None
    vip_network_id: Id | None = None
    vip_subnet_id: Id | None = None
    vip_port_id: Id | None = None
    vip_qos_policy_id: Id | None = None
    vip_sg_ids: list[Id] | None = None
    additional_vips: list[dict[str, str]] | None = None
    provider: Text | None = None
    flavor_id: Id | None = None
    availability_zone: Text | None = None
    listeners: list[Listener] | None = None
    pools: list[Pool] | None = None


class Flavor(_In):
    name: Text
    description: LongText = ""
    flavor_profile_id: Id
    enabled: bool = True


class FlavorProfile(_In):
    name: Text
    provider_name: Text
    flavor_data: Annotated[str, StringConstraints(max_length=4096)]


class Quota(_In):
    loadbalancer: Annotated[int, Field(ge=-1)] | None = None
    listener: Annotated[int, Field(ge=-1)] | None = None
    pool: Annotated[int, Field(ge=-1)] | None = None
    member: Annotated[int, Field(ge=-1)] | None = None
    healthmonitor: Annotated[int, Field(ge=-1)] | None = None
    l7policy: Annotated[int, Field(ge=-1)] | None = None
    l7rule: Annotated[int, Field(ge=-1)] | None = None
    # Octavia's older spellings, still sent by some clients
    load_balancer: Annotated[int, Field(ge=-1)] | None = None
    health_monitor: Annotated[int, Field(ge=-1)] | None = None


# What a PUT may change, per resource (Octavia refuses the rest with 400).
UPDATABLE = {
    "loadbalancer": {"name", "description", "admin_state_up", "vip_qos_policy_id", "tags", "vip_sg_ids"},
    "listener": {
        "name", "description", "admin_state_up", "connection_limit", "default_pool_id",
        "default_tls_container_ref", "sni_container_refs", "insert_headers", "timeout_client_data",
        "timeout_member_connect", "timeout_member_data", "timeout_tcp_inspect", "allowed_cidrs",
        "client_ca_tls_container_ref", "client_authentication", "client_crl_container_ref", "tls_ciphers",
        "tls_versions", "alpn_protocols", "tags", "hsts_max_age", "hsts_include_subdomains", "hsts_preload",
    },
    "pool": {
        "name", "description", "admin_state_up", "lb_algorithm", "session_persistence", "tls_enabled",
        "tls_container_ref", "ca_tls_container_ref", "crl_container_ref", "tls_ciphers", "tls_versions",
        "alpn_protocols", "tags",
    },
    "member": {"name", "weight", "backup", "admin_state_up", "monitor_address", "monitor_port", "tags"},
    "healthmonitor": {
        "name", "delay", "timeout", "max_retries", "max_retries_down", "http_method", "url_path",
        "expected_codes", "http_version", "domain_name", "admin_state_up", "tags",
    },
    "l7policy": {
        "name", "description", "admin_state_up", "action", "position", "redirect_pool_id", "redirect_url",
        "redirect_prefix", "redirect_http_code", "tags",
    },
    "l7rule": {"type", "compare_type", "key", "value", "invert", "admin_state_up", "tags"},
    "flavor": {"name", "description", "enabled"},
    "flavorprofile": {"name", "provider_name", "flavor_data"},
}  # fmt: skip


M = TypeVar("M", bound=BaseModel)


def updates(body: Any, kind: str) -> dict[str, Any]:
    """The attributes a PUT changes; anything Octavia does not let a PUT change is refused (400)."""
    root = "rule" if kind == "l7rule" else kind
    if not isinstance(body, dict) or not isinstance(body.get(root), dict):
        raise InvalidInput(f"Invalid input: the request body must be an object with a '{root}' attribute")
    changes = body[root]
    extra = sorted(set(changes) - UPDATABLE[kind])
    if extra:
        raise InvalidInput(f"Invalid input for field/attribute {extra[0]}: cannot be changed on update")
    return dict(changes)


def validated(model: type[M], data: dict[str, Any], root: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid input for {root}: {format_validation(exc)}") from None

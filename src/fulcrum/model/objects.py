"""Config schemas of every native object type, with their defaults and cross-field validation.

Field names, enums and defaults follow the Avi object model so that people and tools that know it feel
at home. Validation that needs controller settings (the reserved address list) reads them from the
pydantic validation context under the key ``reserved_networks``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic import Strict as StrictValue  # a number must be a number, not true/false

from fulcrum.model.enums import (
    ApplicationProfileType,
    CertificateType,
    CloudType,
    FlowDist,
    HaMode,
    HealthMonitorType,
    HttpMatchCompareType,
    HttpMatchType,
    HttpPolicyAction,
    HttpResponseCode,
    InsertHeader,
    LbAlgorithm,
    LbAlgorithmHash,
    OpenStackPrivilege,
    PersistenceType,
    PlacementAlgo,
    Role,
    TenantScope,
)
from fulcrum.model.regex import RegexError, check_regex
from fulcrum.model.types import (
    Description,
    Hostname,
    HttpToken,
    IPAddress,
    Name,
    Network,
    Port,
    Secret,
    Strict,
    ref,
    reserved_addresses,
)

PemText = Annotated[str, Field(min_length=1, max_length=65536)]
TimeoutMs = Annotated[int, Field(ge=0, le=86_400_000)]


def _refuse_reserved(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return value
    extra = tuple((info.context or {}).get("reserved_networks", ()))
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:169.254.169.254 reaches the same host from a dual-stack socket
    for network in reserved_addresses(extra):
        if address.version == network.version and address in network:
            raise ValueError(f"{value} is a reserved address ({network}) and cannot be a target")
    if address.is_multicast or address.is_unspecified:
        raise ValueError(f"{value} is not a unicast address")
    return value


# --- tenancy and identity -------------------------------------------------------------------------


class Tenant(Strict):
    name: Name
    description: Description = ""


class UserAccess(Strict):
    tenant_ref: ref("tenant")  # type: ignore[valid-type]
    role: Role


class User(Strict):
    name: Name
    password: Annotated[str | None, Field(min_length=8, max_length=1024), Secret()] = None
    full_name: Description = ""
    email: Annotated[str, Field(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$")] = ""
    access: list[UserAccess] = Field(default_factory=list, max_length=256)
    default_tenant_ref: ref("tenant") | None = None  # type: ignore[valid-type]
    is_active: bool = True

    @model_validator(mode="after")
    def _default_tenant_in_access(self) -> User:
        tenants = [a.tenant_ref for a in self.access]
        if len(set(tenants)) != len(tenants):
            raise ValueError("access: each tenant may appear only once")
        return self


# --- infrastructure -------------------------------------------------------------------------------


class LocalConfiguration(Strict):
    vip_network: Network = "127.100.0.0/16"


class NetnsConfiguration(Strict):
    vip_network: Network = "10.200.0.0/16"
    mgmt_network: Network = "10.199.0.0/16"


class OpenStackConfiguration(Strict):
    auth_url: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^https?://[^\s]+$")]
    username: Name
    password: Annotated[str | None, Field(max_length=1024), Secret()] = None
    admin_tenant: Name
    region: Name | None = None
    mgmt_network_name: Name
    privilege: OpenStackPrivilege = OpenStackPrivilege.WRITE_ACCESS
    tenant_se: bool = True
    allowed_address_pairs: bool = True
    use_keystone_auth: bool = False
    role_mapping: dict[Name, Role] = Field(default_factory=dict)
    se_image_name: Name = "fulcrum-se"


class Cloud(Strict):
    name: Name
    vtype: CloudType = CloudType.CLOUD_LOCAL
    local_configuration: LocalConfiguration | None = None
    netns_configuration: NetnsConfiguration | None = None
    openstack_configuration: OpenStackConfiguration | None = None

    @model_validator(mode="after")
    def _configuration_matches_vtype(self) -> Cloud:
        wanted = {
            CloudType.CLOUD_LOCAL: "local_configuration",
            CloudType.CLOUD_NETNS: "netns_configuration",
            CloudType.CLOUD_OPENSTACK: "openstack_configuration",
        }
        for vtype, field in wanted.items():
            if vtype != self.vtype and getattr(self, field) is not None:
                raise ValueError(f"{field} is only valid with vtype {vtype.value}")
        if self.vtype == CloudType.CLOUD_LOCAL and self.local_configuration is None:
            self.local_configuration = LocalConfiguration()
        if self.vtype == CloudType.CLOUD_NETNS and self.netns_configuration is None:
            self.netns_configuration = NetnsConfiguration()
        if self.vtype == CloudType.CLOUD_OPENSTACK and self.openstack_configuration is None:
            raise ValueError("openstack_configuration is required with vtype CLOUD_OPENSTACK")
        return self


class ServiceEngineGroup(Strict):
    name: Name
    description: Description = ""
    cloud_ref: ref("cloud") | None = None  # type: ignore[valid-type]
    ha_mode: HaMode = HaMode.HA_MODE_SHARED
    algo: PlacementAlgo = PlacementAlgo.PLACEMENT_ALGO_PACKED
    buffer_se: Annotated[int, Field(ge=0, le=100)] = 1
    min_scaleout_per_vs: Annotated[int | None, Field(ge=1, le=64)] = None
    max_scaleout_per_vs: Annotated[int, Field(ge=1, le=64)] = 4
    max_vs_per_se: Annotated[int, Field(ge=1, le=1000)] = 10
    max_se: Annotated[int, Field(ge=1, le=1000)] = 10
    per_app: bool = False
    auto_rebalance: bool = False
    max_cpu_usage: Annotated[int, Field(ge=1, le=100)] = 80
    min_cpu_usage: Annotated[int, Field(ge=0, le=99)] = 30
    auto_rebalance_interval: Annotated[int, Field(ge=1, le=86400)] = 300
    se_deprovision_delay: Annotated[float, StrictValue(), Field(ge=0, le=86400)] = 120.0
    heartbeat_interval: Annotated[float, StrictValue(), Field(ge=0.1, le=60)] = 1.0
    heartbeat_miss_limit: Annotated[int, Field(ge=1, le=60)] = 3
    vcpus_per_se: Annotated[int, Field(ge=1, le=64)] = 1
    memory_per_se: Annotated[int, Field(ge=256, le=262144)] = 2048
    se_name_prefix: Annotated[
        str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    ] = "Fulcrum"
    tenant_scope: TenantScope = TenantScope.SE_GROUP_SHARED

    @model_validator(mode="after")
    def _scaleout_and_cpu_bounds(self) -> ServiceEngineGroup:
        floor = 2 if self.ha_mode == HaMode.HA_MODE_SHARED_PAIR else 1
        if self.min_scaleout_per_vs is None:
            self.min_scaleout_per_vs = floor
        elif self.min_scaleout_per_vs < floor:
            raise ValueError("min_scaleout_per_vs must be at least 2 with HA_MODE_SHARED_PAIR")
        if self.min_scaleout_per_vs > self.max_scaleout_per_vs:
            raise ValueError("min_scaleout_per_vs must not exceed max_scaleout_per_vs")
        if self.min_cpu_usage >= self.max_cpu_usage:
            raise ValueError("min_cpu_usage must be lower than max_cpu_usage")
        return self


class ServiceEngine(Strict):
    """Created by the controller; read-only through the API."""

    name: Name
    se_group_ref: ref("serviceenginegroup")  # type: ignore[valid-type]
    cloud_ref: ref("cloud")  # type: ignore[valid-type]
    mgmt_ip: IPAddress | None = None
    enable_state: Annotated[str, Field(pattern=r"^SE_STATE_(ENABLED|DISABLED|DISABLED_FOR_PLACEMENT)$")] = (
        "SE_STATE_ENABLED"
    )


# --- application objects --------------------------------------------------------------------------


_STATUS_CODES = re.compile(r"[0-9]{3}(-[0-9]{3})?(,[0-9]{3}(-[0-9]{3})?)*")
STATUS_CODES_MAX_LENGTH = 2048  # room for every code from 100 to 599 listed one by one


def expected_status_codes(text: str) -> tuple[int, ...]:
    """The HTTP status codes that Octavia-style `text` names, sorted and distinct.

    `text` is a code (`200`), a range (`200-204`) or a comma-separated list of codes and ranges
    (`200,202,301`), without spaces; every code is between 100 and 599.
    """
    if not _STATUS_CODES.fullmatch(text):
        raise ValueError(f"{text!r} is not a list of status codes such as 200, 200-204 or 200,202,301")
    codes: set[int] = set()
    for item in text.split(","):
        low, _, high = item.partition("-")
        first, last = int(low), int(high or low)
        for code in (first, last):
            if not 100 <= code <= 599:
                raise ValueError(f"status code {code} is out of 100..599")
        if first > last:
            raise ValueError(f"status code range {item} ends below its start")
        codes.update(range(first, last + 1))
    return tuple(sorted(codes))


class HttpMonitor(Strict):
    http_request: Annotated[
        str,
        Field(
            max_length=1024,
            # METHOD SP path [SP HTTP/1.x]: no CR/LF, no spaces inside the path, so nothing can smuggle
            # extra lines into a monitor request or a rendered config.
            pattern=r"^(GET|HEAD|POST|OPTIONS) /[\x21-\x7e]*( HTTP/1\.[01])?$",
        ),
    ] = "HEAD / HTTP/1.0"
    http_response_code: list[HttpResponseCode] = Field(
        default_factory=lambda: [HttpResponseCode.HTTP_2XX, HttpResponseCode.HTTP_3XX], min_length=1
    )
    # Exact status codes ("200", "200-204", "200,202,301"); when set, they replace http_response_code.
    http_response_codes: Annotated[str | None, Field(max_length=STATUS_CODES_MAX_LENGTH)] = None
    http_request_host: Hostname | None = None

    @field_validator("http_response_codes")
    @classmethod
    def _codes_parse(cls, value: str | None) -> str | None:
        if value is not None:
            expected_status_codes(value)
        return value


class HealthMonitor(Strict):
    name: Name
    description: Description = ""
    type: HealthMonitorType
    send_interval: Annotated[int, Field(ge=1, le=3600)] = 10
    receive_timeout: Annotated[int, Field(ge=1, le=2400)] = 4
    successful_checks: Annotated[int, Field(ge=1, le=50)] = 2
    failed_checks: Annotated[int, Field(ge=1, le=50)] = 2
    monitor_port: Port | None = None
    http_monitor: HttpMonitor | None = None
    https_monitor: HttpMonitor | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HealthMonitor:
        if self.receive_timeout >= self.send_interval and not self.send_interval == self.receive_timeout == 1:
            raise ValueError("receive_timeout must be shorter than send_interval")
        if self.type == HealthMonitorType.HEALTH_MONITOR_HTTP and self.http_monitor is None:
            self.http_monitor = HttpMonitor()
        if self.type == HealthMonitorType.HEALTH_MONITOR_HTTPS and self.https_monitor is None:
            self.https_monitor = HttpMonitor()
        if self.http_monitor is not None and self.type != HealthMonitorType.HEALTH_MONITOR_HTTP:
            raise ValueError("http_monitor is only valid with type HEALTH_MONITOR_HTTP")
        if self.https_monitor is not None and self.type != HealthMonitorType.HEALTH_MONITOR_HTTPS:
            raise ValueError("https_monitor is only valid with type HEALTH_MONITOR_HTTPS")
        return self


ExternalUuid = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
        description="a UUID (with or without dashes)",
    ),
]


class Server(Strict):
    ip: IPAddress
    port: Port | None = None
    name: Name | None = None  # a label for people; servers are identified by ip:port
    external_uuid: ExternalUuid | None = None  # an id given by another system (an Octavia member id)
    # Weight: 0 takes no new connections or requests (established ones and persistence still reach it).
    ratio: Annotated[int, Field(ge=0, le=256)] = 1
    backup: bool = False  # used only while no non-backup server of the pool is up
    enabled: bool = True
    hostname: Hostname | None = None
    monitor_address: IPAddress | None = None
    monitor_port: Port | None = None
    description: Description = ""

    _ip_not_reserved = field_validator("ip", "monitor_address")(_refuse_reserved)


class Pool(Strict):
    name: Name
    description: Description = ""
    cloud_ref: ref("cloud") | None = None  # type: ignore[valid-type]
    servers: list[Server] = Field(default_factory=list, max_length=1000)
    lb_algorithm: LbAlgorithm = LbAlgorithm.LB_ALGORITHM_LEAST_CONNECTIONS
    lb_algorithm_hash: LbAlgorithmHash = LbAlgorithmHash.LB_ALGORITHM_CONSISTENT_HASH_SOURCE_IP_ADDRESS
    lb_algorithm_consistent_hash_hdr: HttpToken | None = None
    health_monitor_refs: list[ref("healthmonitor")] = Field(default_factory=list, max_length=50)  # type: ignore[valid-type]
    application_persistence_profile_ref: ref("applicationpersistenceprofile") | None = None  # type: ignore[valid-type]
    default_server_port: Port = 80
    graceful_disable_timeout: Annotated[int, Field(ge=-1, le=7200)] = 1
    connection_ramp_duration: Annotated[int, Field(ge=0, le=300)] = 10
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Pool:
        seen: set[tuple[str, int]] = set()
        for index, server in enumerate(self.servers):
            key = (server.ip, server.port or self.default_server_port)
            if key in seen:
                raise ValueError(f"servers[{index}]: duplicate server {key[0]}:{key[1]}")
            seen.add(key)
        if (
            self.lb_algorithm == LbAlgorithm.LB_ALGORITHM_CONSISTENT_HASH
            and self.lb_algorithm_hash == LbAlgorithmHash.LB_ALGORITHM_CONSISTENT_HASH_CUSTOM_HEADER
            and not self.lb_algorithm_consistent_hash_hdr
        ):
            raise ValueError("lb_algorithm_consistent_hash_hdr is required for a custom-header hash")
        if len(set(self.health_monitor_refs)) != len(self.health_monitor_refs):
            raise ValueError("health_monitor_refs: each monitor may appear only once")
        return self


# --- HTTP policies --------------------------------------------------------------------------------

_UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_DN_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")  # CN, O, OU, emailAddress, ...
_EXTENSION = re.compile(r"[A-Za-z0-9_~+-]{1,64}")
_MATCH_VALUE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_KEYED = {HttpMatchType.HEADER, HttpMatchType.COOKIE, HttpMatchType.SSL_DN_FIELD}
_KEYLESS = {HttpMatchType.SSL_CONN_HAS_CERT, HttpMatchType.SSL_VERIFY_RESULT}
_ONLY_EQUAL_TO = {HttpMatchType.SSL_CONN_HAS_CERT, HttpMatchType.SSL_VERIFY_RESULT}
_FILE_TYPE_COMPARES = {HttpMatchCompareType.EQUAL_TO, HttpMatchCompareType.REGEX}

# Absolute http(s) URLs: a DNS name or an IP address (IPv6 in brackets), an optional port, then only
# RFC 3986 characters (percent-encoding for anything else).
_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])"
)
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_ORIGIN = rf"[Hh][Tt][Tt][Pp][Ss]?://(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?"
_REDIRECT_URL = re.compile(
    rf"{_ORIGIN}(?:/(?:{_PCHAR}|/)*)?(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
)
_REDIRECT_PREFIX = re.compile(rf"{_ORIGIN}(?:/(?:{_PCHAR}|/)*)?")


def _check_url(value: str, pattern: re.Pattern[str], what: str) -> str:
    match = pattern.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not {what}")
    host, port = match["host"], match["port"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{value!r}: {host} is not an IPv6 address") from None
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: port {port} is out of range")
    return value


def _check_redirect_url(value: str) -> str:
    return _check_url(value, _REDIRECT_URL, "an absolute http:// or https:// URL")


def _check_redirect_prefix(value: str) -> str:
    return _check_url(
        value, _REDIRECT_PREFIX, "an http(s)://host[:port][/path] prefix (no query or fragment)"
    )


RedirectUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_redirect_url)]
RedirectPrefix = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_redirect_prefix)]


class HttpMatch(Strict):
    """One condition of an HTTP policy set (an Octavia L7 rule). `invert` negates it."""

    match_id: Annotated[str, Field(pattern=_UUID_PATTERN)]
    type: HttpMatchType
    compare_type: HttpMatchCompareType
    # HEADER: the header name; COOKIE: the cookie name; SSL_DN_FIELD: the subject DN field (CN, O, ...).
    key: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    value: Annotated[str, Field(min_length=1, max_length=255)]
    invert: bool = False
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> HttpMatch:
        kind, compare = self.type, self.compare_type
        if kind in _ONLY_EQUAL_TO and compare != HttpMatchCompareType.EQUAL_TO:
            raise ValueError(f"compare_type: {kind.value} matches only support EQUAL_TO")
        if kind == HttpMatchType.FILE_TYPE and compare not in _FILE_TYPE_COMPARES:
            raise ValueError("compare_type: FILE_TYPE matches only support EQUAL_TO and REGEX")
        if kind in _KEYED and self.key is None:
            raise ValueError(f"key: is required for {kind.value} matches")
        if kind in _KEYLESS and self.key is not None:
            raise ValueError(f"key: {kind.value} matches do not use a key")
        if self.key is not None:
            self._check_key(kind, self.key)
        if _MATCH_VALUE_CONTROL.search(self.value):
            raise ValueError("value: must not contain control or line-break characters")
        if compare == HttpMatchCompareType.REGEX:
            try:
                check_regex(self.value)
            except RegexError as error:
                raise ValueError(f"value: {error}") from None
        elif kind == HttpMatchType.SSL_CONN_HAS_CERT:
            if self.value.lower() not in ("true", "false"):
                raise ValueError("value: SSL_CONN_HAS_CERT matches take 'True' or 'False'")
            self.value = self.value.capitalize()
        elif kind == HttpMatchType.SSL_VERIFY_RESULT:
            if not (self.value.isascii() and self.value.isdigit() and len(self.value) <= 9):
                raise ValueError("value: SSL_VERIFY_RESULT matches take a non-negative integer")
        elif kind == HttpMatchType.FILE_TYPE and not _EXTENSION.fullmatch(self.value):
            raise ValueError(
                "value: a FILE_TYPE is the extension without its dot (like jpg): letters, digits, _~+-"
            )
        return self

    @staticmethod
    def _check_key(kind: HttpMatchType, key: str) -> None:
        if kind == HttpMatchType.SSL_DN_FIELD:
            if not _DN_FIELD.fullmatch(key):
                raise ValueError(f"key: {key!r} is not a distinguished name field (like CN, O or OU)")
            return
        # A header or cookie name is an HTTP token; `'` would open a quoted argument in HAProxy.
        if not _TOKEN_KEY.fullmatch(key):
            raise ValueError(f"key: {key!r} is not an HTTP token (letters, digits and !#$%&*+-.^_`|~)")


_TOKEN_KEY = re.compile(r"[!#$%&*+\-.^_`|~0-9A-Za-z]+")


class HttpPolicySet(Strict):
    """An ordered virtual service's HTTP policy (an Octavia L7 policy): when every enabled match holds,
    do `action`. A policy set without an enabled match never matches."""

    name: Name
    description: Description = ""
    enabled: bool = True
    action: HttpPolicyAction
    redirect_pool_ref: ref("pool") | None = None  # type: ignore[valid-type]
    redirect_url: RedirectUrl | None = None
    redirect_prefix: RedirectPrefix | None = None
    redirect_http_code: Literal[301, 302, 303, 307, 308] = 302
    matches: list[HttpMatch] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _action_fields(self) -> HttpPolicySet:
        wanted = {
            HttpPolicyAction.REDIRECT_TO_POOL: "redirect_pool_ref",
            HttpPolicyAction.REDIRECT_TO_URL: "redirect_url",
            HttpPolicyAction.REDIRECT_PREFIX: "redirect_prefix",
        }
        for action, field in wanted.items():
            given = getattr(self, field) is not None
            if action == self.action and not given:
                raise ValueError(f"{field}: is required with action {action.value}")
            if action != self.action and given:
                raise ValueError(f"{field}: is only valid with action {action.value}")
        ids = [m.match_id.lower() for m in self.matches]
        if len(set(ids)) != len(ids):
            raise ValueError("matches: each match_id may appear only once")
        return self


class Vip(Strict):
    vip_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = "0"
    ip_address: IPAddress | None = None
    auto_allocate_ip: bool = False
    subnet: Network | None = None
    floating_ip: IPAddress | None = None
    auto_allocate_floating_ip: bool = False
    enabled: bool = True

    @model_validator(mode="after")
    def _address_or_allocation(self) -> Vip:
        if self.ip_address is None and not self.auto_allocate_ip:
            raise ValueError("give ip_address or set auto_allocate_ip")
        inside = self.ip_address is None or self.subnet is None
        if not inside and ipaddress.ip_address(self.ip_address) not in ipaddress.ip_network(self.subnet):
            raise ValueError(f"ip_address {self.ip_address} is not inside subnet {self.subnet}")
        if self.floating_ip is not None and self.auto_allocate_floating_ip:
            raise ValueError("give floating_ip or set auto_allocate_floating_ip, not both")
        return self


def _unique_vip_ids(vips: list[Vip]) -> list[Vip]:
    ids = [v.vip_id for v in vips]
    if len(set(ids)) != len(ids):
        raise ValueError("vip_id must be unique within the list")
    addresses = [v.ip_address for v in vips if v.ip_address]
    if len(set(addresses)) != len(addresses):
        raise ValueError("each ip_address may appear only once")
    return vips


class VsVip(Strict):
    name: Name
    cloud_ref: ref("cloud") | None = None  # type: ignore[valid-type]
    vip: list[Vip] = Field(min_length=1, max_length=16)

    _unique = field_validator("vip")(_unique_vip_ids)


class Service(Strict):
    port: Port
    port_range_end: Port | None = None
    enable_ssl: bool = False

    @model_validator(mode="after")
    def _range(self) -> Service:
        if self.port_range_end is not None and self.port_range_end < self.port:
            raise ValueError("port_range_end must not be lower than port")
        return self


class AnalyticsPolicy(Strict):
    metrics_enabled: bool = True
    # Request logs: every significant request plus the controller's sample of the others.
    client_logs_enabled: bool = True


class VirtualService(Strict):
    name: Name
    description: Description = ""
    enabled: bool = True
    traffic_enabled: bool = True
    services: list[Service] = Field(min_length=1, max_length=64)
    pool_ref: ref("pool") | None = None  # type: ignore[valid-type]
    application_profile_ref: ref("applicationprofile") | None = None  # type: ignore[valid-type]
    ssl_key_and_certificate_refs: list[ref("sslkeyandcertificate")] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=32
    )
    se_group_ref: ref("serviceenginegroup") | None = None  # type: ignore[valid-type]
    cloud_ref: ref("cloud") | None = None  # type: ignore[valid-type]
    vsvip_ref: ref("vsvip") | None = None  # type: ignore[valid-type]
    vip: Annotated[list[Vip] | None, Field(min_length=1, max_length=16)] = None
    flow_dist: FlowDist = FlowDist.LOAD_AWARE
    analytics_policy: AnalyticsPolicy = Field(default_factory=AnalyticsPolicy)
    # Only clients from these networks may connect (refused at accept); empty: everyone.
    allowed_cidrs: list[Network] = Field(default_factory=list, max_length=100)
    connection_limit: Annotated[int | None, Field(ge=1, le=1_000_000)] = None  # concurrent connections
    # Inactivity timeouts in milliseconds; unset: the SE defaults; 0: no limit (rendered as 24 h).
    timeout_client_ms: TimeoutMs | None = None
    timeout_server_connect_ms: TimeoutMs | None = None
    timeout_server_ms: TimeoutMs | None = None
    timeout_tcp_inspect_ms: TimeoutMs | None = None  # how long to wait for request data to inspect
    # Headers added to requests (HTTP only). X-Forwarded-For and X-Forwarded-Proto are also enabled by
    # the application profile (xff_enabled, x_forwarded_proto_enabled): either one turns them on, and
    # the profile's xff_alternate_name names the client-address header.
    insert_headers: list[InsertHeader] = Field(default_factory=list, max_length=3)
    # HTTP policy sets in evaluation order: the first whose matches all hold decides (HTTP only).
    http_policies: list[ref("httppolicyset")] = Field(default_factory=list, max_length=64)  # type: ignore[valid-type]

    @field_validator("allowed_cidrs")
    @classmethod
    def _distinct_cidrs(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> VirtualService:
        if len(set(self.insert_headers)) != len(self.insert_headers):
            raise ValueError("insert_headers: each header may appear only once")
        if len(set(self.http_policies)) != len(self.http_policies):
            raise ValueError("http_policies: each policy set may appear only once")
        ports: set[int] = set()
        for index, service in enumerate(self.services):
            span = set(range(service.port, (service.port_range_end or service.port) + 1))
            if span & ports:
                raise ValueError(f"services[{index}]: port {service.port} overlaps another service")
            ports |= span
        if any(s.enable_ssl for s in self.services) and not self.ssl_key_and_certificate_refs:
            raise ValueError("ssl_key_and_certificate_refs is required when a service has enable_ssl")
        if self.vip is not None:
            if self.vsvip_ref is not None:
                raise ValueError("give either vsvip_ref or an inline vip, not both")
            _unique_vip_ids(self.vip)
        return self


class HttpProfile(Strict):
    xff_enabled: bool = True
    xff_alternate_name: HttpToken = "X-Forwarded-For"
    x_forwarded_proto_enabled: bool = False
    connection_multiplexing_enabled: bool = True
    keepalive_timeout: Annotated[int, Field(ge=100, le=3600000)] = 30000
    client_header_timeout: Annotated[int, Field(ge=100, le=3600000)] = 10000
    client_max_header_size: Annotated[int, Field(ge=1, le=64)] = 12
    http_to_https: bool = False
    hsts_enabled: bool = False


class DnsServiceProfile(Strict):
    ttl: Annotated[int, Field(ge=0, le=86400)] = 30
    domain_names: list[Hostname] = Field(default_factory=list, max_length=100)


class ApplicationProfile(Strict):
    name: Name
    description: Description = ""
    type: ApplicationProfileType = ApplicationProfileType.APPLICATION_PROFILE_TYPE_HTTP
    http_profile: HttpProfile | None = None
    dns_service_profile: DnsServiceProfile | None = None

    @model_validator(mode="after")
    def _profile_matches_type(self) -> ApplicationProfile:
        http = self.type == ApplicationProfileType.APPLICATION_PROFILE_TYPE_HTTP
        dns = self.type == ApplicationProfileType.APPLICATION_PROFILE_TYPE_DNS
        if self.http_profile is not None and not http:
            raise ValueError("http_profile is only valid with type APPLICATION_PROFILE_TYPE_HTTP")
        if self.dns_service_profile is not None and not dns:
            raise ValueError("dns_service_profile is only valid with type APPLICATION_PROFILE_TYPE_DNS")
        if http and self.http_profile is None:
            self.http_profile = HttpProfile()
        if dns and self.dns_service_profile is None:
            self.dns_service_profile = DnsServiceProfile()
        return self


class HttpCookiePersistence(Strict):
    cookie_name: HttpToken = "FULCRUM_PERSIST"
    timeout: Annotated[int, Field(ge=0, le=14400)] = 0  # minutes; 0 = session cookie


class IpPersistence(Strict):
    ip_persistent_timeout: Annotated[int, Field(ge=1, le=720)] = 5  # minutes
    ip_mask: Annotated[int, Field(ge=1, le=128)] | None = None


class AppCookiePersistence(Strict):
    """Persistence on a cookie the application sets itself (a session id): the SE learns which server
    set each value and sends requests carrying that value to the same server."""

    cookie_name: HttpToken
    # Minutes without a response setting, or a request carrying, a value before it is forgotten.
    timeout: Annotated[int, Field(ge=1, le=1440)] = 30

    @field_validator("cookie_name")
    @classmethod
    def _no_quote(cls, value: str) -> str:
        # The name is an argument of HAProxy's cookie fetches, where a quote would start a quoted string.
        if "'" in value:
            raise ValueError("must not contain a single quote (')")
        return value


class ApplicationPersistenceProfile(Strict):
    name: Name
    description: Description = ""
    persistence_type: PersistenceType = PersistenceType.PERSISTENCE_TYPE_CLIENT_IP_ADDRESS
    http_cookie_persistence_profile: HttpCookiePersistence | None = None
    app_cookie_persistence_profile: AppCookiePersistence | None = None
    ip_persistence_profile: IpPersistence | None = None

    @model_validator(mode="after")
    def _profile_matches_type(self) -> ApplicationPersistenceProfile:
        kind = self.persistence_type
        only_with = {
            "http_cookie_persistence_profile": (PersistenceType.PERSISTENCE_TYPE_HTTP_COOKIE, "HTTP-cookie"),
            "app_cookie_persistence_profile": (PersistenceType.PERSISTENCE_TYPE_APP_COOKIE, "app-cookie"),
            "ip_persistence_profile": (PersistenceType.PERSISTENCE_TYPE_CLIENT_IP_ADDRESS, "client-IP"),
        }
        for field, (wanted, label) in only_with.items():
            if kind != wanted and getattr(self, field) is not None:
                raise ValueError(f"{field} is only valid with {label} persistence")
        if kind == PersistenceType.PERSISTENCE_TYPE_HTTP_COOKIE:
            self.http_cookie_persistence_profile = (
                self.http_cookie_persistence_profile or HttpCookiePersistence()
            )
        elif kind == PersistenceType.PERSISTENCE_TYPE_APP_COOKIE:
            if self.app_cookie_persistence_profile is None:
                # No default: the cookie is the application's, and only its owner knows its name.
                raise ValueError(
                    "app_cookie_persistence_profile (its cookie_name) is required with app-cookie persistence"
                )
        else:
            self.ip_persistence_profile = self.ip_persistence_profile or IpPersistence()
        return self


class CertificateInfo(Strict):
    """Read-only facts about a certificate, filled in by the controller."""

    subject: str = ""
    issuer: str = ""
    not_before: str = ""
    not_after: str = ""
    serial_number: str = ""
    fingerprint_sha256: str = ""
    subject_alt_names: list[str] = Field(default_factory=list)
    self_signed: bool = False


class CertificateBody(Strict):
    certificate: PemText
    info: CertificateInfo | None = None

    @field_validator("certificate")
    @classmethod
    def _looks_like_pem(cls, value: str) -> str:
        if "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return value


class SslKeyAndCertificate(Strict):
    name: Name
    type: CertificateType = CertificateType.SSL_CERTIFICATE_TYPE_VIRTUALSERVICE
    certificate: CertificateBody
    key: Annotated[PemText | None, Secret()] = None
    key_passphrase: Annotated[str | None, Field(max_length=1024), Secret()] = None
    ca_certificate_refs: list[ref("sslkeyandcertificate")] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=8
    )


# --- alerts and alert actions ---------------------------------------------------------------------

EmailList = Annotated[
    str,
    Field(
        max_length=4096,
        pattern=r"^\s*$|^[^@\s,<>\"]+@[^@\s,<>\"]+(\s*,\s*[^@\s,<>\"]+@[^@\s,<>\"]+)*\s*$",
        description="comma-separated e-mail addresses",
    ),
]
EventId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Z][A-Z0-9_]*$")]
MetricId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9_]+\.[a-z0-9_]+$")]


class AlertSyslogServer(Strict):
    syslog_server: Hostname
    syslog_server_port: Port = 514
    udp: bool = True  # UDP (RFC 5426); False: TCP with octet counting (RFC 6587)
    tls_enable: bool = False  # TCP over TLS (RFC 5425); needs udp false
    ca_pem: PemText | None = Field(None, description="CA that signs the server's certificate (TLS)")

    @model_validator(mode="after")
    def _tls_needs_tcp(self) -> AlertSyslogServer:
        if self.tls_enable and self.udp:
            raise ValueError("tls_enable needs udp: false (syslog over TLS runs on TCP)")
        return self


class AlertSyslogConfig(Strict):
    name: Name
    description: Description = ""
    syslog_servers: list[AlertSyslogServer] = Field(min_length=1, max_length=8)


class AlertEmailConfig(Strict):
    name: Name
    description: Description = ""
    smtp_server: Hostname
    smtp_port: Port = 25
    starttls: bool = True
    username: Annotated[str | None, Field(max_length=255)] = None
    password: Annotated[str | None, Field(max_length=1024), Secret()] = None
    from_email: Annotated[str, Field(max_length=255, pattern=r"^[^@\s,<>\"]+@[^@\s,<>\"]+$")]
    to_emails: EmailList
    cc_emails: EmailList = ""
    ca_pem: PemText | None = None


class SnmpV3User(Strict):
    username: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
    auth_type: Annotated[str, Field(pattern=r"^SNMP_V3_AUTH_(SHA|SHA256|MD5)$")] = "SNMP_V3_AUTH_SHA"
    # Write-only: required when the profile is created, kept when a GET body is PUT back without them.
    auth_passphrase: Annotated[str | None, Field(min_length=8, max_length=64), Secret()] = None
    priv_type: Annotated[str, Field(pattern=r"^SNMP_V3_PRIV_AES$")] = "SNMP_V3_PRIV_AES"
    priv_passphrase: Annotated[str | None, Field(min_length=8, max_length=64), Secret()] = None
    engine_id: Annotated[str | None, Field(pattern=r"^(0x)?[0-9A-Fa-f]{10,64}$")] = None


class SnmpTrapServer(Strict):
    ip_addr: IPAddress
    port: Port = 162
    version: Annotated[str, Field(pattern=r"^SNMP_VER(2|3)$")] = "SNMP_VER2"
    community: Annotated[str | None, Field(max_length=64), Secret()] = None
    user: SnmpV3User | None = None

    @model_validator(mode="after")
    def _credentials(self) -> SnmpTrapServer:
        # The community and passphrases are write-only, so a PUT of a GET body omits them: whether
        # they are present is checked when the profile is created (see the snmptrapprofile hook).
        if self.version == "SNMP_VER3" and self.user is None:
            raise ValueError("user is required with SNMP_VER3")
        return self


class SnmpTrapProfile(Strict):
    name: Name
    description: Description = ""
    trap_servers: list[SnmpTrapServer] = Field(min_length=1, max_length=8)


class Webhook(Strict):
    name: Name
    description: Description = ""
    callback_url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
    verification_token: Annotated[str | None, Field(max_length=1024), Secret()] = Field(
        None, description="sent as `Authorization: Bearer <token>` (or `Splunk <token>` with splunk_hec)"
    )
    splunk_hec: bool = False
    ca_pem: PemText | None = None
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    retry_base_s: Annotated[float, StrictValue(), Field(ge=0.01, le=60)] = 0.5
    timeout_s: Annotated[float, StrictValue(), Field(ge=0.1, le=60)] = 5.0


class ActionGroupConfig(Strict):
    name: Name
    description: Description = ""
    level: Annotated[str, Field(pattern=r"^ALERT_(LOW|MEDIUM|HIGH)$")] = "ALERT_LOW"
    syslog_config_ref: ref("alertsyslogconfig") | None = None  # type: ignore[valid-type]
    email_config_ref: ref("alertemailconfig") | None = None  # type: ignore[valid-type]
    snmp_trap_profile_ref: ref("snmptrapprofile") | None = None  # type: ignore[valid-type]
    webhook_ref: ref("webhook") | None = None  # type: ignore[valid-type]


class AlertRuleEvent(Strict):
    event_id: EventId


class AlertRuleMetric(Strict):
    metric_id: MetricId
    comparator: Annotated[str, Field(pattern=r"^CO_(GT|GE|LT|LE|EQ)$")] = "CO_GT"
    threshold: Annotated[float, StrictValue()]
    duration: Annotated[int, Field(ge=0, le=86400, description="seconds the condition must hold")] = 0


class AlertRule(Strict):
    operator: Annotated[str, Field(pattern=r"^OPERATOR_(OR|AND)$")] = "OPERATOR_OR"
    sys_event_rule: list[AlertRuleEvent] = Field(default_factory=list, max_length=32)
    metrics_rule: list[AlertRuleMetric] = Field(default_factory=list, max_length=8)


class AlertConfig(Strict):
    name: Name
    description: Description = ""
    enabled: bool = True
    source: Annotated[str, Field(pattern=r"^(EVENT_LOGS|METRICS)$")] = "EVENT_LOGS"
    alert_rule: AlertRule
    object_type: Annotated[str | None, Field(pattern=r"^(virtualservice|pool|serviceengine)$")] = None
    obj_uuid: Annotated[str | None, Field(max_length=80)] = None
    # EVENT_LOGS: raise when `threshold` matching events happen within `rolling_window` seconds.
    rolling_window: Annotated[int, Field(ge=0, le=86400)] = 0
    threshold: Annotated[int, Field(ge=1, le=10000)] = 1
    throttle: Annotated[int, Field(ge=0, le=86400, description="seconds between two raises")] = 600
    summary: Annotated[str, Field(max_length=1024)] = ""
    autoclear: bool = True  # METRICS: clear when the condition no longer holds
    expiry_time: Annotated[int, Field(ge=60, le=31536000)] = 86400  # EVENT_LOGS: clear after this long
    action_group_ref: ref("actiongroupconfig") | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _rules_match_source(self) -> AlertConfig:
        if self.source == "EVENT_LOGS" and not self.alert_rule.sys_event_rule:
            raise ValueError("alert_rule.sys_event_rule needs at least one event_id with source EVENT_LOGS")
        if self.source == "METRICS" and not self.alert_rule.metrics_rule:
            raise ValueError("alert_rule.metrics_rule needs at least one rule with source METRICS")
        return self


def strip_read_only(data: dict[str, Any]) -> dict[str, Any]:
    """Drop the metadata fields every GET returns, so a GET body can be PUT back as it is."""
    return {k: v for k, v in data.items() if k not in {"uuid", "url", "tenant_ref", "_last_modified"}}

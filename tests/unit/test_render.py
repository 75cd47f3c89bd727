"""The HAProxy view and template: representative configs render to the expected text, hostile strings
stay data, unsafe values are refused, and every rendered example passes `haproxy -c`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.protocol.se import (
    Algorithm,
    AnalyticsSettings,
    AppType,
    CertificateSpec,
    HttpMatchSpec,
    HttpPolicySpec,
    HttpSettings,
    ListenerSpec,
    MatchCompare,
    MatchType,
    MonitorSpec,
    MonitorType,
    PeerState,
    PersistenceKind,
    PersistenceSpec,
    PolicyAction,
    PoolSpec,
    ScaleOutPeer,
    ScaleOutSpec,
    SeConfig,
    ServerSpec,
    VsRole,
    VsSpec,
)
from fulcrum.se.haproxy import HAProxyProcess
from fulcrum.se.render import RenderError, RuntimePaths, build_view, render, server_arguments
from fulcrum.se.render.quoting import quote, quote_logformat
from fulcrum.se.render.view import pool_backend_name, safe_name, server_name, server_numeric_ids
from support.certs import self_signed

HAPROXY_MISSING = "haproxy not installed: run make test which apt-get installs it"
PATHS = RuntimePaths(Path("/run/fulcrum/se-1"))
FAKE_CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
FAKE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n"
HTTP_MONITOR = MonitorSpec(
    name="hm",
    type=MonitorType.HTTP,
    interval_s=5,
    timeout_s=2,
    rise=2,
    fall=3,
    http_request="GET /healthz HTTP/1.1",
    http_host="www.example.com",
    http_status_classes=(2,),
)


def srv(ip: str, port: int, **settings: object) -> ServerSpec:
    ident = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    values: dict[str, object] = {"weight": 1}
    values.update(settings)
    return ServerSpec(id=ident, ip=ip, port=port, **values)  # type: ignore[arg-type]


WEB = VsSpec(
    uuid="virtualservice-web",
    name="web",
    tenant_uuid="tenant-a",
    vips=("10.0.0.10", "fd00::10"),
    listeners=(ListenerSpec(port=80), ListenerSpec(port=443, tls=True)),
    app_type=AppType.HTTP,
    http=HttpSettings(
        xff_header="X-Real-Client",
        x_forwarded_proto=True,
        redirect_to_https=True,
        hsts=True,
        keepalive_timeout_ms=15000,
    ),
    pool=PoolSpec(
        uuid="pool-web",
        name="web-pool",
        algorithm=Algorithm.LEAST_CONNECTIONS,
        servers=(srv("10.1.0.1", 8080), srv("10.1.0.2", 8080, weight=3), srv("fd00::2", 8080, enabled=False)),
        monitors=(HTTP_MONITOR,),
        persistence=PersistenceSpec(kind=PersistenceKind.HTTP_COOKIE, cookie_max_age_s=3600),
    ),
    certificates=(
        CertificateSpec(uuid="cert-a", name="a", certificate_pem=FAKE_CERT, key_pem=FAKE_KEY),
        CertificateSpec(
            uuid="cert-b", name="b", certificate_pem=FAKE_CERT.replace("fake", "other"), key_pem=FAKE_KEY
        ),
    ),
)

TCP = VsSpec(
    uuid="virtualservice-tcp",
    name="db",
    tenant_uuid="tenant-a",
    vips=("10.0.0.20",),
    listeners=(ListenerSpec(port=5000, port_range_end=5010),),
    app_type=AppType.L4,
    pool=PoolSpec(
        uuid="pool-db",
        name="db",
        algorithm=Algorithm.HASH_SOURCE_IP,
        servers=(srv("10.2.0.1", 5432, monitor_address="10.9.0.1", monitor_port=9001), srv("10.2.0.2", 5432)),
        monitors=(
            MonitorSpec(
                name="tm", type=MonitorType.TCP, interval_s=10, timeout_s=4, rise=2, fall=2, port=9000
            ),
        ),
        persistence=PersistenceSpec(kind=PersistenceKind.CLIENT_IP, ip_timeout_s=600),
    ),
)

SSL = VsSpec(
    uuid="virtualservice-ssl",
    name="smtps",
    tenant_uuid="tenant-a",
    vips=("10.0.0.30",),
    listeners=(ListenerSpec(port=465, tls=True),),
    app_type=AppType.SSL,
    pool=PoolSpec(
        uuid="pool-mail",
        name="mail",
        algorithm=Algorithm.ROUND_ROBIN,
        servers=(srv("10.3.0.1", 25),),
        monitors=(HTTP_MONITOR.model_copy(update={"type": MonitorType.HTTPS, "port": 443}),),
    ),
    certificates=(CertificateSpec(uuid="cert-a", name="a", certificate_pem=FAKE_CERT, key_pem=FAKE_KEY),),
)

API = VsSpec(
    uuid="virtualservice-api",
    name="api",
    tenant_uuid="t",
    vips=("10.0.0.43",),
    listeners=(ListenerSpec(port=8080),),
    app_type=AppType.HTTP,
    http=HttpSettings(xff_enabled=False, connection_reuse=False),
    pool=PoolSpec(
        uuid="pool-api",
        name="api",
        algorithm=Algorithm.HASH_HEADER,
        hash_header="X-Tenant",
        enabled=False,
        servers=(srv("10.5.0.1", 80),),
        monitors=(
            HTTP_MONITOR.model_copy(update={"http_host": None, "http_status_classes": ()}),
            MonitorSpec(
                name="tls",
                type=MonitorType.HTTPS,
                interval_s=1,
                timeout_s=9,
                rise=1,
                fall=1,
                port=8443,
                http_request="HEAD /",
            ),
            MonitorSpec(
                name="tcp", type=MonitorType.TCP, interval_s=1, timeout_s=1, rise=1, fall=1, port=9000
            ),
        ),
    ),
)

EDGE = (
    VsSpec(
        uuid="virtualservice-off",
        name="off",
        tenant_uuid="t",
        enabled=False,
        vips=("10.0.0.40",),
        listeners=(ListenerSpec(port=80),),
        app_type=AppType.HTTP,
        pool=PoolSpec(
            uuid="pool-off", name="off", algorithm=Algorithm.ROUND_ROBIN, servers=(srv("10.4.0.1", 80),)
        ),
    ),
    VsSpec(
        uuid="virtualservice-dns",
        name="dns",
        tenant_uuid="t",
        vips=("10.0.0.41",),
        listeners=(ListenerSpec(port=53),),
        app_type=AppType.DNS,
    ),
    VsSpec(
        uuid="virtualservice-nopool-http",
        name="soon",
        tenant_uuid="t",
        vips=("10.0.0.42",),
        listeners=(ListenerSpec(port=80),),
        app_type=AppType.HTTP,
        http=HttpSettings(xff_enabled=False),
    ),
    VsSpec(
        uuid="virtualservice-nopool-tcp",
        name="soon-tcp",
        tenant_uuid="t",
        vips=("10.0.0.42",),
        listeners=(ListenerSpec(port=6000),),
        app_type=AppType.L4,
    ),
    API,
)

# Scale-out: the primary of one VS (a peer draining), the secondary of another, a warm standby.
SCALED_PRIMARY = VsSpec(
    uuid="virtualservice-shop",
    name="shop",
    tenant_uuid="tenant-a",
    vips=("10.0.0.50", "fd00::50"),
    listeners=(
        ListenerSpec(port=80),
        ListenerSpec(port=443, tls=True),
        ListenerSpec(port=8000, port_range_end=8002),
    ),
    app_type=AppType.HTTP,
    pool=PoolSpec(
        uuid="pool-shop", name="shop", algorithm=Algorithm.ROUND_ROBIN, servers=(srv("10.6.0.1", 8080),)
    ),
    certificates=(CertificateSpec(uuid="cert-a", name="a", certificate_pem=FAKE_CERT, key_pem=FAKE_KEY),),
    role=VsRole.PRIMARY,
    scaleout=ScaleOutSpec(
        worker_address="10.8.0.1",
        worker_port_offset=20000,
        peers=(
            ScaleOutPeer(se_uuid="se-1", address="10.8.0.1"),
            ScaleOutPeer(se_uuid="se-2", address="10.8.0.2", state=PeerState.DRAIN),
        ),
    ),
)

SCALED_SECONDARY = VsSpec(
    uuid="virtualservice-queue",
    name="queue",
    tenant_uuid="tenant-a",
    vips=("10.0.0.51",),
    listeners=(ListenerSpec(port=5000, port_range_end=5010),),
    app_type=AppType.L4,
    pool=PoolSpec(
        uuid="pool-queue", name="queue", algorithm=Algorithm.ROUND_ROBIN, servers=(srv("10.7.0.1", 5672),)
    ),
    role=VsRole.SECONDARY,
    scaleout=ScaleOutSpec(worker_address="fd00::8:1", worker_port_offset=10000),
)

STANDBY = VsSpec(
    uuid="virtualservice-spare",
    name="spare",
    tenant_uuid="tenant-a",
    vips=("10.0.0.52",),
    listeners=(ListenerSpec(port=80),),
    app_type=AppType.HTTP,
    pool=PoolSpec(
        uuid="pool-spare",
        name="spare",
        algorithm=Algorithm.ROUND_ROBIN,
        servers=(srv("10.7.0.2", 80),),
        monitors=(HTTP_MONITOR,),
    ),
    role=VsRole.STANDBY,
)


def match(kind: MatchType, compare: MatchCompare, value: str, **fields: object) -> HttpMatchSpec:
    return HttpMatchSpec(type=kind, compare=compare, value=value, **fields)  # type: ignore[arg-type]


API_POOL = PoolSpec(
    uuid="pool-api",
    name="api",
    algorithm=Algorithm.LEAST_CONNECTIONS,
    servers=(srv("10.2.0.1", 8080),),
    monitors=(HTTP_MONITOR,),
)

# HTTP policies in order (first match wins), a second pool, weight 0 and backup servers, a source
# filter, a connection limit, timeouts and the inserted headers.
L7 = VsSpec(
    uuid="virtualservice-l7",
    name="l7",
    tenant_uuid="t",
    vips=("10.0.0.60",),
    listeners=(ListenerSpec(port=80),),
    app_type=AppType.HTTP,
    http=HttpSettings(x_forwarded_proto=True, x_forwarded_port=True),
    pool=PoolSpec(
        uuid="pool-main",
        name="main",
        algorithm=Algorithm.ROUND_ROBIN,
        servers=(srv("10.1.0.1", 80), srv("10.1.0.2", 80, weight=0), srv("10.1.0.3", 80, backup=True)),
    ),
    extra_pools=(API_POOL,),
    http_policies=(
        HttpPolicySpec(
            uuid="httppolicyset-1",
            name="api",
            action=PolicyAction.POOL,
            pool_uuid="pool-api",
            matches=(
                match(MatchType.PATH, MatchCompare.STARTS_WITH, "/api/"),
                match(MatchType.HOST_NAME, MatchCompare.EQUAL_TO, "WWW.example.com"),
            ),
        ),
        HttpPolicySpec(
            uuid="httppolicyset-2",
            name="old",
            action=PolicyAction.REDIRECT_URL,
            location="https://new.example.com/?a=%20",
            redirect_code=301,
            matches=(match(MatchType.HEADER, MatchCompare.REGEX, "^a\\d+$", key="X-Old"),),
        ),
        HttpPolicySpec(
            uuid="httppolicyset-3",
            name="secure",
            action=PolicyAction.REDIRECT_PREFIX,
            location="https://secure.example.com/",
            redirect_code=308,
            matches=(
                match(MatchType.COOKIE, MatchCompare.CONTAINS, "-i", key="sess"),
                match(MatchType.SSL_CONN_HAS_CERT, MatchCompare.EQUAL_TO, "False", invert=True),
            ),
        ),
        HttpPolicySpec(
            uuid="httppolicyset-4",
            name="deny",
            action=PolicyAction.REJECT,
            matches=(
                match(MatchType.FILE_TYPE, MatchCompare.EQUAL_TO, "php"),
                match(MatchType.SSL_VERIFY_RESULT, MatchCompare.EQUAL_TO, "0", invert=True),
                match(MatchType.SSL_DN_FIELD, MatchCompare.ENDS_WITH, 'a b"$HOME', key="CN"),
            ),
        ),
        HttpPolicySpec(
            uuid="httppolicyset-5",
            name="main",
            action=PolicyAction.POOL,
            pool_uuid="pool-main",
            matches=(match(MatchType.PATH, MatchCompare.EQUAL_TO, "%[src]"),),
        ),
    ),
    allowed_cidrs=("10.0.0.0/8", "fd00::/8"),
    connection_limit=1000,
    timeout_client_ms=0,
    timeout_connect_ms=3000,
    timeout_server_ms=120000,
    tcp_inspect_delay_ms=500,
)

# No default pool: requests no policy routes are refused with 503; L4 with a source filter.
L7_NO_DEFAULT = VsSpec(
    uuid="virtualservice-routes",
    name="routes",
    tenant_uuid="t",
    vips=("10.0.0.61",),
    listeners=(ListenerSpec(port=80),),
    app_type=AppType.HTTP,
    http=HttpSettings(xff_enabled=False),
    extra_pools=(API_POOL,),
    http_policies=(
        HttpPolicySpec(
            uuid="httppolicyset-6",
            name="by-header",
            action=PolicyAction.POOL,
            pool_uuid="pool-api",
            matches=(match(MatchType.HEADER, MatchCompare.EQUAL_TO, "blue", key="X-Tenant", invert=True),),
        ),
    ),
)
L4_LIMITED = TCP.model_copy(
    update={
        "uuid": "virtualservice-tcp-limited",
        "allowed_cidrs": ("192.0.2.0/24",),
        "connection_limit": 10,
        "timeout_client_ms": 3600000,
        "timeout_server_ms": 3600000,
    }
)
# Scaled out: the distributor filters sources at accept; workers filter on the PROXY header's address.
L7_SCALED = L7.model_copy(
    update={
        "uuid": "virtualservice-l7s",
        "http_policies": L7.http_policies[:1],
        "scaleout": ScaleOutSpec(
            worker_address="10.8.0.1",
            worker_port_offset=20000,
            peers=(ScaleOutPeer(se_uuid="se-1", address="10.8.0.1"),),
        ),
        "timeout_client_ms": 30000,
    }
)

# Exact expected status codes, TLS-hello checks (alone and chained) and app-cookie persistence.
TLS_HELLO = MonitorSpec(name="tls", type=MonitorType.TLS_HELLO, interval_s=5, timeout_s=2, rise=2, fall=3)
CHECKS = (
    VsSpec(
        uuid="virtualservice-session",
        name="session",
        tenant_uuid="t",
        vips=("10.0.0.70",),
        listeners=(ListenerSpec(port=80),),
        app_type=AppType.HTTP,
        http=HttpSettings(xff_enabled=False),
        pool=PoolSpec(
            uuid="pool-session",
            name="session",
            algorithm=Algorithm.ROUND_ROBIN,
            servers=(srv("10.9.0.1", 8080),),
            monitors=(HTTP_MONITOR.model_copy(update={"http_status_codes": (200,)}),),
            persistence=PersistenceSpec(
                kind=PersistenceKind.APP_COOKIE, cookie_name="JSESSIONID", app_cookie_timeout_s=900
            ),
        ),
    ),
    VsSpec(
        uuid="virtualservice-chained",
        name="chained",
        tenant_uuid="t",
        vips=("10.0.0.71",),
        listeners=(ListenerSpec(port=80),),
        app_type=AppType.HTTP,
        pool=PoolSpec(
            uuid="pool-chained",
            name="chained",
            algorithm=Algorithm.ROUND_ROBIN,
            servers=(srv("10.9.0.2", 80),),
            monitors=(
                HTTP_MONITOR.model_copy(
                    update={"http_status_codes": (*range(200, 205), 301, 302, 404, *range(500, 600))}
                ),
                TLS_HELLO.model_copy(update={"port": 8443}),
            ),
        ),
    ),
    # An L4 VS: a TLS-hello check alone is a plain connect over TLS; cookies are not seen in L4.
    VsSpec(
        uuid="virtualservice-tls",
        name="tls",
        tenant_uuid="t",
        vips=("10.0.0.72",),
        listeners=(ListenerSpec(port=443),),
        app_type=AppType.L4,
        pool=PoolSpec(
            uuid="pool-tls",
            name="tls",
            algorithm=Algorithm.ROUND_ROBIN,
            servers=(srv("10.9.0.3", 443),),
            monitors=(TLS_HELLO,),
            persistence=PersistenceSpec(kind=PersistenceKind.APP_COOKIE, cookie_name="JSESSIONID"),
        ),
    ),
)

EXAMPLES = {
    "web": SeConfig(se_uuid="se-1", version=7, virtualservices=(WEB,)),
    "tcp": SeConfig(se_uuid="se-1", version=8, virtualservices=(TCP, SSL)),
    "edge": SeConfig(se_uuid="se-1", version=9, virtualservices=EDGE),
    "scaleout": SeConfig(
        se_uuid="se-1", version=10, virtualservices=(SCALED_PRIMARY, SCALED_SECONDARY, STANDBY)
    ),
    "l7": SeConfig(se_uuid="se-1", version=11, virtualservices=(L7, L7_NO_DEFAULT, L4_LIMITED)),
    "l7-scaleout": SeConfig(se_uuid="se-1", version=12, virtualservices=(L7_SCALED,)),
    "checks": SeConfig(se_uuid="se-1", version=13, virtualservices=CHECKS),
}

PREAMBLE = """\
global
    master-worker
    stats socket /run/fulcrum/se-1/admin.sock mode 600 level admin expose-fd listeners
    stats timeout 2m
    server-state-file /run/fulcrum/se-1/server-state
    hard-stop-after 300s
    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

defaults fulcrum_tcp
    mode tcp
    timeout connect 5000ms
    timeout client 60000ms
    timeout server 60000ms
    retries 3
    option redispatch 1
    load-server-state-from-file global

defaults fulcrum_http
    mode http
    option http-keep-alive
    option idle-close-on-response
    timeout connect 5000ms
    timeout client 60000ms
    timeout server 60000ms
    retries 3
    option redispatch 1
    load-server-state-from-file global
"""  # noqa: E501

# HTTP with TLS, IPv6, cookie persistence, an HTTP monitor and a disabled server.
EXPECTED_WEB = """\
frontend fe_virtualservice-web from fulcrum_http
    mode http
    description "virtual service web (virtualservice-web)"
    bind 10.0.0.10:80
    bind 10.0.0.10:443 ssl crt-list /run/fulcrum/se-1/certs/fe_virtualservice-web-1081e96fbb24.crtlist ssl-min-ver TLSv1.2 alpn http/1.1
    bind [fd00::10]:80
    bind [fd00::10]:443 ssl crt-list /run/fulcrum/se-1/certs/fe_virtualservice-web-1081e96fbb24.crtlist ssl-min-ver TLSv1.2 alpn http/1.1
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 15000ms
    http-request redirect scheme https code 301 if !{ ssl_fc }
    option forwardfor header X-Real-Client
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    http-response set-header Strict-Transport-Security max-age=31536000 if { ssl_fc }
    default_backend be_virtualservice-web

backend be_virtualservice-web from fulcrum_http
    mode http
    description "pool web-pool (pool-web)"
    balance leastconn
    http-reuse safe
    cookie FULCRUM_PERSIST insert indirect nocache httponly maxlife 3600s attr Max-Age=3600
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com
    http-check expect rstatus ^2
    timeout check 2s
    server 10.1.0.1_8080 10.1.0.1:8080 id 322973393 weight 1 cookie ba64ccaf2d1f529f check inter 5s fall 3 rise 2
    server 10.1.0.2_8080 10.1.0.2:8080 id 82457727 weight 3 cookie fcae47d28d032032 check inter 5s fall 3 rise 2
    server fd00__2_8080 [fd00::2]:8080 id 542707043 weight 1 cookie b3b51a8c12a9d910 check inter 5s fall 3 rise 2 disabled
"""  # noqa: E501

# L4 port range with source hashing, client-IP persistence and a TCP monitor; TLS to TCP.
EXPECTED_TCP = """\
frontend fe_virtualservice-tcp from fulcrum_tcp
    mode tcp
    description "virtual service db (virtualservice-tcp)"
    bind 10.0.0.20:5000-5010
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "t1 %Ts.%ms %f %b %s %ci %cp %Th %Tw %Tc %Tt %U %B %tsc %sslv"
    default_backend be_virtualservice-tcp

frontend fe_virtualservice-ssl from fulcrum_tcp
    mode tcp
    description "virtual service smtps (virtualservice-ssl)"
    bind 10.0.0.30:465 ssl crt-list /run/fulcrum/se-1/certs/fe_virtualservice-ssl-995f2ea324c0.crtlist ssl-min-ver TLSv1.2
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "t1 %Ts.%ms %f %b %s %ci %cp %Th %Tw %Tc %Tt %U %B %tsc %sslv"
    default_backend be_virtualservice-ssl

backend be_virtualservice-tcp from fulcrum_tcp
    mode tcp
    description "pool db (pool-db)"
    balance source
    hash-type consistent
    stick-table type ip size 1m expire 600s
    stick on src
    timeout check 4s
    server 10.2.0.1_5432 10.2.0.1:5432 id 586064182 weight 1 check inter 10s fall 2 rise 2 port 9001 addr 10.9.0.1
    server 10.2.0.2_5432 10.2.0.2:5432 id 395297692 weight 1 check inter 10s fall 2 rise 2 port 9000

backend be_virtualservice-ssl from fulcrum_tcp
    mode tcp
    description "pool mail (pool-mail)"
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com
    http-check expect rstatus ^2
    timeout check 2s
    server 10.3.0.1_25 10.3.0.1:25 id 487226751 weight 1 check inter 5s fall 3 rise 2 port 443 check-ssl verify none
"""  # noqa: E501

# disabled and DNS VSs render nothing; pool-less VSs refuse; chained monitors.
EXPECTED_EDGE = """\
frontend fe_virtualservice-nopool-http from fulcrum_http
    mode http
    description "virtual service soon (virtualservice-nopool-http)"
    bind 10.0.0.42:80
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 30000ms
    http-request deny deny_status 503

frontend fe_virtualservice-nopool-tcp from fulcrum_tcp
    mode tcp
    description "virtual service soon-tcp (virtualservice-nopool-tcp)"
    bind 10.0.0.42:6000
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "t1 %Ts.%ms %f %b %s %ci %cp %Th %Tw %Tc %Tt %U %B %tsc %sslv"
    tcp-request connection reject

frontend fe_virtualservice-api from fulcrum_http
    mode http
    description "virtual service api (virtualservice-api)"
    bind 10.0.0.43:8080
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 30000ms
    default_backend be_virtualservice-api

backend be_virtualservice-api from fulcrum_http
    mode http
    description "pool api (pool-api)"
    balance hdr(X-Tenant)
    hash-type consistent
    http-reuse never
    option httpchk
    http-check connect default
    http-check send meth GET uri /healthz ver HTTP/1.1
    http-check expect rstatus ^[1-5]
    http-check connect port 8443 ssl
    http-check send meth HEAD uri / ver HTTP/1.0
    http-check expect rstatus ^[23]
    http-check connect port 9000
    timeout check 9s
    server 10.5.0.1_80 10.5.0.1:80 id 635021053 weight 1 check inter 5s fall 3 rise 2 verify none disabled
"""


# Scale-out: the primary's worker binds the worker address (ports + offset, PROXY protocol only) and its
# distributor binds the VIPs; the secondary only has a worker; the standby only a warm backend.
EXPECTED_SCALEOUT = """\
frontend fe_virtualservice-shop from fulcrum_http
    mode http
    description "virtual service shop (virtualservice-shop)"
    bind 10.8.0.1:20080 accept-proxy
    bind 10.8.0.1:20443 accept-proxy ssl crt-list /run/fulcrum/se-1/certs/fe_virtualservice-shop-995f2ea324c0.crtlist ssl-min-ver TLSv1.2 alpn http/1.1
    bind 10.8.0.1:28000-28002 accept-proxy
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 30000ms
    option forwardfor header X-Forwarded-For
    default_backend be_virtualservice-shop

frontend fd_virtualservice-shop from fulcrum_tcp
    mode tcp
    description "distributor of virtual service shop (virtualservice-shop)"
    bind 10.0.0.50:80
    bind 10.0.0.50:443
    bind 10.0.0.50:8000-8002
    bind [fd00::50]:80
    bind [fd00::50]:443
    bind [fd00::50]:8000-8002
    default_backend bd_virtualservice-shop

frontend fe_virtualservice-queue from fulcrum_tcp
    mode tcp
    description "virtual service queue (virtualservice-queue)"
    bind [fd00::8:1]:15000-15010 accept-proxy
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "t1 %Ts.%ms %f %b %s %ci %cp %Th %Tw %Tc %Tt %U %B %tsc %sslv"
    option dontlognull
    default_backend be_virtualservice-queue

backend be_virtualservice-shop from fulcrum_http
    mode http
    description "pool shop (pool-shop)"
    balance roundrobin
    http-reuse safe
    server 10.6.0.1_8080 10.6.0.1:8080 id 617387946 weight 1

backend bd_virtualservice-shop from fulcrum_tcp
    mode tcp
    description "scale-out peers of virtual service shop (virtualservice-shop)"
    balance roundrobin
    timeout check 1s
    server se_se-1 10.8.0.1:+20000 id 730577265 weight 1 send-proxy-v2 check check-send-proxy inter 1s fall 2 rise 1 port 20080
    server se_se-2 10.8.0.2:+20000 id 264547019 weight 1 send-proxy-v2 check check-send-proxy inter 1s fall 2 rise 1 port 20080 disabled

backend be_virtualservice-queue from fulcrum_tcp
    mode tcp
    description "pool queue (pool-queue)"
    balance roundrobin
    server 10.7.0.1_5672 10.7.0.1:5672 id 417618716 weight 1

backend be_virtualservice-spare from fulcrum_http
    mode http
    description "pool spare (pool-spare)"
    balance roundrobin
    http-reuse safe
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com
    http-check expect rstatus ^2
    timeout check 2s
    server 10.7.0.2_80 10.7.0.2:80 id 285546608 weight 1 check inter 5s fall 3 rise 2
"""  # noqa: E501


def header(version: int) -> str:
    return (
        f"# HAProxy configuration of Service Engine se-1, config version {version}.\n"
        "# Written by the Fulcrum SE agent; local edits are overwritten.\n\n"
    )


# HTTP policies (first match wins, across routes, redirects and rejects), a second pool, weight 0 and
# backup servers, a source filter, a connection limit, timeouts, inserted headers; hostile match
# values stay one word; a VS whose only pool is a policy's; an L4 VS with a source filter.
EXPECTED_L7 = """\
frontend fe_virtualservice-l7 from fulcrum_http
    mode http
    description "virtual service l7 (virtualservice-l7)"
    bind 10.0.0.60:80
    maxconn 1000
    timeout client 86400000ms
    acl fulcrum_allowed_src src 10.0.0.0/8 fd00::/8
    tcp-request connection reject unless fulcrum_allowed_src
    tcp-request inspect-delay 500ms
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 30000ms
    option forwardfor header X-Forwarded-For
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    http-request set-header X-Forwarded-Port %[dst_port]
    acl fulcrum_p1_m1 path -m beg -- /api/
    acl fulcrum_p1_m2 req.hdr(host),regsub(:[0-9]+$,) -m str -i -- WWW.example.com
    acl fulcrum_p2_m1 req.hdr(X-Old) -m reg -- "^a\\\\d+\\$"
    acl fulcrum_p3_m1 req.cook(sess) -m sub -- -i
    acl fulcrum_p3_m2 ssl_c_used
    acl fulcrum_p4_m1 path,field(-1,/),regsub(^[^.]*$,),field(-1,.) -m str -- php
    acl fulcrum_p4_m2 ssl_c_verify -m int -- 0
    acl fulcrum_p4_m3 ssl_c_s_dn(CN) -m end -- "a b\\"\\$HOME"
    acl fulcrum_p5_m1 path -m str -- "%[src]"
    http-request set-var(txn.fulcrum_policy) int(1) if !{ var(txn.fulcrum_policy) -m found } fulcrum_p1_m1 fulcrum_p1_m2
    http-request set-var(txn.fulcrum_policy) int(2) if !{ var(txn.fulcrum_policy) -m found } fulcrum_p2_m1
    http-request set-var(txn.fulcrum_policy) int(3) if !{ var(txn.fulcrum_policy) -m found } fulcrum_p3_m1 fulcrum_p3_m2
    http-request set-var(txn.fulcrum_policy) int(4) if !{ var(txn.fulcrum_policy) -m found } fulcrum_p4_m1 !fulcrum_p4_m2 fulcrum_p4_m3
    http-request set-var(txn.fulcrum_policy) int(5) if !{ var(txn.fulcrum_policy) -m found } fulcrum_p5_m1
    http-request redirect location "https://new.example.com/?a=%%20" code 301 if { var(txn.fulcrum_policy) -m int 2 }
    http-request redirect prefix https://secure.example.com code 308 if { var(txn.fulcrum_policy) -m int 3 }
    http-request deny deny_status 403 if { var(txn.fulcrum_policy) -m int 4 }
    use_backend bp_virtualservice-l7.pool-api-3f895a65 if { var(txn.fulcrum_policy) -m int 1 }
    use_backend be_virtualservice-l7 if { var(txn.fulcrum_policy) -m int 5 }
    default_backend be_virtualservice-l7

frontend fe_virtualservice-routes from fulcrum_http
    mode http
    description "virtual service routes (virtualservice-routes)"
    bind 10.0.0.61:80
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 30000ms
    acl fulcrum_p1_m1 req.hdr(X-Tenant) -m str -- blue
    http-request set-var(txn.fulcrum_policy) int(1) if !{ var(txn.fulcrum_policy) -m found } !fulcrum_p1_m1
    http-request deny deny_status 503 unless { var(txn.fulcrum_policy) -m found }
    use_backend bp_virtualservice-routes.pool-api-a91aa757 if { var(txn.fulcrum_policy) -m int 1 }

frontend fe_virtualservice-tcp-limited from fulcrum_tcp
    mode tcp
    description "virtual service db (virtualservice-tcp-limited)"
    bind 10.0.0.20:5000-5010
    maxconn 10
    timeout client 3600000ms
    acl fulcrum_allowed_src src 192.0.2.0/24
    tcp-request connection reject unless fulcrum_allowed_src
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "t1 %Ts.%ms %f %b %s %ci %cp %Th %Tw %Tc %Tt %U %B %tsc %sslv"
    default_backend be_virtualservice-tcp-limited

backend be_virtualservice-l7 from fulcrum_http
    mode http
    description "pool main (pool-main)"
    timeout connect 3000ms
    timeout server 120000ms
    balance roundrobin
    http-reuse safe
    server 10.1.0.1_80 10.1.0.1:80 id 558186503 weight 1
    server 10.1.0.2_80 10.1.0.2:80 id 314235881 weight 0
    server 10.1.0.3_80 10.1.0.3:80 id 142514830 weight 1 backup

backend bp_virtualservice-l7.pool-api-3f895a65 from fulcrum_http
    mode http
    description "pool api (pool-api)"
    timeout connect 3000ms
    timeout server 120000ms
    balance leastconn
    http-reuse safe
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com
    http-check expect rstatus ^2
    timeout check 2s
    server 10.2.0.1_8080 10.2.0.1:8080 id 757544916 weight 1 check inter 5s fall 3 rise 2

backend bp_virtualservice-routes.pool-api-a91aa757 from fulcrum_http
    mode http
    description "pool api (pool-api)"
    balance leastconn
    http-reuse safe
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com
    http-check expect rstatus ^2
    timeout check 2s
    server 10.2.0.1_8080 10.2.0.1:8080 id 757544916 weight 1 check inter 5s fall 3 rise 2

backend be_virtualservice-tcp-limited from fulcrum_tcp
    mode tcp
    description "pool db (pool-db)"
    timeout server 3600000ms
    balance source
    hash-type consistent
    stick-table type ip size 1m expire 600s
    stick on src
    timeout check 4s
    server 10.2.0.1_5432 10.2.0.1:5432 id 586064182 weight 1 check inter 10s fall 2 rise 2 port 9001 addr 10.9.0.1
    server 10.2.0.2_5432 10.2.0.2:5432 id 395297692 weight 1 check inter 10s fall 2 rise 2 port 9000
"""  # noqa: E501

# Scaled out: the distributor refuses other sources at accept (it sees the client address); the
# worker filters on the address of the PROXY header (session rules); the distributor's timeouts are
# the longer of the client and server ones.
EXPECTED_L7_SCALEOUT = """\
frontend fe_virtualservice-l7s from fulcrum_http
    mode http
    description "virtual service l7 (virtualservice-l7s)"
    bind 10.8.0.1:20080 accept-proxy
    maxconn 1000
    timeout client 30000ms
    acl fulcrum_allowed_src src 10.0.0.0/8 fd00::/8
    tcp-request session reject unless fulcrum_allowed_src
    tcp-request inspect-delay 500ms
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 30000ms
    option forwardfor header X-Forwarded-For
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    http-request set-header X-Forwarded-Port %[dst_port]
    acl fulcrum_p1_m1 path -m beg -- /api/
    acl fulcrum_p1_m2 req.hdr(host),regsub(:[0-9]+$,) -m str -i -- WWW.example.com
    http-request set-var(txn.fulcrum_policy) int(1) if !{ var(txn.fulcrum_policy) -m found } fulcrum_p1_m1 fulcrum_p1_m2
    use_backend bp_virtualservice-l7s.pool-api-0bc820b6 if { var(txn.fulcrum_policy) -m int 1 }
    default_backend be_virtualservice-l7s

frontend fd_virtualservice-l7s from fulcrum_tcp
    mode tcp
    description "distributor of virtual service l7 (virtualservice-l7s)"
    bind 10.0.0.60:80
    maxconn 1000
    timeout client 120000ms
    acl fulcrum_allowed_src src 10.0.0.0/8 fd00::/8
    tcp-request connection reject unless fulcrum_allowed_src
    default_backend bd_virtualservice-l7s

backend be_virtualservice-l7s from fulcrum_http
    mode http
    description "pool main (pool-main)"
    timeout connect 3000ms
    timeout server 120000ms
    balance roundrobin
    http-reuse safe
    server 10.1.0.1_80 10.1.0.1:80 id 558186503 weight 1
    server 10.1.0.2_80 10.1.0.2:80 id 314235881 weight 0
    server 10.1.0.3_80 10.1.0.3:80 id 142514830 weight 1 backup

backend bp_virtualservice-l7s.pool-api-0bc820b6 from fulcrum_http
    mode http
    description "pool api (pool-api)"
    timeout connect 3000ms
    timeout server 120000ms
    balance leastconn
    http-reuse safe
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com
    http-check expect rstatus ^2
    timeout check 2s
    server 10.2.0.1_8080 10.2.0.1:8080 id 757544916 weight 1 check inter 5s fall 3 rise 2

backend bd_virtualservice-l7s from fulcrum_tcp
    mode tcp
    description "scale-out peers of virtual service l7 (virtualservice-l7s)"
    timeout server 120000ms
    balance roundrobin
    timeout check 1s
    server se_se-1 10.8.0.1:+20000 id 730577265 weight 1 send-proxy-v2 check check-send-proxy inter 1s fall 2 rise 1 port 20080
"""  # noqa: E501


# Exact status codes: one code is `expect status`, several a regex of exactly them; a TLS-hello step
# is a connect with TLS (on the server line when it is the first or only check); app-cookie
# persistence learns the application's cookie from responses, and means nothing to an L4 VS.
EXPECTED_CHECKS = """\
frontend fe_virtualservice-session from fulcrum_http
    mode http
    description "virtual service session (virtualservice-session)"
    bind 10.0.0.70:80
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 30000ms
    default_backend be_virtualservice-session

frontend fe_virtualservice-chained from fulcrum_http
    mode http
    description "virtual service chained (virtualservice-chained)"
    bind 10.0.0.71:80
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "h1 %Ts.%ms %f %b %s %ci %cp %Th %Ti %TR %Tw %Tc %Tr %Ta %ST %U %B %tsc %sslv %HM %{+Q}HU"
    option dontlognull
    acl fulcrum_answered status lt 400
    acl fulcrum_fast date(0,ms),sub(txn.fulcrum_t0) lt 1000
    acl fulcrum_unsampled rand(1000000) ge 10000
    http-request set-var(txn.fulcrum_t0) date(0,ms)
    http-response set-log-level silent if fulcrum_answered fulcrum_fast fulcrum_unsampled
    timeout http-request 10000ms
    timeout http-keep-alive 30000ms
    option forwardfor header X-Forwarded-For
    default_backend be_virtualservice-chained

frontend fe_virtualservice-tls from fulcrum_tcp
    mode tcp
    description "virtual service tls (virtualservice-tls)"
    bind 10.0.0.72:443
    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0
    log-format "t1 %Ts.%ms %f %b %s %ci %cp %Th %Tw %Tc %Tt %U %B %tsc %sslv"
    default_backend be_virtualservice-tls

backend be_virtualservice-session from fulcrum_http
    mode http
    description "pool session (pool-session)"
    balance roundrobin
    http-reuse safe
    stick-table type string len 64 size 100k expire 900s
    stick store-response res.cook(JSESSIONID)
    stick match req.cook(JSESSIONID)
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com
    http-check expect status 200
    timeout check 2s
    server 10.9.0.1_8080 10.9.0.1:8080 id 586640933 weight 1 check inter 5s fall 3 rise 2

backend be_virtualservice-chained from fulcrum_http
    mode http
    description "pool chained (pool-chained)"
    balance roundrobin
    http-reuse safe
    option httpchk
    http-check connect default
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host www.example.com
    http-check expect rstatus ^(20[0-4]|30[12]|404|5[0-9][0-9])$
    http-check connect port 8443 ssl
    timeout check 2s
    server 10.9.0.2_80 10.9.0.2:80 id 645605982 weight 1 check inter 5s fall 3 rise 2 verify none

backend be_virtualservice-tls from fulcrum_tcp
    mode tcp
    description "pool tls (pool-tls)"
    balance roundrobin
    timeout check 2s
    server 10.9.0.3_443 10.9.0.3:443 id 679675581 weight 1 check inter 5s fall 3 rise 2 check-ssl verify none
"""


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("web", EXPECTED_WEB),
        ("tcp", EXPECTED_TCP),
        ("edge", EXPECTED_EDGE),
        ("scaleout", EXPECTED_SCALEOUT),
        ("l7", EXPECTED_L7),
        ("l7-scaleout", EXPECTED_L7_SCALEOUT),
        ("checks", EXPECTED_CHECKS),
    ],
)
def test_examples_render_to_the_expected_text(example: str, expected: str) -> None:
    config = EXAMPLES[example]
    assert render(build_view(config, PATHS)) == header(config.version) + PREAMBLE + "\n" + expected


def test_certificates_become_private_content_addressed_files_listed_in_order() -> None:
    files = build_view(EXAMPLES["web"], PATHS)["files"]

    pem_a, pem_b, crt_list = files
    assert [f["mode"] for f in files] == [0o600, 0o600, 0o600]
    assert pem_a["content"] == FAKE_CERT + FAKE_KEY  # certificate then key, what HAProxy expects
    assert pem_a["path"].startswith("/run/fulcrum/se-1/certs/cert-a-")
    assert crt_list["content"] == f"{pem_a['path']}\n{pem_b['path']}\n"  # the first is the default
    renewed = WEB.model_copy(
        update={"certificates": (WEB.certificates[0].model_copy(update={"key_pem": "k"}),)}
    )
    other = build_view(SeConfig(se_uuid="se-1", version=1, virtualservices=(renewed,)), PATHS)["files"]
    assert other[0]["path"] != pem_a["path"]  # a new key never overwrites a file in use


@pytest.mark.parametrize(("example", "backend_index"), [("tcp", 0), ("scaleout", 1), ("l7", 0), ("l7", 1)])
def test_add_server_arguments_are_the_config_line_arguments(example: str, backend_index: int) -> None:
    view = build_view(EXAMPLES[example], PATHS)
    backend = view["backends"][backend_index]
    server = backend["servers"][0]
    line = f"    server {server['name']} {server['address']} {server_arguments(backend, server)}\n"
    assert line in render(view)


def test_backup_servers_are_added_at_runtime_as_backups() -> None:
    view = build_view(EXAMPLES["l7"], PATHS)
    backend = view["backends"][0]
    backup = next(s for s in backend["servers"] if s["backup"])
    assert server_arguments(backend, backup).endswith(" backup")


def test_policy_pools_are_pool_backends_of_the_vs_and_standbys_keep_them_warm() -> None:
    view = build_view(EXAMPLES["l7"], PATHS)
    assert [(b["name"], b["kind"], b["vs_uuid"], b["pool_uuid"]) for b in view["backends"][:2]] == [
        ("be_virtualservice-l7", "pool", "virtualservice-l7", "pool-main"),
        ("bp_virtualservice-l7.pool-api-3f895a65", "pool", "virtualservice-l7", "pool-api"),
    ]
    standby = L7.model_copy(update={"role": VsRole.STANDBY})
    warm = build_view(SeConfig(se_uuid="se-1", version=1, virtualservices=(standby,)), PATHS)
    assert warm["frontends"] == []
    assert [b["pool_uuid"] for b in warm["backends"]] == ["pool-main", "pool-api"]


def test_pool_backend_names_are_safe_and_distinct_for_long_uuids() -> None:
    vs_uuid = "virtualservice-0b5d6c1e-3f7a-4e2b-9c8d-1a2b3c4d5e6f"
    a = pool_backend_name(vs_uuid, "pool-11111111-1111-4111-8111-111111111111")
    b = pool_backend_name(vs_uuid, "pool-22222222-2222-4222-8222-222222222222")
    assert a != b and len(a) <= 64 and len(b) <= 64
    assert a.startswith("bp_") and all(c.isalnum() or c in "_.-" for c in a)


def test_a_policy_set_that_matched_stops_the_evaluation() -> None:
    """The first policy that holds decides, even when a later one would reject or redirect."""
    text = render(build_view(EXAMPLES["l7"], PATHS))
    selects = [line for line in text.split("\n") if "set-var(txn.fulcrum_policy)" in line]
    assert len(selects) == 6
    assert all("if !{ var(txn.fulcrum_policy) -m found }" in line for line in selects)
    acting = [line.strip() for line in text.split("\n") if "var(txn.fulcrum_policy) -m int" in line]
    assert [line.rsplit(" ", 2)[-2] for line in acting] == ["2", "3", "4", "1", "5", "1"]


def test_many_allowed_networks_are_split_over_lines_haproxy_accepts() -> None:
    networks = tuple(f"10.{i}.0.0/16" for i in range(40))
    text = render(build_view(_with_vs(allowed_cidrs=networks), PATHS))
    lines = [line for line in text.split("\n") if line.startswith("    acl fulcrum_allowed_src ")]
    assert [len(haproxy_words(line)) - 3 for line in lines] == [16, 16, 8]
    assert [w for line in lines for w in haproxy_words(line)[3:]] == list(networks)
    assert text.count("tcp-request connection reject unless fulcrum_allowed_src") == 1


def test_views_mark_what_each_frontend_and_backend_is_for() -> None:
    view = build_view(EXAMPLES["scaleout"], PATHS)
    assert [(f["name"], f["kind"]) for f in view["frontends"]] == [
        ("fe_virtualservice-shop", "worker"),
        ("fd_virtualservice-shop", "distributor"),
        ("fe_virtualservice-queue", "worker"),
    ]
    assert [(b["name"], b["kind"], b["pool_uuid"]) for b in view["backends"]] == [
        ("be_virtualservice-shop", "pool", "pool-shop"),
        ("bd_virtualservice-shop", "distributor", None),
        ("be_virtualservice-queue", "pool", "pool-queue"),
        ("be_virtualservice-spare", "pool", "pool-spare"),
    ]
    assert {f["kind"] for f in build_view(EXAMPLES["web"], PATHS)["frontends"]} == {"direct"}


def test_a_standby_binds_nothing_even_when_the_vs_is_scaled_out() -> None:
    standby = SCALED_PRIMARY.model_copy(update={"role": VsRole.STANDBY})
    view = build_view(SeConfig(se_uuid="se-1", version=1, virtualservices=(standby,)), PATHS)
    assert view["frontends"] == []
    assert [b["name"] for b in view["backends"]] == ["be_virtualservice-shop"]


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_id", "expected"),
    [
        ("10.0.0.1:80", "10.0.0.1_80"),
        ("[fd00::1]:8080", "fd00__1_8080"),
        ("[::ffff:10.0.0.1]:80", "__ffff_10.0.0.1_80"),
        ("10.0.0.1:80\nbackend evil", "10.0.0.1_80_backend_evil-94324f5b"),
        ("web one", "web_one-63402fbd"),
        ("web1", "web1-659a7fb2"),
    ],
)
def test_server_names_are_safe_and_readable(server_id: str, expected: str) -> None:
    assert server_name(server_id) == expected


def test_safe_names_only_use_haproxy_identifier_characters_and_stay_distinct() -> None:
    hostile = ["vs 1", "vs\n1", "vs#1", "vs_1", "x" * 200, "x" * 201]
    names = [safe_name(raw, "be_") for raw in hostile]
    assert all(
        set(n) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") for n in names
    )
    assert all(len(n) <= 64 for n in names)
    assert len(set(names)) == len(names)


def test_numeric_server_ids_do_not_depend_on_order_and_never_collide() -> None:
    ids = [f"10.0.{i // 250}.{i % 250}:80" for i in range(2000)]
    forward, backward = server_numeric_ids(ids), server_numeric_ids(list(reversed(ids)))
    assert forward == backward
    assert len(set(forward.values())) == len(ids)
    assert all(value >= 1 for value in forward.values())


# --- quoting --------------------------------------------------------------------------------------


def haproxy_words(line: str) -> list[str]:
    """How HAProxy 2.6 splits a config line into words (a model of `parse_line` in src/tools.c)."""
    words: list[str] = []
    current: list[str] = []
    in_word = squote = dquote = False
    i = 0
    while i < len(line):
        char = line[i]
        if char in "\r\n" or (char == "#" and not squote and not dquote):
            break
        if char == '"' and not squote:
            dquote, in_word, i = not dquote, True, i + 1
        elif char == "'" and not dquote:
            squote, in_word, i = not squote, True, i + 1
        elif char == "\\" and not squote:
            following = line[i + 1 : i + 2]
            if following in (" ", "\\", "#", "'", '"') or (following == "$" and dquote):
                current.append(following)
                i += 2
            elif following and following in "tnr":
                current.append({"t": "\t", "n": "\n", "r": "\r"}[following])
                i += 2
            elif following == "x":
                current.append(chr(int(line[i + 2 : i + 4], 16)))
                i += 4
            else:
                current.append("\\")
                i += 1
            in_word = True
        elif char in " \t\v\f" and not squote and not dquote:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
        elif char == "$" and dquote:
            raise AssertionError(f"HAProxy would expand an environment variable in {line!r}")
        else:
            current.append(char)
            in_word, i = True, i + 1
    assert not squote and not dquote, f"unmatched quote in {line!r}"
    if in_word:
        words.append("".join(current))
    return words


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("X-Forwarded-For", "X-Forwarded-For"),
        ("/health?x=1", '"/health?x=1"'),
        ("", '""'),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("$HOME", '"\\$HOME"'),
        ("a#b", '"a#b"'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak", '"line\\x0abreak"'),
        ("it's", '"it\'s"'),
    ],
)
def test_quote_renders_one_word(value: str, rendered: str) -> None:
    assert quote(value) == rendered
    assert haproxy_words(f"keyword {rendered}") == ["keyword", value]


@given(st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",))))
def test_any_string_survives_haproxy_line_parsing_as_one_word(value: str) -> None:
    assert haproxy_words(f"http-check send hdr Host {quote(value)} # trailing") == [
        "http-check",
        "send",
        "hdr",
        "Host",
        value,
    ]


def test_logformat_arguments_escape_the_percent_sign() -> None:
    assert quote_logformat("100% %[src]") == '"100%% %%[src]"'


# --- hostile and unsafe values --------------------------------------------------------------------

HOSTILE = "x\"\n    bind 0.0.0.0:22\n#' $HOME \\"


HOSTILE_VALUES = [
    'a b"\\',
    "%[src] %{+Q}o $HOME ${HOME} #x",
    "-i",
    "--",
    "' { } ( ) , ;",
    "x" * 255,
]


def _policy_vs(value: str, kind: MatchType, compare: MatchCompare, key: str | None = None) -> SeConfig:
    policy = HttpPolicySpec(
        uuid="httppolicyset-h",
        name=HOSTILE,
        action=PolicyAction.REJECT,
        matches=(match(kind, compare, value, key=key),),
    )
    return _with_vs(http_policies=(policy,))


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize(
    ("kind", "compare", "key"),
    [
        (MatchType.PATH, MatchCompare.EQUAL_TO, None),
        (MatchType.HOST_NAME, MatchCompare.CONTAINS, None),
        (MatchType.HEADER, MatchCompare.STARTS_WITH, "X-A#$%&*+.^_`|~"),
        (MatchType.COOKIE, MatchCompare.ENDS_WITH, "c!"),
        (MatchType.SSL_DN_FIELD, MatchCompare.EQUAL_TO, "CN"),
    ],
)
def test_hostile_match_values_stay_one_acl_pattern(
    value: str, kind: MatchType, compare: MatchCompare, key: str | None
) -> None:
    text = render(build_view(_policy_vs(value, kind, compare, key), PATHS))
    (line,) = [line for line in text.split("\n") if line.startswith("    acl fulcrum_p1_m1 ")]
    words = haproxy_words(line)
    assert words[-2:] == ["--", value]  # `--`: even `-i` is a value, not a flag
    if key is not None:
        assert words[2].endswith(f"({key})")


@pytest.mark.parametrize(
    "location",
    ["https://a.example/%[src]?q=$HOME#x", "https://a.example/a'b(c)", "https://a.example/%25%{+Q}o"],
)
def test_redirect_locations_are_literal_text_not_log_format(location: str) -> None:
    policy = HttpPolicySpec(
        uuid="httppolicyset-r",
        name="r",
        action=PolicyAction.REDIRECT_URL,
        location=location,
        redirect_code=307,
        matches=(match(MatchType.PATH, MatchCompare.EQUAL_TO, "/"),),
    )
    text = render(build_view(_with_vs(http_policies=(policy,)), PATHS))
    (line,) = [line for line in text.split("\n") if "redirect location" in line]
    words = haproxy_words(line)
    assert words[:3] == ["http-request", "redirect", "location"]
    assert words[3] == location.replace("%", "%%")  # HAProxy reads `%%` as one literal `%`
    assert words[4:6] == ["code", "307"]


def test_hostile_free_strings_never_add_a_config_line() -> None:
    benign = render(build_view(EXAMPLES["web"], PATHS))
    monitor = HTTP_MONITOR.model_copy(update={"http_host": HOSTILE.replace("\n", " ")})
    assert WEB.pool is not None
    pool = WEB.pool.model_copy(update={"name": HOSTILE, "uuid": HOSTILE, "monitors": (monitor,)})
    vs = WEB.model_copy(update={"name": HOSTILE, "uuid": HOSTILE, "pool": pool})
    hostile = render(build_view(SeConfig(se_uuid=HOSTILE, version=7, virtualservices=(vs,)), PATHS))

    assert len(hostile.split("\n")) == len(benign.split("\n"))
    assert "bind 0.0.0.0:22" not in benign
    for line in hostile.split("\n"):
        assert not line.lstrip().startswith("bind 0.0.0.0:22")
        if line.startswith("    description"):
            assert len(haproxy_words(line)) == 2
        if line.startswith("    http-check send"):
            assert haproxy_words(line)[-1] == HOSTILE.replace("\n", " ").replace("%", "%%")


def _with_pool(**changes: object) -> SeConfig:
    assert WEB.pool is not None
    return SeConfig(
        se_uuid="se-1",
        version=1,
        virtualservices=(WEB.model_copy(update={"pool": WEB.pool.model_copy(update=changes)}),),
    )


def _with_vs(**changes: object) -> SeConfig:
    return SeConfig(se_uuid="se-1", version=1, virtualservices=(WEB.model_copy(update=changes),))


def _scaleout(
    offset: int = 20000, worker_address: str = "10.8.0.1", peers: tuple[tuple[str, str], ...] = ()
) -> ScaleOutSpec:
    return ScaleOutSpec(
        worker_address=worker_address,
        worker_port_offset=offset,
        peers=tuple(ScaleOutPeer(se_uuid=uuid, address=address) for uuid, address in peers),
    )


def _redirect(
    location: str, action: PolicyAction = PolicyAction.REDIRECT_URL, code: int = 302
) -> HttpPolicySpec:
    return HttpPolicySpec(
        uuid="httppolicyset-r",
        name="r",
        action=action,
        location=location,
        redirect_code=code,
        matches=(match(MatchType.PATH, MatchCompare.EQUAL_TO, "/"),),
    )


def _with_monitor(**changes: object) -> SeConfig:
    return _with_pool(monitors=(HTTP_MONITOR.model_copy(update=changes),))


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        (_with_vs(http=HttpSettings(xff_header="X-Forwarded-For: 1.2.3.4\r\nX-Evil")), "xff_header"),
        (_with_vs(http=HttpSettings(xff_header="")), "xff_header"),
        (
            _with_pool(persistence=PersistenceSpec(kind=PersistenceKind.HTTP_COOKIE, cookie_name="a b")),
            "cookie_name",
        ),
        (_with_pool(algorithm=Algorithm.HASH_HEADER, hash_header="X-A)(B"), "hash_header"),
        (_with_pool(algorithm=Algorithm.HASH_HEADER), "needs hash_header"),
        (_with_monitor(http_host="a\r\nX-Injected: 1"), "http_host"),
        (_with_monitor(http_request="GET / HTTP/1.1\r\nX-Injected: 1"), "http_request"),
        (_with_monitor(http_request="GET /a b HTTP/1.1"), "http_request"),
        (_with_monitor(http_request="GET / HTTP/2"), "version"),
        (_with_monitor(http_request="G(T /"), "method"),
        (_with_monitor(http_status_classes=(2, 7)), "status classes"),
        (_with_monitor(http_status_codes=(200, 600)), "status codes"),
        (_with_pool(monitors=(TLS_HELLO, HTTP_MONITOR)), "must come after the HTTP monitors"),
        (
            _with_pool(
                monitors=(HTTP_MONITOR, TLS_HELLO.model_copy(update={"type": MonitorType.TCP}), HTTP_MONITOR)
            ),
            "must come after the HTTP monitors",
        ),
        (_with_monitor(http_status_codes=(99,)), "status codes"),
        (
            _with_pool(persistence=PersistenceSpec(kind=PersistenceKind.APP_COOKIE, cookie_name="a b")),
            "cookie_name",
        ),
        (
            _with_pool(persistence=PersistenceSpec(kind=PersistenceKind.APP_COOKIE, cookie_name="a'b")),
            "cookie_name",
        ),
        (_with_vs(vips=("10.0.0.1:80 ssl crt /etc/shadow",)), "not an IP address"),
        (_with_vs(certificates=()), "needs at least one certificate"),
        (_with_vs(listeners=(ListenerSpec(port=70000),)), "out of range"),
        (_with_pool(servers=(srv("10.0.0.1", 80), srv("10.0.0.1", 80))), "not unique"),
        (
            _with_pool(servers=(ServerSpec(id="s", ip="backend.example", port=80, weight=1),)),
            "not an IP address",
        ),
        (_with_vs(role=VsRole.SECONDARY), "a SECONDARY needs a scaleout spec"),
        (
            _with_vs(listeners=(ListenerSpec(port=60000),), scaleout=_scaleout(offset=6000)),
            "ports 60000-60000 + worker_port_offset 6000 leave 1..65535",
        ),
        (
            _with_vs(listeners=(ListenerSpec(port=80),), scaleout=_scaleout(offset=-100)),
            "ports 80-80 + worker_port_offset -100 leave 1..65535",
        ),
        (
            _with_vs(
                listeners=(ListenerSpec(port=50000, port_range_end=60000),),
                role=VsRole.SECONDARY,
                scaleout=_scaleout(offset=6000),
            ),
            "ports 50000-60000 + worker_port_offset 6000 leave 1..65535",
        ),
        (_with_vs(scaleout=_scaleout(worker_address="10.8.0.1 ssl crt /etc/shadow")), "worker_address"),
        (_with_vs(scaleout=_scaleout(peers=(("se-1", "10.8.0.1"), ("se-1", "10.8.0.2")))), "not unique"),
        (_with_vs(scaleout=_scaleout(peers=(("se-1", "10.8.0.1:80 backup"),))), "peer 'se-1' address"),
        (
            _with_pool(servers=(ServerSpec.model_construct(id="s", ip="10.0.0.1", port=80, weight=257),)),
            "weight 257 is out of 0..256",
        ),
        (_with_vs(allowed_cidrs=("10.0.0.0/8 10.0.0.1",)), "allowed_cidrs"),
        (_with_vs(allowed_cidrs=("any",)), "allowed_cidrs"),
        (_with_vs(connection_limit=0), "connection_limit"),
        (_with_vs(timeout_client_ms=86_400_001), "timeout_client_ms"),
        (_with_vs(timeout_server_ms=-1), "timeout_server_ms"),
        (_with_vs(tcp_inspect_delay_ms=-5), "tcp_inspect_delay_ms"),
        (
            SeConfig(
                se_uuid="se-1",
                version=1,
                virtualservices=(TCP.model_copy(update={"name": "web", "http_policies": L7.http_policies}),),
            ),
            "HTTP policies need an HTTP virtual service",
        ),
        (_with_vs(http_policies=L7.http_policies[:1]), "pool 'pool-api' is not one of the VS's pools"),
        (_with_vs(extra_pools=(WEB.pool,)), "is listed twice"),
        (_policy_vs("a\nb", MatchType.PATH, MatchCompare.EQUAL_TO), "control characters"),
        (_policy_vs("a\rb", MatchType.PATH, MatchCompare.EQUAL_TO), "control characters"),
        (_policy_vs("x", MatchType.HEADER, MatchCompare.EQUAL_TO, "X A"), "not a valid HTTP token"),
        (_policy_vs("x", MatchType.HEADER, MatchCompare.EQUAL_TO, "a'b"), "not a valid HTTP token"),
        (_policy_vs("x", MatchType.HEADER, MatchCompare.EQUAL_TO, "a)b"), "not a valid HTTP token"),
        (_policy_vs("x", MatchType.HEADER, MatchCompare.EQUAL_TO, None), "not a valid HTTP token"),
        (_policy_vs("x", MatchType.SSL_DN_FIELD, MatchCompare.EQUAL_TO, "CN)"), "distinguished name"),
        (_policy_vs("a\\Z", MatchType.PATH, MatchCompare.REGEX), "escape \\Z is not supported"),
        (_policy_vs("a{,2}", MatchType.PATH, MatchCompare.REGEX), "quantifier"),
        (_policy_vs("(", MatchType.PATH, MatchCompare.REGEX), "not a valid regular expression"),
        (_policy_vs("a/b", MatchType.FILE_TYPE, MatchCompare.EQUAL_TO), "not a file extension"),
        (_policy_vs("x", MatchType.FILE_TYPE, MatchCompare.CONTAINS), "only compare with EQUAL_TO or REGEX"),
        (_policy_vs("yes", MatchType.SSL_CONN_HAS_CERT, MatchCompare.EQUAL_TO), "True or False"),
        (_policy_vs("1", MatchType.SSL_CONN_HAS_CERT, MatchCompare.REGEX), "only compare with EQUAL_TO"),
        (_policy_vs("-1", MatchType.SSL_VERIFY_RESULT, MatchCompare.EQUAL_TO), "verify result"),
        (_with_vs(http_policies=(_redirect("/relative"),)), "not an http(s) URL"),
        (_with_vs(http_policies=(_redirect("https://a.example/a b"),)), "not an http(s) URL"),
        (_with_vs(http_policies=(_redirect("https://a.example/\r\nX: 1"),)), "not an http(s) URL"),
        (_with_vs(http_policies=(_redirect("https://", PolicyAction.REDIRECT_PREFIX),)), "with a host"),
        (_with_vs(http_policies=(_redirect("https:///x", PolicyAction.REDIRECT_PREFIX),)), "with a host"),
        (_with_vs(http_policies=(_redirect("https://a.example", code=200),)), "redirect code 200"),
    ],
)
def test_unsafe_values_are_refused_with_a_message_naming_them(config: SeConfig, complaint: str) -> None:
    with pytest.raises(RenderError, match="virtual service 'web'") as error:
        build_view(config, PATHS)
    assert complaint in str(error.value)


def _expect_of(codes: tuple[int, ...]) -> str:
    step = build_view(_with_monitor(http_status_codes=codes), PATHS)["backends"][0]["check"]["steps"][0]
    return str(step["expect"])


@given(st.sets(st.integers(min_value=100, max_value=599), min_size=1))
def test_expected_status_codes_match_exactly_those_codes(codes: set[int]) -> None:
    kind, pattern = _expect_of(tuple(codes)).split(" ")
    if len(codes) == 1:
        assert (kind, pattern) == ("status", str(codes.pop()))
        return
    assert kind == "rstatus"
    assert quote(pattern) == pattern.replace("$", "\\$").join('""')  # digits and regex syntax only
    assert len(pattern) <= 2 + 50 * 26  # at most one term per ten, whatever the number of codes
    assert {code for code in range(100, 600) if re.search(pattern, str(code))} == codes


def test_run_directories_that_would_need_quoting_are_refused() -> None:
    for bad in ("relative/dir", "/tmp/with space", "/tmp/a#b", "/tmp/" + "x" * 100):
        with pytest.raises(ValueError, match="run directory"):
            RuntimePaths(Path(bad))


# --- haproxy -c -----------------------------------------------------------------------------------


def _real_certificate(common_name: str) -> CertificateSpec:
    certificate_pem, key_pem = self_signed(common_name)
    return CertificateSpec(
        uuid=f"cert-{common_name}", name=common_name, certificate_pem=certificate_pem, key_pem=key_pem
    )


def test_every_example_passes_haproxy_check(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.fail(HAPROXY_MISSING)
    paths = RuntimePaths(tmp_path)
    paths.cert_dir.mkdir()
    real = (_real_certificate("a.test"), _real_certificate("b.test"))
    for name, config in EXAMPLES.items():
        vss = tuple(
            vs.model_copy(update={"certificates": real}) if vs.certificates else vs
            for vs in config.virtualservices
        )
        view = build_view(config.model_copy(update={"virtualservices": vss}), paths)
        for entry in view["files"]:
            Path(entry["path"]).write_text(entry["content"])
        paths.state_file.write_text("1\n")
        cfg = tmp_path / f"{name}.cfg"
        cfg.write_text(render(view))

        valid, message = HAProxyProcess(tmp_path).check(cfg)

        assert valid, message
        assert "[WARNING]" not in message, message


def test_hostile_match_values_and_keys_pass_haproxy_check(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.fail(HAPROXY_MISSING)
    kinds = [
        (MatchType.PATH, MatchCompare.EQUAL_TO, None),
        (MatchType.HOST_NAME, MatchCompare.CONTAINS, None),
        (MatchType.HEADER, MatchCompare.STARTS_WITH, "X-A#$%&*+.^_`|~"),
        (MatchType.COOKIE, MatchCompare.ENDS_WITH, "c!"),
        (MatchType.SSL_DN_FIELD, MatchCompare.EQUAL_TO, "CN"),
    ]
    policies = tuple(
        HttpPolicySpec(
            uuid=f"httppolicyset-{i}",
            name=HOSTILE,
            action=PolicyAction.REJECT,
            matches=(
                match(kind, compare, value, key=key),
                match(MatchType.PATH, MatchCompare.REGEX, r"^/\d+"),
            ),
        )
        for i, (value, (kind, compare, key)) in enumerate(
            (value, kind) for value in HOSTILE_VALUES for kind in kinds
        )
    )
    vs = L7.model_copy(update={"http_policies": (*policies, _redirect("https://a.example/%[src]$HOME'"))})
    paths = RuntimePaths(tmp_path)
    paths.state_file.write_text("1\n")
    cfg = tmp_path / "hostile.cfg"
    cfg.write_text(render(build_view(SeConfig(se_uuid="se-1", version=1, virtualservices=(vs,)), paths)))

    valid, message = HAProxyProcess(tmp_path).check(cfg)

    assert valid, message
    assert "[WARNING]" not in message, message


def test_hostile_app_cookie_names_pass_haproxy_check(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        pytest.fail(HAPROXY_MISSING)
    assert WEB.pool is not None
    vss = tuple(
        WEB.model_copy(
            update={
                "uuid": f"virtualservice-{i}",
                "listeners": (ListenerSpec(port=8000 + i),),
                "certificates": (),
                "pool": WEB.pool.model_copy(
                    update={"persistence": PersistenceSpec(kind=PersistenceKind.APP_COOKIE, cookie_name=name)}
                ),
            }
        )
        for i, name in enumerate(("a#b", "$HOME", "x!%&*+.^_`|~-", "$X$", "#"))
    )
    paths = RuntimePaths(tmp_path)
    paths.state_file.write_text("1\n")
    cfg = tmp_path / "cookies.cfg"
    cfg.write_text(render(build_view(SeConfig(se_uuid="se-1", version=1, virtualservices=vss), paths)))

    valid, message = HAProxyProcess(tmp_path).check(cfg)

    assert valid, message
    assert "[WARNING]" not in message, message


# --- analytics ------------------------------------------------------------------------------------


def test_request_logs_go_to_the_agents_socket_only_while_analytics_are_on() -> None:
    config = EXAMPLES["scaleout"]
    logging = render(build_view(config, PATHS))
    silent = render(
        build_view(config.model_copy(update={"analytics": AnalyticsSettings(enabled=False)}), PATHS)
    )

    log_lines = [line for line in logging.split("\n") if line.startswith("    log ")]
    # Two frontends log (the worker of each scaled-out VS), the distributor does not.
    assert log_lines == ["    log unix@/run/fulcrum/se-1/log.sock len 4096 format raw local0"] * 2
    assert not [
        line for line in silent.split("\n") if line.lstrip().startswith(("log", "option dontlognull"))
    ]
    for line in logging.split("\n"):
        if line.startswith("    log-format"):
            assert len(haproxy_words(line)) == 2  # the format stays one word

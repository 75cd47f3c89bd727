#!/usr/bin/env bash
# Starts (and stops) the real services the test suite talks to, on loopback only:
#   PostgreSQL  - a throw-away cluster in a temp dir, trust auth on 127.0.0.1, a free port.
#   Keystone    - OpenStack identity in its own virtualenv (.keystone-venv), SQLite and fernet keys in
#     .test-services/keystone, on 127.0.0.1 (scripts/keystone-service.sh; kept across runs, so only
#     the first start installs it).
#   net.ipv4.tcp_migrate_req=1 (as root, Linux >= 5.14): when an SE hands a VIP over to another SE,
#     connections queued on its closing listener move to the other SE's listener instead of being
#     reset. The previous value is recorded and restored by `stop`.
# `start` writes .test-services/env (export lines) for the test run; `stop` ends exactly the
# servers that `start` recorded (by their data directories and PID files), nothing else.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
state="$here/.test-services"
mkdir -p "$state"

log() { printf '[test-services] %s\n' "$*" >&2; }

as_service_user() {
  # PostgreSQL refuses to run as root; as root we use the `postgres` account the package creates.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_postgres() {
  if ! ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      log "PostgreSQL server binaries are missing: install the Debian package 'postgresql' (as root)."
      exit 1
    fi
    log "installing PostgreSQL (apt-get install postgresql)"
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
}

ensure_haproxy() {
  # The data plane's forwarding engine; the e2e suites and benchmarks run it for real.
  if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then return; fi
  if [ "$(id -u)" != 0 ]; then
    log "HAProxy is missing: install the Debian package 'haproxy' (as root)."
    exit 1
  fi
  log "installing HAProxy and wrk (apt-get install haproxy wrk)"
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy wrk >/dev/null
}

ensure_snmptrapd() {
  # The SNMP trap receiver the alert-action e2e tests run (each test starts and stops its own instance).
  if command -v snmptrapd >/dev/null 2>&1 || [ -x /usr/sbin/snmptrapd ]; then return; fi
  if [ "$(id -u)" != 0 ]; then
    log "snmptrapd is missing: install the Debian package 'snmptrapd' (as root)."
    exit 1
  fi
  log "installing snmptrapd (apt-get install snmptrapd)"
  apt-get update -qq >/dev/null || true
  # --no-install-recommends keeps out snmp-mibs-downloader and friends; the tests print numeric OIDs.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends snmptrapd >/dev/null
  # Each test runs its own snmptrapd on a free loopback port; a system-wide one, if any, is not used.
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_postgres() {
  ensure_postgres
  if [ -f "$state/pg.dir" ] && [ -f "$(cat "$state/pg.dir")/data/postmaster.pid" ]; then
    log "PostgreSQL already running from $(cat "$state/pg.dir")"
    return
  fi
  # A temp dir outside the checkout, because the postgres account may not traverse the checkout's parents.
  dir=$(mktemp -d /tmp/fulcrum-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  port=$(free_port)
  echo "$dir" > "$state/pg.dir"
  as_service_user "$pgbin/initdb" -D "$dir/data" -A trust -U fulcrum --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_service_user "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=200" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "export FULCRUM_TEST_PG_URL=postgresql://fulcrum@127.0.0.1:$port/postgres" >> "$state/env"
  log "PostgreSQL $(basename "$(dirname "$pgbin")") on 127.0.0.1:$port (data $dir/data)"
}

stop_postgres() {
  [ -f "$state/pg.dir" ] || return 0
  dir=$(cat "$state/pg.dir")
  if [ -f "$dir/data/postmaster.pid" ]; then
    ensure_postgres
    as_service_user "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
  case "$dir" in /tmp/fulcrum-pg.*) rm -rf "$dir" ;; esac
  rm -f "$state/pg.dir"
}

migrate_req=/proc/sys/net/ipv4/tcp_migrate_req

enable_migrate_req() {
  if [ "$(id -u)" != 0 ] || [ ! -w "$migrate_req" ]; then
    log "net.ipv4.tcp_migrate_req cannot be set here (needs root and Linux >= 5.14); VIP handover tests may see resets"
    return 0
  fi
  [ -f "$state/migrate_req.before" ] || cat "$migrate_req" > "$state/migrate_req.before"
  echo 1 > "$migrate_req"
  log "net.ipv4.tcp_migrate_req=1 (was $(cat "$state/migrate_req.before"))"
}

restore_migrate_req() {
  [ -f "$state/migrate_req.before" ] || return 0
  cat "$state/migrate_req.before" > "$migrate_req" || true
  rm -f "$state/migrate_req.before"
}

case "${1:-}" in
  start)
    : > "$state/env"
    ensure_haproxy
    ensure_snmptrapd
    enable_migrate_req
    start_postgres
    "$here/scripts/keystone-service.sh" start
    cat "$state/keystone/env" >> "$state/env"
    ;;
  stop)
    stop_postgres
    "$here/scripts/keystone-service.sh" stop
    restore_migrate_req
    rm -f "$state/env"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

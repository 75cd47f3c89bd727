#!/usr/bin/env bash
# A real OpenStack Keystone on loopback for the tests that authenticate Keystone tokens.
#   start   install Keystone into its own virtualenv (its dependencies conflict with ours), set up an
#           SQLite database, fernet keys and the bootstrap admin once, then serve the WSGI app with
#           waitress on 127.0.0.1 in the background. Idempotent: a second start only starts the server.
#   stop    ends exactly the server that `start` recorded (PID file, checked against its command line).
#   status  prints the URL when the recorded server is running; exits 1 otherwise.
# `start` writes $state/env (export lines) for the test run:
#   FULCRUM_TEST_KEYSTONE_URL                  http://127.0.0.1:<port>/v3
#   FULCRUM_TEST_KEYSTONE_ADMIN_PASSWORD_FILE  the bootstrap admin's password (user admin, project admin)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv="${FULCRUM_KEYSTONE_VENV:-$here/.keystone-venv}"
state="${FULCRUM_KEYSTONE_STATE:-$here/.test-services/keystone}"
# Pinned so every machine serves the same Keystone; changing the line reinstalls the virtualenv.
packages="keystone==30.0.0 waitress==3.0.2"
preferred_port=35357

log() { printf '[keystone] %s\n' "$*" >&2; }

python_for_venv() {
  local python=${PYTHON:-python3}
  if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      log "$python cannot create virtualenvs: install the Debian package 'python3-venv' (as root)."
      exit 1
    fi
    log "installing python3-venv (apt-get install python3-venv)"
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  echo "$python"
}

ensure_venv() {
  if [ -x "$venv/bin/keystone-manage" ] && [ "$(cat "$venv/.installed" 2>/dev/null)" = "$packages" ]; then
    return
  fi
  log "installing $packages into $venv (once; about a minute)"
  rm -f "$venv/.installed"
  [ -x "$venv/bin/python" ] || "$(python_for_venv)" -m venv "$venv"
  # shellcheck disable=SC2086 # $packages is a list of requirement specifiers
  "$venv/bin/pip" install --quiet --disable-pip-version-check $packages >"$venv/pip.log" 2>&1 \
    || { log "pip install failed:"; grep -v 'is ignored: it is neither' "$venv/pip.log" >&2; exit 1; }
  echo "$packages" > "$venv/.installed"
}

port_free() {
  "$venv/bin/python" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress binds: TIME_WAIT is no obstacle
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

free_port() {
  "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

write_config() {
  mkdir -p "$state/fernet-keys" "$state/credential-keys"
  chmod 700 "$state" "$state/fernet-keys" "$state/credential-keys"
  cat > "$state/keystone.conf" <<EOF
# Written by scripts/keystone-service.sh; rewritten on every start.
[DEFAULT]
log_file = $state/keystone.log
debug = false

[database]
connection = sqlite:///$state/keystone.db

[identity]
# Test users only: the cheapest bcrypt cost keeps creating users and issuing tokens fast.
password_hash_rounds = 4

[token]
provider = fernet
expiration = 3600

[fernet_tokens]
key_repository = $state/fernet-keys/

[fernet_receipts]
key_repository = $state/fernet-keys/

[credential]
key_repository = $state/credential-keys/

[cache]
enabled = false
EOF
}

manage() {
  "$venv/bin/keystone-manage" --config-file "$state/keystone.conf" "$@" >>"$state/manage.log" 2>&1 \
    || { log "keystone-manage $1 failed:"; tail -n 30 "$state/manage.log" >&2; exit 1; }
}

setup_once() {
  # Database, keys and admin are created once; bootstrap runs again only when the port changed,
  # because it records the endpoint URLs in the catalog.
  local port=$1 url="http://127.0.0.1:$1/v3"
  if [ ! -f "$state/.setup-done" ]; then
    log "creating the database, fernet keys and the admin user in $state"
    rm -f "$state/keystone.db" "$state/.bootstrapped"
    [ -s "$state/admin-password" ] || (umask 077 && "$venv/bin/python" -c \
      'import secrets; print(secrets.token_urlsafe(18))' > "$state/admin-password")
    manage db_sync
    manage fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    manage credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
    touch "$state/.setup-done"
  fi
  if [ "$(cat "$state/.bootstrapped" 2>/dev/null)" != "$url" ]; then
    # The password goes through the environment, never the command line (visible in ps).
    OS_BOOTSTRAP_PASSWORD=$(cat "$state/admin-password") manage bootstrap \
      --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
      --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
      --bootstrap-admin-url "$url" --bootstrap-public-url "$url" --bootstrap-internal-url "$url"
    echo "$url" > "$state/.bootstrapped"
  fi
}

# The server's command line carries $state, so `stop` can tell the recorded PID is still ours.
running_pid() {
  local pid
  pid=$(cat "$state/keystone.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "--state $state" || return 1
  echo "$pid"
}

write_env() {
  cat > "$state/env" <<EOF
export FULCRUM_TEST_KEYSTONE_URL=http://127.0.0.1:$(cat "$state/port")/v3
export FULCRUM_TEST_KEYSTONE_ADMIN_PASSWORD_FILE=$state/admin-password
EOF
}

serve_py='
import argparse, logging, os, sys
from waitress import serve
parser = argparse.ArgumentParser()
parser.add_argument("--state", required=True)
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()
sys.argv[1:] = []  # keystone parses the command line with oslo.config: keep ours away from it
os.environ["OS_KEYSTONE_CONFIG_FILES"] = os.path.join(args.state, "keystone.conf")
logging.basicConfig(level=logging.WARNING)
from keystone.server import wsgi
serve(wsgi.initialize_public_application(), host="127.0.0.1", port=args.port, threads=16,
      ident="keystone", channel_timeout=60)
'

start() {
  mkdir -p "$state"
  if pid=$(running_pid); then
    log "already running (pid $pid) on http://127.0.0.1:$(cat "$state/port")/v3"
    write_env
    return
  fi
  ensure_venv
  local port
  port=$(cat "$state/port" 2>/dev/null || echo "$preferred_port")
  # A restart keeps its port when it can: bootstrap recorded that URL in the catalog.
  port_free "$port" || port=$(free_port)
  echo "$port" > "$state/port"
  write_config
  setup_once "$port"
  nohup "$venv/bin/python" -c "$serve_py" --state "$state" --port "$port" \
    >>"$state/server.log" 2>&1 </dev/null &
  echo $! > "$state/keystone.pid"
  local url="http://127.0.0.1:$port/v3" deadline=$((SECONDS + 60))
  until "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$url" >/dev/null 2>&1; do
    if ! running_pid >/dev/null || [ $SECONDS -ge $deadline ]; then
      log "Keystone did not come up on $url; last lines of $state/server.log:"
      tail -n 30 "$state/server.log" >&2
      stop
      exit 1
    fi
    sleep 0.2
  done
  write_env
  log "Keystone on $url (pid $(cat "$state/keystone.pid"), admin password in $state/admin-password)"
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -9 "$pid"
    log "stopped (pid $pid)"
  fi
  rm -f "$state/keystone.pid" "$state/env"
}

status() {
  if pid=$(running_pid); then
    echo "http://127.0.0.1:$(cat "$state/port")/v3"
  else
    echo "keystone is not running" >&2
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Runs a throwaway Synapse for benchmarking plugboard-bench against a reference homeserver:
# installs matrix-synapse from PyPI into a venv under target/bench-synapse, writes a config for
# server_name "localhost" (SQLite, plain HTTP on 127.0.0.1:8448, open registration, rate limits
# raised out of the way) and runs Synapse in the foreground. Ctrl-C stops it.
#
# Environment:
#   BENCH_SYNAPSE_DIR   where the venv, config and database live (default: <workspace>/target/bench-synapse)
#   BENCH_SYNAPSE_PORT  listening port (default: 8448)
#   BENCH_SYNAPSE_FRESH set to 1 to delete the old database first
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${BENCH_SYNAPSE_DIR:-$root/target/bench-synapse}
port=${BENCH_SYNAPSE_PORT:-8448}
venv=$dir/venv
data=$dir/data

mkdir -p "$dir" "$data"

# Install once; later runs reuse the venv so starting is quick.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import synapse' 2>/dev/null; then
    echo "synapse.sh: installing matrix-synapse into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet matrix-synapse
fi

if [ "${BENCH_SYNAPSE_FRESH:-0}" = 1 ]; then
    rm -f "$data"/homeserver.db*
fi

# Synapse's own generator writes the signing key, secrets and a SQLite database section;
# it is run only once so the keys (and the users of earlier runs) stay valid.
if [ ! -f "$dir/homeserver.yaml" ]; then
    (cd "$dir" && "$venv/bin/python" -m synapse.app.homeserver \
        --server-name localhost \
        --config-path "$dir/homeserver.yaml" \
        --data-directory "$data" \
        --generate-config \
        --report-stats=no)
fi

# Later config files override top-level keys of earlier ones, so the generated file stays
# untouched and everything the benchmark depends on is spelled out here.
fast='{per_second: 10000, burst_count: 100000}'
cat > "$dir/bench.yaml" <<YAML
listeners:
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
enable_registration: true
enable_registration_without_verification: true
suppress_key_server_warning: true
trusted_key_servers: []
report_stats: false
rc_message: $fast
rc_registration: $fast
rc_login:
  address: $fast
  account: $fast
  failed_attempts: $fast
rc_joins:
  local: $fast
  remote: $fast
rc_joins_per_room: $fast
rc_room_creation: $fast
rc_invites:
  per_room: $fast
  per_user: $fast
  per_issuer: $fast
YAML

echo "synapse.sh: starting Synapse on http://127.0.0.1:$port (config and homeserver.log in $dir)" >&2
cd "$dir"
exec "$venv/bin/python" -m synapse.app.homeserver -c "$dir/homeserver.yaml" -c "$dir/bench.yaml"

#!/usr/bin/env bash
# Slow clients against one server binary: starts BINARY on 127.0.0.1:$PORT with a fresh data
# dir (bundled plugins and rate limits off), runs plugboard-slow-clients-bench against it, and
# prints the tool's JSON line; stops the server afterwards.
#
#   bench/slow_clients.sh BINARY [ENV=VALUE ...]   # ENV: more PLUGBOARD_… settings for the server
#
# Knobs (environment): CONNECTIONS (20000), SOURCES (127.0.0.2), PROBE_SOURCE (127.0.0.1),
# DURATION (60), OPEN_RATE (0: as fast as it goes), TRICKLE_SECS (0), PORT (28471), LABEL, BENCH (the tool's binary,
# target/release/plugboard-slow-clients-bench), NICE (0; -10 runs the server and the probes ahead of
# other work on a shared machine, as root; the slow connections run 10 lower, see --worker-nice).
set -euo pipefail

BINARY=${1:?usage: bench/slow_clients.sh BINARY [ENV=VALUE ...]}
shift
PORT=${PORT:-28471}
BENCH=${BENCH:-target/release/plugboard-slow-clients-bench}
# shellcheck source=bench/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"
start_server "$BINARY" "$PORT" "$@"
echo "server: $BINARY, limits: $(grep 'open files' /proc/$SERVER_PID/limits)" >&2

nice -n "${NICE:-0}" "$BENCH" --url "http://127.0.0.1:$PORT" \
    --connections "${CONNECTIONS:-20000}" \
    --sources "${SOURCES:-127.0.0.2}" \
    --probe-source "${PROBE_SOURCE:-127.0.0.1}" \
    --duration "${DURATION:-60}" \
    --open-rate "${OPEN_RATE:-0}" \
    --trickle-secs "${TRICKLE_SECS:-0}" \
    --server-pid "$SERVER_PID" \
    --label "${LABEL:-}"

echo "server log: $(grep -cE 'WARN|ERROR' "$SERVER_LOG" || true) warnings and errors; the first five and the last:" >&2
grep -E 'WARN|ERROR' "$SERVER_LOG" | head -5 >&2 || true
grep -E 'WARN|ERROR' "$SERVER_LOG" | tail -1 >&2 || true

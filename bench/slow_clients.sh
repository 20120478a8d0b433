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
DATA=$(mktemp -d)
LOG="$DATA/server.log"

cleanup() {
    if [[ -n "${SERVER_PID:-}" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT

if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
    echo "something already listens on 127.0.0.1:$PORT; choose another PORT" >&2
    exit 1
fi

env PLUGBOARD_RATE_LIMITS__ENABLED=false PLUGBOARD_PLUGINS__BUNDLED=false "$@" \
    nice -n "${NICE:-0}" "$BINARY" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" 2>"$LOG" &
SERVER_PID=$!

for _ in $(seq 1 200); do
    if curl -sf "http://127.0.0.1:$PORT/_matrix/client/versions" >/dev/null; then
        break
    fi
    sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/_matrix/client/versions" >/dev/null || {
    echo "the server did not come up; its log:" >&2
    cat "$LOG" >&2
    exit 1
}
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server exited (is the port taken?); its log:" >&2
    cat "$LOG" >&2
    exit 1
fi
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

echo "server log: $(grep -cE 'WARN|ERROR' "$LOG" || true) warnings and errors; the first five and the last:" >&2
grep -E 'WARN|ERROR' "$LOG" | head -5 >&2 || true
grep -E 'WARN|ERROR' "$LOG" | tail -1 >&2 || true

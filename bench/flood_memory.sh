#!/usr/bin/env bash
# Memory through floods of slow connections: starts BINARY on 127.0.0.1:$PORT with a fresh data
# dir (bundled plugins and rate limits off), runs three 12 s floods of 20,000 slow connections
# (plugboard-slow-clients-bench) 14 s apart, and prints the server's VmRSS 6 s into each flood
# and 14 s after it.
#
#   bench/flood_memory.sh BINARY
#
# Knobs (environment): PORT (28502), FLOODS (3), BENCH (target/release/plugboard-slow-clients-bench).
set -euo pipefail

BINARY=${1:?usage: bench/flood_memory.sh BINARY}
PORT=${PORT:-28502}
BENCH=${BENCH:-target/release/plugboard-slow-clients-bench}
# shellcheck source=bench/server.sh
source "$(dirname "${BASH_SOURCE[0]}")/server.sh"

rss() { awk '/VmRSS/{print $2}' "/proc/$SERVER_PID/status"; }
fds() { ls "/proc/$SERVER_PID/fd" | wc -l; }

start_server "$BINARY" "$PORT"
echo "start: $(rss) kB"
for flood in $(seq 1 "${FLOODS:-3}"); do
    (sleep 6; echo "flood $flood, 6 s in: $(rss) kB, $(fds) descriptors open") &
    reader=$!
    "$BENCH" --url "http://127.0.0.1:$PORT" --connections 20000 --sources 127.0.0.2 \
        --probe-source 127.0.0.1 --duration 12 --server-pid "$SERVER_PID" 2>&1 \
        | grep 'slowest probe' | cut -c1-80
    wait "$reader"
    sleep 14
    echo "flood $flood, 14 s after: $(rss) kB, $(fds) descriptors open"
done

#!/usr/bin/env bash
# One run that measures Plugboard and Synapse with the same load: builds the release binaries,
# starts Plugboard (SQLite in a temporary data dir, rate limits off), runs plugboard-bench
# against it, stops it, then does the same with Synapse (bench/synapse.sh, SQLite). Prints the
# two JSON result lines. Arguments are passed on to plugboard-bench (default: C=16, D=20).
# BENCH_SERVER_BIN names the plugboard binary to measure (default target/release/plugboard:
# another build's, for a before / after); BENCH_NO_SYNAPSE=1 skips Synapse.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--concurrency 16 --duration 20)

cargo build --release -q -p plugboard -p plugboard-bench
bench=$root/target/release/plugboard-bench

wait_up() {
    for _ in $(seq 1 600); do
        curl -sf "$1/_matrix/client/versions" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "compare.sh: $1 did not come up" >&2
    return 1
}

data=$(mktemp -d)
PLUGBOARD_RATE_LIMITS__ENABLED=false PLUGBOARD_PLUGINS__BUNDLED=false PLUGBOARD_LOG__LEVEL=warn \
    "${BENCH_SERVER_BIN:-$root/target/release/plugboard}" serve --listen 127.0.0.1:8008 --data-dir "$data" &
pb=$!
trap 'kill $pb 2>/dev/null || true; [ -n "${syn:-}" ] && kill $syn 2>/dev/null || true; rm -rf "$data"' EXIT
wait_up http://127.0.0.1:8008
"$bench" --url http://127.0.0.1:8008 --label "plugboard sqlite" "${args[@]}"
kill $pb; wait $pb 2>/dev/null || true
[ -z "${BENCH_NO_SYNAPSE:-}" ] || exit 0

BENCH_SYNAPSE_FRESH=1 setsid "$root/bench/synapse.sh" >/dev/null 2>&1 &
syn=$!
wait_up http://127.0.0.1:8448
"$bench" --url http://127.0.0.1:8448 --label "synapse sqlite" "${args[@]}"
kill -- -$syn 2>/dev/null || kill $syn

#!/usr/bin/env bash
# Appservice delivery benchmark against Plugboard: builds the release binaries, writes N
# appservice registrations (as1..asN, url http://127.0.0.1:<port>, a non-exclusive `@bench_.*`
# users namespace so every bench room interests them), starts Plugboard with them (SQLite in a
# temporary data dir, rate limits off), runs plugboard-bench with N receivers, stops the server
# and prints the JSON result line.
#
#   bench/appservice.sh steady    1 appservice, --rate 1000, D=20: send -> arrival latency
#   bench/appservice.sh full      1 appservice, C=16 flat out, D=20: does delivery keep up?
#   bench/appservice.sh fanout    10 appservices, C=16, D=20: delivery throughput to all of them
#   bench/appservice.sh catchup   1 appservice answering 503 while 100,000 events are sent
#                                 (C=16), then 200: time to deliver the whole backlog
#   bench/appservice.sh outage    1 appservice down (503 to everything, pings included) for a
#                                 90 s load at 200 events/s, then back, with the server's own
#                                 retry settings: how soon it is caught up, and what the down
#                                 service was sent meanwhile
#
# Extra arguments after the scenario go to plugboard-bench (and win over the scenario's).
# Environment: BENCH_AS_PORT_BASE (9100), BENCH_LISTEN (127.0.0.1:8008), BENCH_EVENTS
# (catchup backlog, 100000), BENCH_RETRY_MAX_MS (catchup only, 1000: the longest pause
# between two delivery attempts, so the server notices the receiver is back within a second
# instead of after up to the default 60 s; the pause is reported separately anyway),
# BENCH_PERF=FILE (record the server with `perf record -g` into FILE during the bench run),
# BENCH_NO_BUILD=1 (use the binaries already in target/release), BENCH_LOG (the server's log
# filter, default `warn`; `warn,sqlx::query=debug` logs every SQL statement with its time),
# BENCH_SERVER_BIN (the plugboard binary to measure, default target/release/plugboard: another
# build's, for a before / after), BENCH_OUTAGE_S and BENCH_RATE (outage only: 90 and 200).
set -euo pipefail

usage() {
    echo "usage: bench/appservice.sh steady|full|fanout|catchup|outage [plugboard-bench options]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
scenario=$1
shift

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
port_base=${BENCH_AS_PORT_BASE:-9100}
listen=${BENCH_LISTEN:-127.0.0.1:8008}
hs_prefix=bench_hs_
server_env=()
case "$scenario" in
    steady)  count=1;  args=(--rate 1000 --duration 20) ;;
    full)    count=1;  args=(--concurrency 16 --duration 20) ;;
    fanout)  count=10; args=(--concurrency 16 --duration 20) ;;
    catchup)
        count=1
        args=(--concurrency 16 --events "${BENCH_EVENTS:-100000}" --appservice-backlog)
        server_env=("PLUGBOARD_APPSERVICE_DELIVERY__RETRY_MAX_MS=${BENCH_RETRY_MAX_MS:-1000}")
        ;;
    outage)
        count=1
        args=(--rate "${BENCH_RATE:-200}" --duration "${BENCH_OUTAGE_S:-90}" --appservice-backlog)
        ;;
    *) usage ;;
esac

[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release -q -p plugboard -p plugboard-bench

work=$(mktemp -d)
data=$work/data
mkdir -p "$data"
pb=
perf_pid=
cleanup() {
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    if [ -n "$pb" ]; then
        kill "$pb" 2>/dev/null || true
        wait "$pb" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

files=()
for i in $(seq 1 "$count"); do
    f=$work/as$i.yaml
    cat >"$f" <<EOF
id: as$i
url: http://127.0.0.1:$((port_base + i - 1))
as_token: bench_as_as$i
hs_token: ${hs_prefix}as$i
sender_localpart: benchbot$i
namespaces:
  users:
    - exclusive: false
      regex: "@bench_.*"
  aliases: []
  rooms: []
rate_limited: false
EOF
    files+=("$f")
done
config_files=$(IFS=,; echo "${files[*]}")

env PLUGBOARD_RATE_LIMITS__ENABLED=false PLUGBOARD_PLUGINS__BUNDLED=false PLUGBOARD_LOG__LEVEL="${BENCH_LOG:-warn}" \
    PLUGBOARD_APPSERVICE_CONFIG_FILES="$config_files" ${server_env[@]+"${server_env[@]}"} \
    "${BENCH_SERVER_BIN:-$root/target/release/plugboard}" serve --data-dir "$data" --listen "$listen" &
pb=$!
echo "appservice.sh: plugboard pid $pb" >&2

up=
for _ in $(seq 1 600); do
    if curl -sf "http://$listen/_matrix/client/versions" >/dev/null 2>&1; then
        up=1
        break
    fi
    kill -0 "$pb" 2>/dev/null || break
    sleep 0.1
done
[ -n "$up" ] || { echo "appservice.sh: plugboard did not come up on $listen" >&2; exit 1; }

if [ -n "${BENCH_PERF:-}" ]; then
    perf record -g -o "$BENCH_PERF" -p "$pb" 2>/dev/null &
    perf_pid=$!
fi

"$root/target/release/plugboard-bench" --url "http://$listen" \
    --appservices "$count" --appservice-port-base "$port_base" \
    --appservice-hs-token-prefix "$hs_prefix" \
    --label "plugboard appservice $scenario" "${args[@]}" "$@"

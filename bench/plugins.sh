#!/usr/bin/env bash
# Plugin runtime benchmarks against Plugboard (release build, SQLite in a temporary data dir,
# rate limits off). Prints JSON result lines on stdout, progress on stderr.
#
#   bench/plugins.sh micro     instantiation from the InstancePre, on-transaction with 1 and
#                              100 events, compile and cached load (plugboard-plugin-bench,
#                              in-process, on the echo bot)
#   bench/plugins.sh reply     client send -> echo bot reply seen by a /sync reader at a
#                              steady 1,000 events/s for 20 s (plugboard-bench --plugin)
#   bench/plugins.sh through   events/s through a plugin in the full host (the echo bot unless
#                              BENCH_PLUGIN_ID and BENCH_PLUGIN_USER name another bundled one):
#                              disabled while 50,000 plain messages are sent (C=16), then
#                              enabled; the time until its queue is empty
#   bench/plugins.sh startup   start-up of a server with five plugins installed (components
#                              cached): five starts, time from exec until /versions answers
#
# Extra arguments after the scenario go to the bench binary. Environment: BENCH_LISTEN
# (127.0.0.1:8008), BENCH_NO_BUILD=1 (use target/release as it is), BENCH_EVENTS (through,
# 50000), BENCH_SERVER_BIN (the plugboard binary to measure, default target/release/plugboard:
# another build's, for a before / after).
set -euo pipefail

usage() {
    echo "usage: bench/plugins.sh micro|reply|through|startup [bench options]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
scenario=$1
shift

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
listen=${BENCH_LISTEN:-127.0.0.1:8008}
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release -q -p plugboard -p plugboard-bench
server=${BENCH_SERVER_BIN:-$root/target/release/plugboard}

work=$(mktemp -d)
pb=
cleanup() {
    if [ -n "$pb" ]; then
        kill "$pb" 2>/dev/null || true
        wait "$pb" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Starts plugboard on $listen with data dir $1 (bundled plugins on); waits until it answers.
start() {
    env PLUGBOARD_RATE_LIMITS__ENABLED=false PLUGBOARD_LOG__LEVEL="${BENCH_LOG:-warn}" \
        "$server" serve --data-dir "$1" --listen "$listen" &
    pb=$!
    for _ in $(seq 1 600); do
        if curl -sf "http://$listen/_matrix/client/versions" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$pb" 2>/dev/null || break
        sleep 0.05
    done
    echo "plugins.sh: plugboard did not come up on $listen" >&2
    exit 1
}

# Disables every installed plugin but $1, so that it is measured alone (the bundled indexer,
# for one, would otherwise index the bench's load beside it).
only() {
    local id
    "$server" plugin list --data-dir "$work/data" | awk 'NR > 1 { print $1 }' |
        while read -r id; do
            if [ "$id" != "$1" ]; then
                "$server" plugin disable "$id" --data-dir "$work/data" >/dev/null
            fi
        done
}

stop() {
    kill "$pb" 2>/dev/null || true
    wait "$pb" 2>/dev/null || true
    pb=
}

case "$scenario" in
    micro)
        "$root/target/release/plugboard-plugin-bench" "$@"
        ;;
    reply)
        start "$work/data"
        only echo-bot
        "$root/target/release/plugboard-bench" --url "http://$listen" \
            --plugin "@echo:localhost" --rate 1000 --duration 20 \
            --label "plugboard echo bot reply at 1000/s" "$@"
        ;;
    through)
        start "$work/data"
        plugin_id=${BENCH_PLUGIN_ID:-echo-bot}
        only "$plugin_id"
        "$root/target/release/plugboard-bench" --url "http://$listen" \
            --plugin "${BENCH_PLUGIN_USER:-@echo:localhost}" --plugin-id "$plugin_id" \
            --plugin-backlog --admin-token "$work/data/admin.token" \
            --concurrency 16 --events "${BENCH_EVENTS:-50000}" \
            --label "plugboard $plugin_id throughput (backlog)" "$@"
        ;;
    startup)
        data=$work/data
        start "$data"
        wasm="$root/target/wasm-plugins/default/wasm32-wasip2/plugin/plugboard_plugin_echo_bot.wasm"
        # The bundled echo bot and four more copies under other ids and namespaces.
        for i in 2 3 4 5; do
            sed -e "s/^id = \"echo-bot\"/id = \"echo-bot-$i\"/" \
                -e "s/^sender_localpart = \"echo\"/sender_localpart = \"echo$i\"/" \
                -e "s/@echo_/@echo${i}_/" \
                "$root/plugins/echo-bot/plugin.toml" >"$work/echo$i.toml"
            "$server" plugin install "$wasm" --manifest "$work/echo$i.toml" \
                --data-dir "$data" >/dev/null
        done
        count=$("$server" plugin list --data-dir "$data" | awk "NR > 1" | wc -l)
        stop
        times=()
        for run in 1 2 3 4 5; do
            t0=$(date +%s%N)
            start "$data"
            t1=$(date +%s%N)
            times+=("$(( (t1 - t0) / 1000000 ))")
            stop
        done
        echo "{\"label\":\"plugboard start-up with $count plugins (cached)\",\"plugins\":$count,\"startup_ms\":[$(IFS=,; echo "${times[*]}")],\"definition\":\"exec of plugboard serve until GET /_matrix/client/versions answers 200, polled every 50 ms; plugins are loaded before the listener serves\"}"
        ;;
    *) usage ;;
esac

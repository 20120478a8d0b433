# Sourced by the bench scripts that attack one fresh server: `start_server BINARY PORT
# [ENV=VALUE ...]` starts BINARY on 127.0.0.1:PORT with a fresh data dir (bundled plugins and
# rate limits off; each ENV=VALUE reaches it too, e.g. PLUGBOARD_CONNECTIONS__…), waits until
# it answers /versions (its log on stderr if it does not), and sets SERVER_PID and SERVER_LOG.
# The server is stopped and its data dir removed when the script exits.

SERVER_DATA=$(mktemp -d)
SERVER_LOG="$SERVER_DATA/server.log"
SERVER_PID=

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$SERVER_DATA"
}
trap stop_server EXIT

start_server() {
    local binary=$1 port=$2
    shift 2
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
        echo "something already listens on 127.0.0.1:$port; choose another PORT" >&2
        exit 1
    fi
    env PLUGBOARD_RATE_LIMITS__ENABLED=false PLUGBOARD_PLUGINS__BUNDLED=false "$@" \
        nice -n "${NICE:-0}" "$binary" serve --listen "127.0.0.1:$port" \
        --data-dir "$SERVER_DATA" 2>"$SERVER_LOG" &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$port/_matrix/client/versions" >/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "the server did not come up (is the port taken?); its log:" >&2
    cat "$SERVER_LOG" >&2
    exit 1
}

#!/usr/bin/env bash
# Upload memory benchmark: starts a Plugboard release binary on a temporary data dir (the
# bundled plugins left out, everything else at its defaults), registers one user, and has it
# make UPLOADS concurrent uploads of SIZE_MIB MiB each with curl (one process per upload,
# streaming the file; `--retry` waits out a 429 for its Retry-After), while sampling the
# server's /proc/PID/status every 100 ms. Prints one JSON line:
#
#   rss_idle_mib      VmRSS before the uploads
#   rss_peak_mib      the largest VmRSS sampled while they ran
#   hwm_mib           VmHWM (the kernel's own peak of VmRSS) when they are done
#   rss_done_mib      VmRSS when the last upload is answered
#   rss_after_mib     VmRSS AFTER_S seconds later
#   ok, failed        uploads answered 200 / anything else; stored_files: files in media/
#   partial_left      files left in media/.partial (should be 0)
#   seconds           from the first upload started to the last answered
#
# Then every stored file is downloaded, all at once, and the same is reported for that phase:
#   dl_ok, dl_rss_peak_mib, dl_rss_done_mib, dl_rss_after_mib (AFTER_S seconds later)
#
#   bench/uploads.sh [BINARY]       BINARY defaults to target/release/plugboard (not built here)
#
# Environment: UPLOADS (40), SIZE_MIB (50), PORT (18477), AFTER_S (10), LABEL (copied into
# the result). Any PLUGBOARD_* variable reaches the server, e.g.
# PLUGBOARD_MEDIA__MAX_CONCURRENT_UPLOADS=40 to let all uploads stream at once.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/target/release/plugboard}
n=${UPLOADS:-40}
mib=${SIZE_MIB:-50}
port=${PORT:-18477}
after=${AFTER_S:-10}
base=http://127.0.0.1:$port

work=$(mktemp -d)
server=
sampler=
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

PLUGBOARD_PLUGINS__BUNDLED=false PLUGBOARD_LOG__LEVEL=warn \
    "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
    curl -sf "$base/_matrix/client/versions" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done

token=$(curl -sf "$base/_matrix/client/v3/register" \
    -d '{"username":"uploader","password":"secret","auth":{"type":"m.login.dummy"}}' |
    python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])')

head -c $((mib * 1024 * 1024)) /dev/urandom >"$work/blob"

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$server/status"; }
(
    while kill -0 "$server" 2>/dev/null; do
        echo "$(date +%s.%N) $(kib VmRSS) $(kib VmHWM)"
        sleep 0.1
    done
) >"$work/samples" &
sampler=$!

sleep 1
rss_idle=$(kib VmRSS)
start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$n"); do
    curl -s -o "$work/reply$i" -w '%{http_code}\n' --retry 1000 --retry-max-time 900 \
        -X POST -T "$work/blob" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
        "$base/_matrix/media/v3/upload?filename=blob$i.bin" >"$work/code$i" 2>"$work/err$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
done_at=$(date +%s.%N)
rss_done=$(kib VmRSS)
hwm=$(kib VmHWM)
sleep "$after"
rss_after=$(kib VmRSS)

# The downloads: every stored file at once, through the unauthenticated v3 path.
dl_start=$(date +%s.%N)
pids=()
i=0
for reply in "$work"/reply*; do
    uri=$(python3 -c 'import sys, json; print(json.load(open(sys.argv[1]))["content_uri"][6:])' "$reply" 2>/dev/null) || continue
    i=$((i + 1))
    curl -s -o /dev/null -w '%{http_code} %{size_download}\n' \
        "$base/_matrix/media/v3/download/$uri" >"$work/dl$i" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
dl_done=$(date +%s.%N)
dl_rss_done=$(kib VmRSS)
sleep "$after"
dl_rss_after=$(kib VmRSS)
kill "$sampler" 2>/dev/null || true
sampler=
dl_ok=$( (cat "$work"/dl* 2>/dev/null || true) | grep -c "^200 $((mib * 1024 * 1024))$" || true)
dl_rss_peak=$(awk -v s="$dl_start" -v e="$dl_done" '$1 >= s && $1 <= e && $2 > m { m = $2 } END { print m + 0 }' "$work/samples")

ok=$(cat "$work"/code* | grep -c '^200$' || true)
rss_peak=$(awk -v s="$start" -v e="$done_at" '$1 >= s && $1 <= e && $2 > m { m = $2 } END { print m + 0 }' "$work/samples")
stored=$(find "$work/data/media" -maxdepth 1 -type f | wc -l)
partial=$( (find "$work/data/media/.partial" -type f 2>/dev/null || true) | wc -l)
python3 - "$rss_idle" "$rss_peak" "$hwm" "$rss_done" "$rss_after" "$ok" "$n" "$stored" \
    "$partial" "$start" "$done_at" "$mib" "${LABEL:-}" "$dl_ok" "$dl_rss_peak" "$dl_rss_done" \
    "$dl_rss_after" <<'EOF'
import json, sys
a = sys.argv[1:]
mib = lambda k: round(int(k) / 1024, 1)
print(json.dumps({
    "label": a[12], "uploads": int(a[6]), "size_mib": int(a[11]),
    "rss_idle_mib": mib(a[0]), "rss_peak_mib": mib(a[1]), "hwm_mib": mib(a[2]),
    "rss_done_mib": mib(a[3]), "rss_after_mib": mib(a[4]),
    "ok": int(a[5]), "failed": int(a[6]) - int(a[5]), "stored_files": int(a[7]),
    "partial_left": int(a[8]), "seconds": round(float(a[10]) - float(a[9]), 2),
    "dl_ok": int(a[13]), "dl_rss_peak_mib": mib(a[14]), "dl_rss_done_mib": mib(a[15]),
    "dl_rss_after_mib": mib(a[16]),
}))
EOF

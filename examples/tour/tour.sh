#!/usr/bin/env bash
# The 2015 talk's tour, replayed against a running Plugboard with curl: each slide's payload
# is sent the way the talk sent it (the v1 client API, `?access_token=`), and the tour prints
# what each bundled plugin and an HTTP application service did with it.
#
#   examples/tour/tour.sh [BASE_URL]          (default http://127.0.0.1:8008)
#
# Environment: DATA_DIR (the server's data dir, for its admin token; default ./data) or
# ADMIN_TOKEN; PYTHON (a python with flask, for the HTTP appservice; default python3);
# AS_PORT (the appservice's port; default a free one). Needs bash, curl, jq and python3.
# Exits non-zero, saying which slide, when a plugin does not answer within TOUR_WAIT seconds
# (default 30).
set -euo pipefail

base=${1:-http://127.0.0.1:8008}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
admin_token=${ADMIN_TOKEN:-$(cat "${DATA_DIR:-./data}/admin.token")}
python=${PYTHON:-python3}
wait_s=${TOUR_WAIT:-30}
work=$(mktemp -d)
receiver=
cleanup() {
    [ -z "$receiver" ] || kill "$receiver" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }
fail() { echo "tour: $*" >&2; exit 1; }
enc() { jq -rn --arg s "$1" '$s|@uri'; }

# curl with the JSON body $3 (optional) and bearer token $token; prints the answer.
api() {
    local method=$1 path=$2 body=${3:-}
    if [ -n "$body" ]; then
        curl -sS -X "$method" -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' -d "$body" "$base$path"
    else
        curl -sS -X "$method" -H "Authorization: Bearer $token" "$base$path"
    fi
}

# The talk's send: POST /_matrix/client/api/v1/rooms/{room}/send/{type}?access_token=…
v1_send() {
    curl -sS -X POST -H 'Content-Type: application/json' -d "$3" \
        "$base/_matrix/client/api/v1/rooms/$(enc "$1")/send/$(enc "$2")?access_token=$token" |
        jq -r .event_id
}

# Waits until the room's latest events hold one from $2 of type $3 that passes the jq
# filter $4 (default: any); prints that event.
wait_for() {
    local room=$1 sender=$2 type=$3 filter=${4:-.}
    local deadline=$((SECONDS + wait_s)) found
    while [ $SECONDS -lt $deadline ]; do
        found=$(api GET "/_matrix/client/v3/rooms/$(enc "$room")/messages?dir=b&limit=50" |
            jq -c --arg s "$sender" --arg t "$type" \
                "[.chunk[] | select(.sender == \$s and .type == \$t) | select($filter)] | first // empty")
        if [ -n "$found" ]; then
            echo "$found"
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# A room with $1 invited, once it has joined.
room_with() {
    local room deadline=$((SECONDS + wait_s))
    room=$(api POST /_matrix/client/v3/createRoom \
        "{\"invite\": [\"$1\"], \"is_direct\": ${2:-false}}" | jq -r .room_id)
    while [ $SECONDS -lt $deadline ]; do
        if api GET "/_matrix/client/v3/rooms/$(enc "$room")/joined_members" |
            jq -e --arg u "$1" '.joined[$u]' >/dev/null; then
            echo "$room"
            return 0
        fi
        sleep 0.2
    done
    fail "$1 did not join $room"
}

# --- Who we are ---------------------------------------------------------------------------
name="tour_$(date +%s)_$RANDOM"
token=$(curl -sS -X POST -H 'Content-Type: application/json' \
    -d "{\"username\": \"$name\", \"password\": \"tour-password\", \"auth\": {\"type\": \"m.login.dummy\"}}" \
    "$base/_matrix/client/v3/register" | jq -r .access_token)
[ "$token" != null ] || fail "cannot register $name (is registration open?)"
me=$(api GET /_matrix/client/v3/account/whoami | jq -r .user_id)
server=${me#*:}
echo "Plugboard at $base, server name $server, touring as $me"

# --- Slide: an application service over HTTP ---------------------------------------------
say "An HTTP application service (the talk's Flask receiver)"
as_port=${AS_PORT:-$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
hs_token=$("$python" -c 'import secrets; print(secrets.token_urlsafe(24))')
as_token=$("$python" -c 'import secrets; print(secrets.token_urlsafe(24))')
"$python" "$root/examples/appservice-python/receiver.py" --hs-token "$hs_token" \
    --port "$as_port" >"$work/receiver.log" 2>&1 &
receiver=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$as_port/" && break
    sleep 0.1
done
cat >"$work/registration.yaml" <<YAML
id: tour-$name
url: http://127.0.0.1:$as_port
as_token: $as_token
hs_token: $hs_token
sender_localpart: tour-bridge-$name
namespaces:
  users:
    - exclusive: false
      regex: "@$name:.*"
rate_limited: false
YAML
curl -sS -f -X POST -H "Authorization: Bearer $admin_token" --data-binary @"$work/registration.yaml" \
    "$base/_plugboard/admin/v1/appservices" >/dev/null || fail "cannot register the appservice"
echo "registered tour-$name at http://127.0.0.1:$as_port: it gets every event of $me's rooms"

# --- Slide: sending a message ------------------------------------------------------------
say "Sending a message (the command bot)"
bot="@bot:$server"
chat=$(room_with "$bot")
v1_send "$chat" m.room.message '{"msgtype": "m.text", "body": "!ping"}' >/dev/null
pong=$(wait_for "$chat" "$bot" m.room.message '.content.body | test("pong")') ||
    fail "the command bot did not answer !ping"
echo "$bot answered: $(jq -r .content.body <<<"$pong")"
v1_send "$chat" m.room.message '{"msgtype": "m.text", "body": "!roll 2d6"}' >/dev/null
roll=$(wait_for "$chat" "$bot" m.room.message '.content.body | test("2d6:")') ||
    fail "the command bot did not roll"
echo "$bot rolled: $(jq -r .content.body <<<"$roll")"

# --- Slide: VoIP --------------------------------------------------------------------------
say "A VoIP call (the IVR)"
ivr="@ivr:$server"
call_room=$(room_with "$ivr" true)
call_id="tour$(date +%s)"
offer=$(jq -n --rawfile sdp "$here/offer.sdp" '$sdp')
v1_send "$call_room" m.call.invite "{\"call_id\": \"$call_id\", \"party_id\": \"tour\", \"version\": \"1\",
    \"lifetime\": 60000, \"offer\": {\"type\": \"offer\", \"sdp\": $offer}}" >/dev/null
answer=$(wait_for "$call_room" "$ivr" m.call.answer ".content.call_id == \"$call_id\"") ||
    fail "the IVR did not answer the call"
echo "$ivr answered call $call_id; its SDP answer:"
jq -r .content.answer.sdp <<<"$answer" | grep -E '^(m=|a=rtpmap|a=setup|a=ice-ufrag)' | sed 's/^/    /'
prompt=$(wait_for "$call_room" "$ivr" m.room.message '.content.msgtype == "m.notice"') ||
    fail "the IVR did not say its menu"
echo "$ivr said: $(jq -r .content.body <<<"$prompt" | head -3)"
v1_send "$call_room" m.call.hangup "{\"call_id\": \"$call_id\", \"party_id\": \"tour\", \"version\": \"1\",
    \"reason\": \"user_hangup\"}" >/dev/null
echo "hung up"

# --- Slide: MIDI --------------------------------------------------------------------------
say "MIDI over Matrix (the MIDI logger)"
midi_bot="@midi:$server"
midi_room=$(room_with "$midi_bot")
t0=$(($(date +%s) * 1000))
for i in 0 1 2 3; do
    note=$((60 + i * 2))
    v1_send "$midi_room" org.matrix.midi "{\"note\": $note, \"velocity\": 100, \"state\": \"on\",
        \"channel\": 1, \"midi_ts\": $((t0 + i * 500))}" >/dev/null
    v1_send "$midi_room" org.matrix.midi "{\"note\": $note, \"velocity\": 0, \"state\": \"off\",
        \"channel\": 1, \"midi_ts\": $((t0 + i * 500 + 400))}" >/dev/null
done
v1_send "$midi_room" m.room.message '{"msgtype": "m.text", "body": "!midi stats"}' >/dev/null
stats=$(wait_for "$midi_room" "$midi_bot" m.room.message '.content.body | test("note")') ||
    fail "the MIDI logger did not answer !midi stats"
echo "$midi_bot: $(jq -r .content.body <<<"$stats")"
v1_send "$midi_room" m.room.message '{"msgtype": "m.text", "body": "!midi export all"}' >/dev/null
file=$(wait_for "$midi_room" "$midi_bot" m.room.message '.content.msgtype == "m.file"') ||
    fail "the MIDI logger did not export"
mxc=$(jq -r .content.url <<<"$file")
mxc_path=${mxc#mxc://}
api GET "/_matrix/client/v1/media/download/$mxc_path" >"$work/tour.mid"
[ "$(head -c 4 "$work/tour.mid")" = MThd ] || fail "the export is not a Standard MIDI File"
echo "$midi_bot exported $(jq -r .content.body <<<"$file") ($(wc -c <"$work/tour.mid") bytes, $mxc): a Standard MIDI File"

# --- Slide: the stickmen ------------------------------------------------------------------
say "Any JSON at all (the Unity stickmen)"
stickmen=$(cat "$here/stickmen.json")
stick_id=$(v1_send "$chat" org.matrix.demos.unity.stickmen "$stickmen")
back=$(api GET "/_matrix/client/v3/rooms/$(enc "$chat")/event/$(enc "$stick_id")" | jq -S .content)
[ "$back" = "$(jq -S . <<<"$stickmen")" ] || fail "the stickmen came back changed"
echo "sent $stick_id; it reads back identical ($(jq '.players | length' <<<"$stickmen") players, frame $(jq .frame <<<"$stickmen"))"

# --- What the HTTP appservice saw ---------------------------------------------------------
say "What the HTTP application service received"
deadline=$((SECONDS + wait_s))
until grep -q "org.matrix.demos.unity.stickmen" "$work/receiver.log"; do
    if [ $SECONDS -ge $deadline ]; then
        # What the receiver got and what the server says of its queue, to tell a slow
        # receiver from a stuck queue.
        tail -n 20 "$work/receiver.log" >&2
        curl -sS -H "Authorization: Bearer $admin_token" \
            "$base/_plugboard/admin/v1/appservices/tour-$name" >&2
        fail "the appservice never got the stickmen"
    fi
    sleep 0.2
done
grep -E '^txn ' "$work/receiver.log" | sed 's/^/    /' | tail -n 12
echo
echo "tour: done"

"""The 2015 Matrix talk's Flask application-service receiver, on today's Application Service API.

The homeserver pushes events to us as transactions: PUT /_matrix/app/v1/transactions/{txnId}
with `Authorization: Bearer <hs_token>`. We print each event and answer {}.

    python receiver.py --hs-token <hs_token> [--port 5000] [--host 127.0.0.1]

Every flag can also come from the environment: AS_HS_TOKEN, AS_PORT, AS_HOST.
"""
import argparse
import hmac
import json
import os
import threading

from flask import Flask, jsonify, request

app = Flask(__name__)
HS_TOKEN = ""
LEGACY_QUERY_TOKEN = False

# The homeserver retries a transaction until it gets a 200, so the same txnId can arrive more
# than once; we remember which ones we processed and answer {} again without re-processing.
# In memory only: a real bridge would persist this, or a restart re-delivers a transaction.
processed_txns: set[str] = set()
# Flask's server is threaded; the lock keeps two retries of one txnId from both processing it.
txn_lock = threading.Lock()


def error(status, errcode, message):
    return jsonify(errcode=errcode, error=message), status


def check_hs_token():
    """None if the request carries our hs_token, else the error response to send."""
    token = None
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        token = auth[len("Bearer "):].strip()
    elif LEGACY_QUERY_TOKEN:
        # Homeservers older than spec v1.4 send the token as ?access_token= instead. Off by
        # default: a token in a URL ends up in access logs (including Flask's own).
        token = request.args.get("access_token")
    if not token:
        return error(401, "M_UNAUTHORIZED", "Missing hs_token")
    # Constant-time comparison, so the response time does not leak how much of a guess matched.
    if not hmac.compare_digest(token.encode(), HS_TOKEN.encode()):
        return error(403, "M_FORBIDDEN", "Wrong hs_token")
    return None


def summary(event):
    """The body of a message, else a short description of the content."""
    content = event.get("content") or {}
    if isinstance(content.get("body"), str):
        return content["body"]
    if event.get("type") == "m.room.member":
        return f"{event.get('state_key')} -> {content.get('membership')}"
    text = json.dumps(content, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def print_event(txn_id, event):
    if not isinstance(event, dict):  # skip junk rather than 500, which the server would retry
        return
    # flush: the output is often piped to a file or journal, and we want to see it live.
    print(f"txn {txn_id}: {event.get('type')} from {event.get('sender', '-')} "
          f"in {event.get('room_id', '-')}: {summary(event)}", flush=True)


# The unprefixed path is where the talk's receiver (and homeservers before the v1 prefix)
# sent transactions; it shares the handler, and the set of processed txnIds, with the new one.
@app.put("/_matrix/app/v1/transactions/<path:txn_id>")
@app.put("/transactions/<path:txn_id>")
def on_transaction(txn_id):
    if (denied := check_hs_token()) is not None:
        return denied
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("events", []), list):
        return error(400, "M_NOT_JSON", "Expected a JSON object with an `events` list")
    with txn_lock:
        if txn_id in processed_txns:
            return jsonify({})
        for event in body.get("events", []):
            print_event(txn_id, event)
        # Typing, receipts and presence arrive only with `receive_ephemeral: true` in the
        # registration (MSC2409). Some homeservers still use the unstable key, some send both
        # with the same events, so take the stable key when present rather than print twice.
        ephemeral = body.get("ephemeral") or body.get("de.sorunome.msc2409.ephemeral") or []
        for event in ephemeral if isinstance(ephemeral, list) else []:
            print_event(txn_id, event)
        # Marked only after processing: if we crashed halfway, the retry must be processed.
        processed_txns.add(txn_id)
    return jsonify({})


@app.post("/_matrix/app/v1/ping")
def on_ping():
    # The homeserver calls this when an admin or the bridge asks it to check that it can reach
    # us (and that we accept its hs_token), so it is authenticated like everything else.
    if (denied := check_hs_token()) is not None:
        return denied
    body = request.get_json(force=True, silent=True)
    txn_id = body.get("transaction_id") if isinstance(body, dict) else None
    print(f"ping (transaction_id={txn_id})", flush=True)
    return jsonify({})


@app.get("/_matrix/app/v1/users/<path:user_id>")
def on_user_query(user_id):
    # The homeserver asks whether a user in our exclusive namespace (@py_.*) exists, before
    # failing a lookup or an invite. A real bridge would create it here, by registering it
    # through the client-server API (POST /_matrix/client/v3/register with type
    # m.login.application_service and its as_token), and answer {}. This example owns no users.
    if (denied := check_hs_token()) is not None:
        return denied
    return error(404, "M_NOT_FOUND", f"No such user {user_id}")


@app.get("/_matrix/app/v1/rooms/<path:alias>")
def on_room_query(alias):
    # Same for room aliases in #py_.*: a real bridge would create the room here
    # (POST /_matrix/client/v3/createRoom with its as_token and room_alias_name) and answer {}.
    if (denied := check_hs_token()) is not None:
        return denied
    return error(404, "M_NOT_FOUND", f"No such room alias {alias}")


# The spec asks for M_UNRECOGNIZED on endpoints we do not implement, so the homeserver can tell
# "not supported" from "not found" (Flask would answer with an HTML page).
@app.errorhandler(404)
@app.errorhandler(405)
def unrecognized(e):
    return error(e.code, "M_UNRECOGNIZED", "Unrecognized request")


def main():
    global HS_TOKEN, LEGACY_QUERY_TOKEN
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hs-token", default=os.environ.get("AS_HS_TOKEN"),
                        help="hs_token from registration.yaml (env AS_HS_TOKEN)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AS_PORT", 5000)))
    parser.add_argument("--host", default=os.environ.get("AS_HOST", "127.0.0.1"))
    parser.add_argument("--legacy-query-token", action="store_true",
                        help="also accept the hs_token as ?access_token= (pre-v1.4 homeservers)")
    args = parser.parse_args()
    if not args.hs_token:
        parser.error("--hs-token (or AS_HS_TOKEN) is required")
    HS_TOKEN, LEGACY_QUERY_TOKEN = args.hs_token, args.legacy_query_token
    app.run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()

"""A small bot in Python against Plugboard's WIT package (wit/): it joins rooms it is
invited to and answers `!py TEXT` with "python says: TEXT" as a notice in reply, and
`!count` with how many commands it has answered (kept in the plugin's kv store).

Built with componentize-py: see README.md.
"""

import json

import wit_world
from wit_world.imports import homeserver, kv, log
from wit_world.imports.types import HttpResponse

PREFIX = "!"


def reply(event, text):
    """A notice in reply to `event`, mentioning its sender."""
    content = {
        "msgtype": "m.notice",
        "body": text,
        "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
        "m.mentions": {"user_ids": [event.sender]},
    }
    # The txn id makes the send idempotent when the transaction is delivered again.
    homeserver.send_event(None, event.room_id, "m.room.message", json.dumps(content),
                          "py." + event.event_id)


def count():
    raw = kv.get("answered")
    return int(raw.decode()) if raw else 0


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        global PREFIX
        PREFIX = json.loads(config).get("prefix", "!")
        log.write(log.Level.INFO, "python bot ready", [("prefix", PREFIX)])

    def on_transaction(self, txn) -> None:
        me = homeserver.sender()
        for event in txn.events:
            if event.from_own_user:
                continue
            try:
                content = json.loads(event.content)
            except ValueError:
                continue
            if not isinstance(content, dict):
                continue
            if (event.event_type == "m.room.member" and event.state_key == me
                    and content.get("membership") == "invite"):
                homeserver.join(None, event.room_id)
                continue
            body = content.get("body")
            if event.event_type != "m.room.message" or not isinstance(body, str):
                continue
            if body.startswith(PREFIX + "py "):
                kv.set("answered", str(count() + 1).encode())
                reply(event, "python says: " + body[len(PREFIX) + 3:].strip())
            elif body.strip() == PREFIX + "count":
                reply(event, "answered %d" % count())

    def on_timer(self, key: str, payload: str) -> None:
        pass

    def query_user(self, user: str) -> bool:
        return False

    def query_alias(self, alias: str) -> bool:
        return False

    def handle_http(self, request):
        body = json.dumps({"answered": count()}).encode()
        return HttpResponse(200, [("content-type", "application/json")], body)

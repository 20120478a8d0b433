"""The core client flow, driven by matrix-nio against a Plugboard server.

Usage: python flow.py HOMESERVER_URL

Run by tests/tests/nio.rs from a venv that has matrix-nio (no encryption). Prints one line
per step; on any failure prints what went wrong to stderr and exits non-zero.
"""

import asyncio
import logging
import sys
import traceback

from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    MessageDirection,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    RoomCreateEvent,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
)
from nio.events.misc import BadEvent, UnknownBadEvent

SYNC_TIMEOUT_MS = 10_000
ALIAS = "nio-flow"
DISPLAYNAME = "Alice via nio"


class FlowError(Exception):
    pass


class NioComplaints(logging.Handler):
    """Keeps what nio logs at WARNING and above: it logs, rather than raises, when a part of
    a response fails its schema validation and is dropped."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(self.format(record))


def step(text):
    print(f"ok: {text}", flush=True)


def expect(resp, kind, what):
    """Answers `resp` if it is a `kind`, else fails with what the server said."""
    if not isinstance(resp, kind):
        detail = resp
        if isinstance(resp, ErrorResponse):
            detail = (
                f"{type(resp).__name__}: status_code={resp.status_code!r} "
                f"message={resp.message!r}"
            )
        raise FlowError(f"{what}: expected {kind.__name__}, got {detail}")
    return resp


def check(cond, what):
    if not cond:
        raise FlowError(what)


def no_bad_events(events, where):
    """nio turns events that fail its schema validation into BadEvent/UnknownBadEvent."""
    bad = [e for e in events if isinstance(e, (BadEvent, UnknownBadEvent))]
    check(not bad, f"{where}: events nio could not parse: {bad}")


def texts(events):
    return [e for e in events if isinstance(e, RoomMessageText)]


def new_client(homeserver, user=""):
    # Fail fast rather than retry: the test server has no rate limits, and a refused or
    # timed-out connection is a failure, not something to wait out.
    config = AsyncClientConfig(
        encryption_enabled=False,
        store_sync_tokens=False,
        max_limit_exceeded=0,
        max_timeouts=1,
        request_timeout=30,
    )
    return AsyncClient(homeserver, user=user, config=config)


async def flow(homeserver):
    alice_reg = new_client(homeserver)
    alice = None
    bob = new_client(homeserver)
    try:
        # Registration: nio's register() uses the m.login.dummy flow.
        resp = expect(
            await alice_reg.register("nio_alice", "alice-password", "nio reg"),
            RegisterResponse,
            "register A",
        )
        alice_id = resp.user_id
        check(alice_id.startswith("@nio_alice:"), f"register A: user_id {alice_id!r}")
        check(bool(resp.access_token), "register A: no access_token")
        check(bool(resp.device_id), "register A: no device_id")
        server_name = alice_id.split(":", 1)[1]
        step(f"register A -> {alice_id} (device {resp.device_id})")

        resp = expect(
            await bob.register("nio_bob", "bob-password", "nio bob"),
            RegisterResponse,
            "register B",
        )
        bob_id = resp.user_id
        check(bob_id == f"@nio_bob:{server_name}", f"register B: user_id {bob_id!r}")
        check(bob.access_token == resp.access_token, "register B: client not logged in")
        step(f"register B -> {bob_id}")

        # A logs in with the password on a second client and works from there.
        alice = new_client(homeserver, user="nio_alice")
        resp = expect(
            await alice.login(password="alice-password", device_name="nio login"),
            LoginResponse,
            "login A",
        )
        check(resp.user_id == alice_id, f"login A: user_id {resp.user_id!r}")
        check(
            resp.access_token != alice_reg.access_token,
            "login A: same access token as registration",
        )
        check(alice.logged_in, "login A: client not logged in")
        step(f"login A with password -> device {resp.device_id}")

        # A creates a public room with an alias.
        resp = expect(
            await alice.room_create(
                visibility=RoomVisibility.public,
                alias=ALIAS,
                name="nio flow",
                topic="driven by matrix-nio",
            ),
            RoomCreateResponse,
            "room_create",
        )
        room_id = resp.room_id
        check(room_id.startswith("!"), f"room_create: room_id {room_id!r}")
        alias = f"#{ALIAS}:{server_name}"
        step(f"A creates {room_id} with alias {alias}")

        # B joins by alias.
        resp = expect(await bob.join(alias), JoinResponse, f"B joins {alias}")
        check(resp.room_id == room_id, f"join: room_id {resp.room_id!r} != {room_id!r}")
        step(f"B joins by alias {alias} -> {resp.room_id}")

        # A sends a first batch.
        sent = []

        async def send(body):
            resp = expect(
                await alice.room_send(
                    room_id, "m.room.message", {"msgtype": "m.text", "body": body}
                ),
                RoomSendResponse,
                f"room_send {body!r}",
            )
            check(resp.event_id.startswith("$"), f"room_send: event_id {resp.event_id!r}")
            sent.append((resp.event_id, body))

        for i in range(1, 4):
            await send(f"message {i}")
        step(f"A sends {len(sent)} messages")

        # B's initial sync, full state: the room is joined, the batch ends its timeline.
        resp = expect(
            await bob.sync(timeout=SYNC_TIMEOUT_MS, full_state=True),
            SyncResponse,
            "B initial sync",
        )
        check(room_id in resp.rooms.join, f"initial sync: {room_id} not in rooms.join")
        room = resp.rooms.join[room_id]
        no_bad_events(room.timeline.events, "initial sync timeline")
        no_bad_events(room.state, "initial sync state")
        got = [(e.event_id, e.body) for e in texts(room.timeline.events)]
        check(got == sent, f"initial sync: messages {got}, expected {sent}")
        for e in texts(room.timeline.events):
            check(e.sender == alice_id, f"initial sync: sender {e.sender!r}")
        check(bool(resp.next_batch), "initial sync: no next_batch")
        check(bob.next_batch == resp.next_batch, "initial sync: nio did not keep next_batch")
        members = {
            e.state_key: e.membership
            for e in list(room.state) + list(room.timeline.events)
            if isinstance(e, RoomMemberEvent)
        }
        check(
            members.get(alice_id) == "join" and members.get(bob_id) == "join",
            f"initial sync: memberships {members}",
        )
        nio_room = bob.rooms.get(room_id)
        check(nio_room is not None, "initial sync: nio has no room object")
        check(
            nio_room.name == "nio flow",
            f"initial sync: room name {nio_room.name!r}",
        )
        check(
            nio_room.canonical_alias == alias,
            f"initial sync: canonical alias {nio_room.canonical_alias!r}",
        )
        step(
            f"B initial sync (full_state) sees {len(got)} messages in rooms.join, "
            f"next_batch {resp.next_batch}"
        )

        # A sends a second batch; B's incremental sync sees exactly it.
        first_batch = list(sent)
        for i in range(4, 7):
            await send(f"message {i}")
        second_batch = sent[len(first_batch):]
        since = bob.next_batch
        resp = expect(
            await bob.sync(timeout=SYNC_TIMEOUT_MS, since=since),
            SyncResponse,
            "B incremental sync",
        )
        check(room_id in resp.rooms.join, f"incremental sync: {room_id} not in rooms.join")
        room = resp.rooms.join[room_id]
        no_bad_events(room.timeline.events, "incremental sync timeline")
        got = [(e.event_id, e.body) for e in texts(room.timeline.events)]
        check(
            got == second_batch,
            f"incremental sync: messages {got}, expected {second_batch}",
        )
        check(resp.next_batch != since, "incremental sync: next_batch did not move")
        prev_batch = room.timeline.prev_batch
        check(bool(prev_batch), "incremental sync: no timeline.prev_batch")
        step(f"B incremental sync since {since} sees {len(got)} new messages")

        # B paginates back from the timeline's prev_batch to the room's creation,
        # a few events a page.
        paged = []
        token = prev_batch
        reached_create = False
        for _ in range(50):
            resp = expect(
                await bob.room_messages(
                    room_id, start=token, direction=MessageDirection.back, limit=3
                ),
                RoomMessagesResponse,
                f"room_messages from {token}",
            )
            no_bad_events(resp.chunk, "room_messages chunk")
            paged.extend(resp.chunk)
            if any(isinstance(e, RoomCreateEvent) for e in resp.chunk):
                reached_create = True
            if not resp.chunk or not resp.end or resp.end == token:
                break
            token = resp.end
        else:
            raise FlowError("room_messages: no end after 50 pages")
        check(reached_create, "room_messages: never reached m.room.create")
        ids = [e.event_id for e in paged]
        check(len(ids) == len(set(ids)), "room_messages: an event came twice")
        back = [(e.event_id, e.body) for e in texts(paged)]
        check(
            back == list(reversed(first_batch)),
            f"room_messages: {back}, expected newest first {list(reversed(first_batch))}",
        )
        check(
            list(reversed(back)) + got == sent,
            "room_messages + timeline do not give every message in order",
        )
        check(
            isinstance(paged[-1], RoomCreateEvent),
            f"room_messages: oldest event is {type(paged[-1]).__name__}, not m.room.create",
        )
        step(
            f"B paginates back from prev_batch: {len(paged)} events, "
            f"all {len(sent)} messages in order"
        )

        # A sets a display name; B sees the new member event, and the profile has it.
        expect(
            await alice.set_displayname(DISPLAYNAME),
            ProfileSetDisplayNameResponse,
            "set_displayname",
        )
        step(f"A sets displayname {DISPLAYNAME!r}")

        since = bob.next_batch
        member = None
        for _ in range(5):
            resp = expect(
                await bob.sync(timeout=SYNC_TIMEOUT_MS, since=since),
                SyncResponse,
                "B sync after displayname",
            )
            since = resp.next_batch
            room = resp.rooms.join.get(room_id)
            if room is None:
                continue
            no_bad_events(room.timeline.events, "displayname sync timeline")
            for e in list(room.state) + list(room.timeline.events):
                if isinstance(e, RoomMemberEvent) and e.state_key == alice_id:
                    member = e
            if member is not None:
                break
        check(member is not None, "sync after displayname: no member event for A")
        check(member.membership == "join", f"member event: membership {member.membership!r}")
        check(
            member.content.get("displayname") == DISPLAYNAME,
            f"member event: content {member.content}",
        )
        check(
            bob.rooms[room_id].user_name(alice_id) == DISPLAYNAME,
            f"nio room: A's name is {bob.rooms[room_id].user_name(alice_id)!r}",
        )
        step("B syncs and sees A's member event with the new displayname")

        resp = expect(
            await bob.get_displayname(alice_id),
            ProfileGetDisplayNameResponse,
            "get_displayname",
        )
        check(
            resp.displayname == DISPLAYNAME,
            f"get_displayname: {resp.displayname!r}",
        )
        step(f"get_displayname({alice_id}) -> {resp.displayname!r}")
    finally:
        for c in (alice_reg, alice, bob):
            if c is not None:
                await c.close()


def main():
    if len(sys.argv) != 2:
        print("usage: flow.py HOMESERVER_URL", file=sys.stderr)
        return 2
    complaints = NioComplaints()
    logging.getLogger("nio").addHandler(complaints)
    try:
        asyncio.run(flow(sys.argv[1]))
        check(not complaints.records, f"nio logged problems: {complaints.records}")
    except FlowError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a transport error or a nio exception: show where
        traceback.print_exc()
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("all steps passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

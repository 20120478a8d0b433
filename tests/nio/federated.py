"""matrix-nio on both ends of a federated room: Bob on Synapse makes a room with an alias and
says something; Alice, a nio client of Plugboard, joins by that alias (resolved and joined
over federation), reads what Bob says next through her sync, answers, and pages back to
what Bob said before she came.

Usage: python federated.py PLUGBOARD_URL SYNAPSE_URL BOB_USER_ID BOB_ACCESS_TOKEN

Run by tests/tests/nio.rs. Prints one line per step; on any failure prints what went wrong
to stderr and exits non-zero.
"""

import asyncio
import logging
import sys
import time
import traceback

from flow import (
    FlowError,
    NioComplaints,
    check,
    expect,
    new_client,
    no_bad_events,
    step,
    texts,
)
from nio import (
    JoinResponse,
    MessageDirection,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
)

SYNC_TIMEOUT_MS = 5_000
# Federation on a loaded test machine: generous, and only spent when something is wrong.
PATIENCE_S = 60


async def say(client, room_id, body):
    resp = expect(
        await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body}),
        RoomSendResponse,
        f"room_send {body!r}",
    )
    return resp.event_id


async def wait_for_text(client, room_id, body, who):
    """Syncs `client` until `body` shows in `room_id`'s timeline; answers that event."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        resp = expect(await client.sync(timeout=SYNC_TIMEOUT_MS), SyncResponse, f"{who} sync")
        room = resp.rooms.join.get(room_id)
        if room is not None:
            no_bad_events(room.timeline.events, f"{who}'s sync timeline")
            for e in texts(room.timeline.events):
                if e.body == body:
                    return e
    raise FlowError(f"{who} never read {body!r} in {room_id}")


async def federated(plugboard, synapse, bob_id, bob_token):
    alice = new_client(plugboard)
    bob = new_client(synapse, user=bob_id)
    bob.restore_login(bob_id, "BOBDEVICE", bob_token)
    try:
        resp = expect(
            await alice.register("nio_fed_alice", "alice-password", "nio fed"),
            RegisterResponse,
            "register alice on Plugboard",
        )
        alice_id = resp.user_id
        step(f"alice registers on Plugboard -> {alice_id}")

        synapse_name = bob_id.split(":", 1)[1]
        resp = expect(
            await bob.room_create(
                visibility=RoomVisibility.public, alias="nio-fed", name="across servers"
            ),
            RoomCreateResponse,
            "bob creates a room on Synapse",
        )
        room_id = resp.room_id
        alias = f"#nio-fed:{synapse_name}"
        before = await say(bob, room_id, "said before alice came")
        step(f"bob creates {room_id} ({alias}) on Synapse and speaks")

        resp = expect(await alice.join(alias), JoinResponse, f"alice joins {alias}")
        check(resp.room_id == room_id, f"join: room_id {resp.room_id!r} != {room_id!r}")
        step(f"alice joins by alias {alias} over federation")

        # Her first sync has the room joined, with its name from the state Synapse sent.
        resp = expect(await alice.sync(timeout=0, full_state=True), SyncResponse, "alice sync")
        check(room_id in resp.rooms.join, f"alice's sync: {room_id} not joined")
        first_prev_batch = resp.rooms.join[room_id].timeline.prev_batch
        no_bad_events(resp.rooms.join[room_id].state, "alice's sync state")
        check(
            alice.rooms[room_id].name == "across servers",
            f"alice's room name: {alice.rooms[room_id].name!r}",
        )
        step("alice's sync has the room and its name")

        said = await say(bob, room_id, "hello from synapse")
        got = await wait_for_text(alice, room_id, "hello from synapse", "alice")
        check(got.event_id == said, f"alice read {got.event_id}, bob sent {said}")
        check(got.sender == bob_id, f"sender {got.sender!r}")
        step("bob's message reaches alice's sync")

        answered = await say(alice, room_id, "hello from plugboard ✓")
        got = await wait_for_text(bob, room_id, "hello from plugboard ✓", "bob")
        check(got.event_id == answered, f"bob read {got.event_id}, alice sent {answered}")
        check(got.sender == alice_id, f"sender {got.sender!r}")
        step("alice's answer reaches bob's sync on Synapse")

        # Paging back from her first sync's timeline reaches what Bob said before she joined:
        # fetched from Synapse with /backfill.
        found = []
        token = first_prev_batch
        for _ in range(10):
            resp = expect(
                await alice.room_messages(
                    room_id, start=token, direction=MessageDirection.back, limit=20
                ),
                RoomMessagesResponse,
                "alice pages back",
            )
            no_bad_events(resp.chunk, "alice's /messages")
            found += [e.event_id for e in texts(resp.chunk)]
            if before in found or not resp.end or resp.end == token:
                break
            token = resp.end
        check(before in found, f"paging back never reached {before}: {found}")
        step("alice pages back to what bob said before she came")
    finally:
        await alice.close()
        await bob.close()


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    complaints = NioComplaints()
    logging.getLogger("nio").addHandler(complaints)
    try:
        asyncio.run(federated(*sys.argv[1:]))
        check(not complaints.records, f"nio logged problems: {complaints.records}")
    except FlowError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        traceback.print_exc()
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("federated: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

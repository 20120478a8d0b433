"""A bot built on mautrix-python's AppService, a real appservice framework from outside the
project. It registers its bot user through the homeserver, joins rooms it is invited to and
answers "!ping" with "pong". Started by tests/tests/mautrix.rs with:

    bot.py HOMESERVER_URL PORT AS_TOKEN HS_TOKEN

It prints "ready" once it listens and its bot user is registered, and runs until killed.
"""

import asyncio
import logging
import sys

from mautrix.appservice import AppService
from mautrix.types import EventType, Membership


async def main() -> None:
    server, port, as_token, hs_token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    appservice = AppService(
        id="mautrix-test",
        domain="localhost",
        server=server,
        as_token=as_token,
        hs_token=hs_token,
        bot_localpart="mautrixbot",
    )

    async def handle(evt) -> None:
        bot = appservice.intent
        if evt.type == EventType.ROOM_MEMBER:
            if evt.state_key == bot.mxid and evt.content.membership == Membership.INVITE:
                await bot.join_room(evt.room_id)
                print(f"joined {evt.room_id}", flush=True)
        elif evt.type == EventType.ROOM_MESSAGE and evt.sender != bot.mxid:
            if evt.content.body == "!ping":
                await bot.send_notice(evt.room_id, "pong")
                print(f"answered in {evt.room_id}", flush=True)

    appservice.matrix_event_handler(handle)
    await appservice.start(host="127.0.0.1", port=port)
    await appservice.intent.ensure_registered()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

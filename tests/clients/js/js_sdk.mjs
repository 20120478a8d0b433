// matrix-js-sdk (the library under Element Web) with its Rust crypto against a Plugboard
// server, as Element uses it: two users reach PREPARED, alice makes an encrypted room and
// bob decrypts her message, alice bootstraps cross-signing and secret storage with a new key
// backup, and a bot answers in a plain room. Driven by tests/tests/js_sdk.rs:
//
//   node js_sdk.mjs BASE_URL ALICE BOB PASSWORD BOT
//
// Reports one JSON object per line on stdout ({"step": …}); the SDK's own log goes to stderr.
// Every wait is bounded; any failure ends the script with a non-zero status.

// Node 20 lacks Promise.withResolvers, which the SDK uses; define it before importing it.
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");

const [baseUrl, aliceId, bobId, password, botId] = process.argv.slice(2);
const WAIT_MS = 30_000;
const PLAINTEXT = "the owl flies at midnight";
const COMMAND = "!echo hello from matrix-js-sdk";

// The SDK logs through loglevel to the console; keep stdout for the report.
logger.setLevel("warn");
for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
}

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

/** Resolves when `check` (re-run on each of `events` of `emitter`) answers a value. */
function waitFor(what, emitter, events, check) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`));
    }, WAIT_MS);
    const listener = async () => {
      try {
        const value = await check();
        if (value !== undefined && value !== null && value !== false) {
          stop();
          resolve(value);
        }
      } catch (e) {
        stop();
        reject(e);
      }
    };
    function stop() {
      clearTimeout(timer);
      for (const e of events) emitter.removeListener(e, listener);
    }
    for (const e of events) emitter.on(e, listener);
    listener();
  });
}

/** Resolves with what `check` answers once it answers something, asking every 200 ms. */
async function poll(what, check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A password login, as Element does it (user identifier), for `auth` and for UIA. */
function passwordAuth(userId) {
  return { type: "m.login.password", identifier: { type: "m.id.user", user: userId }, password };
}

/** Logs `userId` in on a new device, starts its Rust crypto and sync, waits for PREPARED. */
async function start(userId) {
  const login = await sdk.createClient({ baseUrl }).loginRequest(passwordAuth(userId));
  // Secret storage keys made by bootstrapSecretStorage, handed back when the SDK asks.
  const secretKeys = new Map();
  const client = sdk.createClient({
    baseUrl,
    userId: login.user_id,
    deviceId: login.device_id,
    accessToken: login.access_token,
    cryptoCallbacks: {
      cacheSecretStorageKey: (keyId, _info, key) => secretKeys.set(keyId, key),
      getSecretStorageKey: async ({ keys }) => {
        const id = Object.keys(keys).find((k) => secretKeys.has(k));
        return id ? [id, secretKeys.get(id)] : null;
      },
    },
  });
  await client.initRustCrypto({ useIndexedDB: false });
  await client.startClient({ initialSyncLimit: 20 });
  await waitFor(`${userId} to reach PREPARED`, client, [sdk.ClientEvent.Sync], () =>
    ["PREPARED", "SYNCING"].includes(client.getSyncState()),
  );
  report("prepared", { user: userId, device: login.device_id });
  return client;
}

function membership(client, roomId, userId) {
  return client.getRoom(roomId)?.getMember(userId)?.membership;
}

/** Waits until `userId` is joined to `roomId` as `client` sees it. */
function joined(client, roomId, userId) {
  return waitFor(
    `${userId} to join ${roomId}`,
    client,
    [sdk.RoomStateEvent.Members, sdk.ClientEvent.Room],
    () => membership(client, roomId, userId) === "join",
  );
}

/** Waits for an event of `sender` in `roomId`'s live timeline that `matches`. */
function timelineEvent(what, client, roomId, sender, matches) {
  return waitFor(what, client, [sdk.RoomEvent.Timeline, sdk.MatrixEventEvent.Decrypted], () =>
    client
      .getRoom(roomId)
      ?.getLiveTimeline()
      .getEvents()
      .find((e) => e.getSender() === sender && matches(e)),
  );
}

const alice = await start(aliceId);
const bob = await start(bobId);

// An encrypted room as Element makes one: the encryption event in the initial state.
const { room_id: secretRoom } = await alice.createRoom({
  preset: sdk.Preset.PrivateChat,
  invite: [bobId],
  initial_state: [
    {
      type: "m.room.encryption",
      state_key: "",
      content: { algorithm: "m.megolm.v1.aes-sha2" },
    },
  ],
});
report("room_created", { room_id: secretRoom });
await waitFor(
  `bob's invite to ${secretRoom}`,
  bob,
  [sdk.ClientEvent.Room, sdk.RoomEvent.MyMembership],
  () => bob.getRoom(secretRoom)?.getMyMembership() === "invite",
);
await bob.joinRoom(secretRoom);
await joined(alice, secretRoom, bobId);
report("joined", { user: bobId });

const { event_id: secretEvent } = await alice.sendTextMessage(secretRoom, PLAINTEXT);
// Decryption may fail first and succeed once the room key arrives by to-device message.
const received = await timelineEvent(
  "bob to decrypt alice's message",
  bob,
  secretRoom,
  aliceId,
  (e) => e.getId() === secretEvent && e.getType() === "m.room.message" && !e.isDecryptionFailure(),
).catch((error) => {
  const seen = bob.getRoom(secretRoom)?.findEventById(secretEvent);
  throw new Error(`${error.message}; bob has ${JSON.stringify(seen?.getEffectiveEvent())}`);
});
report("decrypted", {
  event_id: secretEvent,
  wire_type: received.getWireType(),
  type: received.getType(),
  body: received.getContent().body,
});

// Cross-signing, its keys uploaded behind the password stage of user-interactive auth.
const crypto = alice.getCrypto();
await crypto.bootstrapCrossSigning({
  authUploadDeviceSigningKeys: async (makeRequest) => {
    await makeRequest(passwordAuth(aliceId));
  },
});
report("cross_signing", { ready: await crypto.isCrossSigningReady() });
// Bob learns of alice's new identity through his device list changes, and sees her device
// signed by it (her signature upload).
const aliceDevice = alice.getDeviceId();
await poll("bob to see alice's device signed by her identity", async () => {
  const identity = await bob.getCrypto().getUserVerificationStatus(aliceId);
  const device = await bob.getCrypto().getDeviceVerificationStatus(aliceId, aliceDevice);
  return identity.known && device?.signedByOwner;
});
report("bob_sees_identity", { device: aliceDevice });

// Secret storage with a new key backup, as Element's "set up secure backup" does.
const recoveryKey = await crypto.createRecoveryKeyFromPassphrase();
await crypto.bootstrapSecretStorage({
  createSecretStorageKey: async () => recoveryKey,
  setupNewKeyBackup: true,
});
// The room key of the message sent above goes into the new backup.
const backedUp = await poll("alice's room key in the backup", async () => {
  const info = await alice.http.authedRequest(sdk.Method.Get, "/room_keys/version");
  return info.count > 0 ? info : null;
});
report("key_backup", {
  version: await crypto.getActiveSessionBackupVersion(),
  secret_storage_ready: await crypto.isSecretStorageReady(),
  count: backedUp.count,
});

// A bot plugin answers a command in a plain room.
const { room_id: botRoom } = await alice.createRoom({
  preset: sdk.Preset.PrivateChat,
  invite: [botId],
});
await joined(alice, botRoom, botId);
await alice.sendTextMessage(botRoom, COMMAND);
const answer = await timelineEvent("the bot's answer", alice, botRoom, botId, (e) =>
  e.getType() === "m.room.message" && e.getContent().body?.endsWith("hello from matrix-js-sdk"),
);
report("bot_answered", { body: answer.getContent().body, msgtype: answer.getContent().msgtype });

alice.stopClient();
bob.stopClient();
report("done");
process.exit(0);

// A small bot in JavaScript against Plugboard's WIT package (wit/): it joins rooms it is
// invited to and answers `!js TEXT` with "javascript says: TEXT" as a notice in reply.
// Built with componentize-js: see README.md.

import { join, sendEvent, sender } from 'plugboard:appservice/homeserver@0.1.0';
import { write } from 'plugboard:appservice/log@0.1.0';

let prefix = '!';

export function init(config) {
  prefix = JSON.parse(config).prefix ?? '!';
  write('info', 'javascript bot ready', [['prefix', prefix]]);
}

function reply(event, text) {
  const content = {
    msgtype: 'm.notice',
    body: text,
    'm.relates_to': { 'm.in_reply_to': { event_id: event.eventId } },
    'm.mentions': { user_ids: [event.sender] },
  };
  // The txn id makes the send idempotent when the transaction is delivered again.
  sendEvent(undefined, event.roomId, 'm.room.message', JSON.stringify(content), `js.${event.eventId}`);
}

export function onTransaction(txn) {
  const me = sender();
  for (const event of txn.events) {
    if (event.fromOwnUser) continue;
    let content;
    try {
      content = JSON.parse(event.content);
    } catch {
      continue;
    }
    if (content === null || typeof content !== 'object') continue;
    if (event.eventType === 'm.room.member' && event.stateKey === me && content.membership === 'invite') {
      join(undefined, event.roomId);
      continue;
    }
    if (event.eventType !== 'm.room.message' || typeof content.body !== 'string') continue;
    if (content.body.startsWith(`${prefix}js `)) {
      reply(event, `javascript says: ${content.body.slice(prefix.length + 3).trim()}`);
    }
  }
}

export function onTimer(_key, _payload) {}

export function queryUser(_user) {
  return false;
}

export function queryAlias(_alias) {
  return false;
}

export function handleHttp(_request) {
  return {
    status: 200,
    headers: [['content-type', 'text/plain']],
    body: new TextEncoder().encode('a javascript plugin\n'),
  };
}

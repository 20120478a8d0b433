//! The [`Plugin`] trait a plugin author implements, and the runner that the
//! [`export_plugin!`](crate::export_plugin) macro connects to the component's exports: it
//! keeps the plugin's value between calls, parses each transaction's events and sends each
//! to the handler for its kind (commands first for text messages).

use crate::command::Commands;
use crate::config::Config;
use crate::events::{CallEvent, EventKind, Membership, Message, Midi, Reaction, Redaction};
use crate::homeserver;
use crate::types::{DeviceKeys, Ephemeral, Error, Event, HttpRequest, HttpResponse, ToDevice};

/// A plugin. Every handler has a default that does nothing, so a plugin implements only what
/// it needs. A handler's `Err` fails the whole transaction: the server delivers it again, with
/// the same txn id, after a pause; return `Err` only for what a retry can fix, and answer bad
/// input in the room instead. An error no retry can fix ([`Error::is_permanent`]: a send
/// refused as forbidden or too large, say) is logged and the handling goes on with the next
/// event, so that one room where the bot may not speak does not hold up all the others.
///
/// The host may start a fresh instance at any time (after a trap, an upgrade, a restart), so
/// what must last goes into [`kv`](crate::kv), not into the plugin's fields.
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from its configuration: the manifest's `[config]` with the admin's
    /// settings over it. An error keeps the plugin from starting.
    fn init(config: &Config) -> Result<Self, Error>;

    /// The commands the plugin answers (none by default).
    fn commands(&self) -> Commands<Self> {
        Commands::none()
    }

    /// Whether events sent by the plugin's own users reach its handlers. Off by default, so a
    /// bot never answers itself.
    fn sees_own_events(&self) -> bool {
        false
    }

    /// A text, notice, emote or file message that is not a command.
    fn on_message(&mut self, event: &Event, message: &Message) -> Result<(), Error> {
        let _ = (event, message);
        Ok(())
    }

    /// A membership change. By default the plugin's sender accepts invites
    /// ([`Plugin::accepts_invite`]).
    fn on_membership(&mut self, event: &Event, member: &Membership) -> Result<(), Error> {
        homeserver::join_if_invited(event, member, || self.accepts_invite(event));
        Ok(())
    }

    /// Whether the plugin's sender joins a room it is invited to by `event.sender`. By
    /// default, whether the configuration's `invite_from` lets the inviter in
    /// ([`invite`](crate::invite)).
    fn accepts_invite(&self, event: &Event) -> bool {
        crate::invite::allowed(&event.sender)
    }

    /// A VoIP signalling event.
    fn on_call(&mut self, event: &Event, call: &CallEvent) -> Result<(), Error> {
        let _ = (event, call);
        Ok(())
    }

    /// A reaction to an event.
    fn on_reaction(&mut self, event: &Event, reaction: &Reaction) -> Result<(), Error> {
        let _ = (event, reaction);
        Ok(())
    }

    /// A redaction of an event.
    fn on_redaction(&mut self, event: &Event, redaction: &Redaction) -> Result<(), Error> {
        let _ = (event, redaction);
        Ok(())
    }

    /// A MIDI note (the talk's `org.matrix.midi`), as sent: check its ranges.
    fn on_midi(&mut self, event: &Event, midi: &Midi) -> Result<(), Error> {
        let _ = (event, midi);
        Ok(())
    }

    /// An event of a type the SDK has no view of; its content is JSON in `event.content`.
    fn on_other(&mut self, event: &Event) -> Result<(), Error> {
        let _ = event;
        Ok(())
    }

    /// An event of a known type whose content is not what the spec says. Logged and passed
    /// over by default.
    fn on_malformed(&mut self, event: &Event, why: &str) -> Result<(), Error> {
        crate::log::debug(&format!(
            "ignoring a malformed {} ({}): {why}",
            event.event_type, event.event_id
        ));
        Ok(())
    }

    /// A typing notice or receipt (with `receive_ephemeral` in the manifest).
    fn on_ephemeral(&mut self, ephemeral: &Ephemeral) -> Result<(), Error> {
        let _ = ephemeral;
        Ok(())
    }

    /// A to-device message for a device of one of the plugin's users (with `e2ee = true` in
    /// the manifest). Each comes once, in stream order with the events.
    fn on_to_device(&mut self, message: &ToDevice) -> Result<(), Error> {
        let _ = message;
        Ok(())
    }

    /// What a transaction says of keys (with `e2ee = true`): the users whose devices or keys
    /// changed, that the plugin tracks, and the key state of its devices (one-time keys
    /// left, unused fallback keys), when it carries either.
    fn on_device_keys(&mut self, changed: &[String], keys: &[DeviceKeys]) -> Result<(), Error> {
        let _ = (changed, keys);
        Ok(())
    }

    /// A timer set with [`timers::set_timer`](crate::timers::set_timer) fell due.
    fn on_timer(&mut self, key: &str, payload: &str) -> Result<(), Error> {
        let _ = (key, payload);
        Ok(())
    }

    /// A user in the plugin's namespace was looked up and does not exist: answer `true`
    /// once it has been registered.
    fn query_user(&mut self, user_id: &str) -> bool {
        let _ = user_id;
        false
    }

    /// An alias in the plugin's namespace was looked up and does not exist: answer `true`
    /// once a room has it.
    fn query_alias(&mut self, alias: &str) -> bool {
        let _ = alias;
        false
    }

    /// A request to `/_plugboard/plugins/{id}/…`.
    fn handle_http(&mut self, request: &HttpRequest) -> HttpResponse {
        let _ = request;
        HttpResponse::not_found()
    }
}

/// Sends one event to the plugin's handler for its kind.
fn handle<P: Plugin>(plugin: &mut P, commands: &Commands<P>, event: &Event) -> Result<(), Error> {
    match event.kind() {
        EventKind::Message(m) => {
            if m.msgtype == crate::events::MsgType::Text {
                if let Some(done) = commands.dispatch(plugin, event, m.text_without_fallback()) {
                    return done;
                }
            }
            plugin.on_message(event, &m)
        }
        EventKind::Member(m) => plugin.on_membership(event, &m),
        EventKind::Call(c) => plugin.on_call(event, &c),
        EventKind::Reaction(r) => plugin.on_reaction(event, &r),
        EventKind::Redaction(r) => plugin.on_redaction(event, &r),
        EventKind::Midi(m) => plugin.on_midi(event, &m),
        EventKind::Other => plugin.on_other(event),
        EventKind::Malformed(why) => plugin.on_malformed(event, &why),
    }
}

#[doc(hidden)]
pub mod runner {
    //! What the exports call: one plugin value per instance, kept between calls.

    use std::any::Any;
    use std::cell::RefCell;

    use super::{handle, Plugin};
    use crate::command::Commands;
    use crate::config::Config;
    use crate::types::{Error, HttpRequest, HttpResponse, Transaction};

    struct Running<P> {
        plugin: P,
        commands: Commands<P>,
    }

    thread_local! {
        static RUNNING: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    fn with<P: Plugin, R>(f: impl FnOnce(&mut Running<P>) -> R) -> Result<R, Error> {
        RUNNING.with(|cell| {
            let mut slot = cell.borrow_mut();
            match slot.as_mut().and_then(|b| b.downcast_mut::<Running<P>>()) {
                Some(running) => Ok(f(running)),
                None => Err(Error::unknown("the plugin was called before init")),
            }
        })
    }

    pub fn init<P: Plugin>(config: &str) -> Result<(), Error> {
        let config = Config::parse(config)?;
        crate::invite::set_policy(crate::invite::InvitePolicy::from_config(&config)?);
        let plugin = P::init(&config)?;
        let commands = plugin.commands();
        RUNNING.with(|cell| {
            *cell.borrow_mut() = Some(Box::new(Running { plugin, commands }));
        });
        Ok(())
    }

    pub fn on_transaction<P: Plugin>(mut txn: Transaction) -> Result<(), Error> {
        txn.add_extras(crate::host::with(|h| h.transaction_extras()));
        crate::homeserver::handling(Some(&txn.txn_id));
        let done = with::<P, _>(|r| {
            let sees_own = r.plugin.sees_own_events();
            for event in &txn.events {
                if event.from_own_user && !sees_own {
                    continue;
                }
                let handled = handle(&mut r.plugin, &r.commands, event);
                passed_over(handled, &event.event_id)?;
            }
            for e in &txn.ephemeral {
                passed_over(r.plugin.on_ephemeral(e), &e.event_type)?;
            }
            for m in &txn.to_device {
                passed_over(r.plugin.on_to_device(m), &m.event_type)?;
            }
            if !txn.device_lists_changed.is_empty() || !txn.device_keys.is_empty() {
                let keys = r
                    .plugin
                    .on_device_keys(&txn.device_lists_changed, &txn.device_keys);
                passed_over(keys, "device keys")?;
            }
            Ok(())
        });
        crate::homeserver::handling(None);
        done?
    }

    pub fn on_timer<P: Plugin>(key: &str, payload: &str) -> Result<(), Error> {
        passed_over(with::<P, _>(|r| r.plugin.on_timer(key, payload))?, key)
    }

    /// A handler's answer for the call: `Ok` for a permanent error, logged (see
    /// [`Plugin`]); other errors fail the call, for the server to retry it.
    fn passed_over(handled: Result<(), Error>, what: &str) -> Result<(), Error> {
        match handled {
            Err(e) if e.is_permanent() => {
                crate::log::warn(&format!(
                    "{what}: passed over: {}: {}",
                    e.errcode, e.message
                ));
                Ok(())
            }
            other => other,
        }
    }

    pub fn query_user<P: Plugin>(user: &str) -> bool {
        with::<P, _>(|r| r.plugin.query_user(user)).unwrap_or(false)
    }

    pub fn query_alias<P: Plugin>(alias: &str) -> bool {
        with::<P, _>(|r| r.plugin.query_alias(alias)).unwrap_or(false)
    }

    pub fn handle_http<P: Plugin>(request: &HttpRequest) -> HttpResponse {
        with::<P, _>(|r| r.plugin.handle_http(request))
            .unwrap_or_else(|e| HttpResponse::error(500, &e.errcode, &e.message))
    }

    /// Forgets the plugin value of this thread (the test harness, between plugins).
    pub fn reset() {
        RUNNING.with(|cell| *cell.borrow_mut() = None);
        crate::invite::set_policy(Default::default());
    }
}

//! Where the SDK's calls go: into the real host through the WIT imports when the plugin runs
//! as a component, or into the `testing` harness's fake when it runs
//! natively under `cargo test`. One method per imported function.

use std::cell::RefCell;

use crate::bindings::plugboard::appservice::e2ee;
use crate::bindings::plugboard::appservice::homeserver::{Media, Member, RoomAccess, RoomOptions};
use crate::bindings::plugboard::appservice::log::Level;
use crate::bindings::plugboard::appservice::types::Event as WitEvent;
use crate::types::Error;

pub trait Host {
    fn sender(&mut self) -> String;
    fn public_base_url(&mut self) -> String;
    fn register_user(&mut self, localpart: &str) -> Result<String, Error>;
    fn send_event(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event_type: &str,
        content: &str,
        txn_id: Option<&str>,
    ) -> Result<String, Error>;
    fn send_state(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event_type: &str,
        state_key: &str,
        content: &str,
    ) -> Result<String, Error>;
    fn redact(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event: &str,
        reason: Option<&str>,
    ) -> Result<String, Error>;
    fn create_room(
        &mut self,
        as_user: Option<&str>,
        options: &RoomOptions,
    ) -> Result<String, Error>;
    fn join(&mut self, as_user: Option<&str>, room: &str) -> Result<String, Error>;
    fn invite(&mut self, as_user: Option<&str>, room: &str, user: &str) -> Result<(), Error>;
    fn leave(&mut self, as_user: Option<&str>, room: &str) -> Result<(), Error>;
    fn kick(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        user: &str,
        reason: Option<&str>,
    ) -> Result<(), Error>;
    fn ban(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        user: &str,
        reason: Option<&str>,
    ) -> Result<(), Error>;
    fn set_displayname(&mut self, as_user: Option<&str>, name: Option<&str>) -> Result<(), Error>;
    fn set_avatar(&mut self, as_user: Option<&str>, url: Option<&str>) -> Result<(), Error>;
    fn resolve_alias(&mut self, alias: &str) -> Result<String, Error>;
    fn create_alias(&mut self, as_user: Option<&str>, alias: &str, room: &str)
        -> Result<(), Error>;
    fn get_state(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<String, Error>;
    fn get_event(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event: &str,
    ) -> Result<WitEvent, Error>;
    fn room_members(&mut self, as_user: Option<&str>, room: &str) -> Result<Vec<Member>, Error>;
    fn joined_rooms(&mut self, as_user: Option<&str>) -> Result<Vec<String>, Error>;
    fn access_to_rooms(&mut self, user: &str, rooms: &[String]) -> Result<Vec<RoomAccess>, Error>;
    fn visible_events(&mut self, user: &str, events: &[String]) -> Result<Vec<String>, Error>;
    fn is_server_admin(&mut self, user: &str) -> Result<bool, Error>;
    fn upload_media(
        &mut self,
        as_user: Option<&str>,
        content_type: &str,
        filename: Option<&str>,
        data: &[u8],
    ) -> Result<String, Error>;
    fn download_media(&mut self, uri: &str) -> Result<Media, Error>;

    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), Error>;
    fn kv_delete(&mut self, key: &str) -> Result<bool, Error>;
    fn kv_list_keys(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, Error>;
    fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, Error>;

    fn log(&mut self, level: Level, message: &str, fields: &[(String, String)]);

    fn set_timer(&mut self, key: &str, after_ms: u64, payload: &str) -> Result<(), Error>;
    fn cancel_timer(&mut self, key: &str) -> bool;
    fn now_ms(&mut self) -> u64;
    fn random_u64(&mut self) -> u64;

    fn http(&mut self, request: &crate::http::Request) -> Result<crate::http::Response, Error>;

    fn transaction_extras(&mut self) -> e2ee::Extras;
    fn create_device(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<bool, Error>;
    fn delete_device(&mut self, as_user: Option<&str>, device_id: &str) -> Result<(), Error>;
    fn upload_keys(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        keys: &str,
    ) -> Result<String, Error>;
    fn query_keys(&mut self, as_user: Option<&str>, query: &str) -> Result<String, Error>;
    fn claim_keys(&mut self, as_user: Option<&str>, claim: &str) -> Result<String, Error>;
    fn send_to_device(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        event_type: &str,
        txn_id: &str,
        messages: &str,
    ) -> Result<(), Error>;
}

/// The real host, through the component's imports.
struct Wit;

impl Host for Wit {
    fn sender(&mut self) -> String {
        crate::bindings::plugboard::appservice::homeserver::sender()
    }
    fn public_base_url(&mut self) -> String {
        crate::bindings::plugboard::appservice::homeserver::public_base_url()
    }
    fn register_user(&mut self, localpart: &str) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::register_user(localpart)
    }
    fn send_event(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event_type: &str,
        content: &str,
        txn_id: Option<&str>,
    ) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::send_event(
            as_user, room, event_type, content, txn_id,
        )
    }
    fn send_state(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event_type: &str,
        state_key: &str,
        content: &str,
    ) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::send_state(
            as_user, room, event_type, state_key, content,
        )
    }
    fn redact(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event: &str,
        reason: Option<&str>,
    ) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::redact(as_user, room, event, reason)
    }
    fn create_room(
        &mut self,
        as_user: Option<&str>,
        options: &RoomOptions,
    ) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::create_room(as_user, options)
    }
    fn join(&mut self, as_user: Option<&str>, room: &str) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::join(as_user, room)
    }
    fn invite(&mut self, as_user: Option<&str>, room: &str, user: &str) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::homeserver::invite(as_user, room, user)
    }
    fn leave(&mut self, as_user: Option<&str>, room: &str) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::homeserver::leave(as_user, room)
    }
    fn kick(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        user: &str,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::homeserver::kick(as_user, room, user, reason)
    }
    fn ban(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        user: &str,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::homeserver::ban(as_user, room, user, reason)
    }
    fn set_displayname(&mut self, as_user: Option<&str>, name: Option<&str>) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::homeserver::set_displayname(as_user, name)
    }
    fn set_avatar(&mut self, as_user: Option<&str>, url: Option<&str>) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::homeserver::set_avatar(as_user, url)
    }
    fn resolve_alias(&mut self, alias: &str) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::resolve_alias(alias)
    }
    fn create_alias(
        &mut self,
        as_user: Option<&str>,
        alias: &str,
        room: &str,
    ) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::homeserver::create_alias(as_user, alias, room)
    }
    fn get_state(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event_type: &str,
        state_key: &str,
    ) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::get_state(
            as_user, room, event_type, state_key,
        )
    }
    fn get_event(
        &mut self,
        as_user: Option<&str>,
        room: &str,
        event: &str,
    ) -> Result<WitEvent, Error> {
        crate::bindings::plugboard::appservice::homeserver::get_event(as_user, room, event)
    }
    fn room_members(&mut self, as_user: Option<&str>, room: &str) -> Result<Vec<Member>, Error> {
        crate::bindings::plugboard::appservice::homeserver::room_members(as_user, room)
    }
    fn joined_rooms(&mut self, as_user: Option<&str>) -> Result<Vec<String>, Error> {
        crate::bindings::plugboard::appservice::homeserver::joined_rooms(as_user)
    }
    fn access_to_rooms(&mut self, user: &str, rooms: &[String]) -> Result<Vec<RoomAccess>, Error> {
        crate::bindings::plugboard::appservice::homeserver::access_to_rooms(user, rooms)
    }
    fn visible_events(&mut self, user: &str, events: &[String]) -> Result<Vec<String>, Error> {
        crate::bindings::plugboard::appservice::homeserver::visible_events(user, events)
    }
    fn is_server_admin(&mut self, user: &str) -> Result<bool, Error> {
        crate::bindings::plugboard::appservice::homeserver::is_server_admin(user)
    }
    fn upload_media(
        &mut self,
        as_user: Option<&str>,
        content_type: &str,
        filename: Option<&str>,
        data: &[u8],
    ) -> Result<String, Error> {
        crate::bindings::plugboard::appservice::homeserver::upload_media(
            as_user,
            content_type,
            filename,
            data,
        )
    }
    fn download_media(&mut self, uri: &str) -> Result<Media, Error> {
        crate::bindings::plugboard::appservice::homeserver::download_media(uri)
    }
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        crate::bindings::plugboard::appservice::kv::get(key)
    }
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::kv::set(key, value)
    }
    fn kv_delete(&mut self, key: &str) -> Result<bool, Error> {
        crate::bindings::plugboard::appservice::kv::delete(key)
    }
    fn kv_list_keys(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, Error> {
        crate::bindings::plugboard::appservice::kv::list_keys(prefix, after, limit)
    }
    fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, Error> {
        crate::bindings::plugboard::appservice::kv::compare_and_swap(key, expected, new)
    }
    fn log(&mut self, level: Level, message: &str, fields: &[(String, String)]) {
        crate::bindings::plugboard::appservice::log::write(level, message, fields)
    }
    fn set_timer(&mut self, key: &str, after_ms: u64, payload: &str) -> Result<(), Error> {
        crate::bindings::plugboard::appservice::timers::set_timer(key, after_ms, payload)
    }
    fn cancel_timer(&mut self, key: &str) -> bool {
        crate::bindings::plugboard::appservice::timers::cancel_timer(key)
    }
    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
    #[cfg(target_arch = "wasm32")]
    fn random_u64(&mut self) -> u64 {
        wasip2::random::random::get_random_u64()
    }
    #[cfg(not(target_arch = "wasm32"))]
    fn random_u64(&mut self) -> u64 {
        unreachable!("natively, the test harness is the host")
    }
    #[cfg(target_arch = "wasm32")]
    fn http(&mut self, request: &crate::http::Request) -> Result<crate::http::Response, Error> {
        crate::http::wasi::fetch(request)
    }
    #[cfg(not(target_arch = "wasm32"))]
    fn http(&mut self, _request: &crate::http::Request) -> Result<crate::http::Response, Error> {
        unreachable!("natively, the test harness is the host")
    }

    fn transaction_extras(&mut self) -> e2ee::Extras {
        e2ee::transaction_extras()
    }
    fn create_device(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<bool, Error> {
        e2ee::create_device(as_user, device_id, display_name)
    }
    fn delete_device(&mut self, as_user: Option<&str>, device_id: &str) -> Result<(), Error> {
        e2ee::delete_device(as_user, device_id)
    }
    fn upload_keys(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        keys: &str,
    ) -> Result<String, Error> {
        e2ee::upload_keys(as_user, device_id, keys)
    }
    fn query_keys(&mut self, as_user: Option<&str>, query: &str) -> Result<String, Error> {
        e2ee::query_keys(as_user, query)
    }
    fn claim_keys(&mut self, as_user: Option<&str>, claim: &str) -> Result<String, Error> {
        e2ee::claim_keys(as_user, claim)
    }
    fn send_to_device(
        &mut self,
        as_user: Option<&str>,
        device_id: &str,
        event_type: &str,
        txn_id: &str,
        messages: &str,
    ) -> Result<(), Error> {
        e2ee::send_to_device(as_user, device_id, event_type, txn_id, messages)
    }
}

thread_local! {
    /// The harness's fake, when one is installed (native tests).
    static FAKE: RefCell<Option<Box<dyn Host>>> = const { RefCell::new(None) };
}

/// Runs `f` against the host: the installed fake, or else the real imports.
pub(crate) fn with<R>(f: impl FnOnce(&mut dyn Host) -> R) -> R {
    FAKE.with(|fake| match fake.borrow_mut().as_mut() {
        Some(host) => f(host.as_mut()),
        None => {
            if cfg!(not(target_arch = "wasm32")) {
                panic!(
                    "no Plugboard host here: natively, run the plugin through \
                     plugboard_sdk::testing::Harness"
                );
            }
            f(&mut Wit)
        }
    })
}

/// Installs (or, with `None`, removes) the fake host of this thread.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn install(host: Option<Box<dyn Host>>) -> Option<Box<dyn Host>> {
    FAKE.with(|fake| std::mem::replace(&mut *fake.borrow_mut(), host))
}

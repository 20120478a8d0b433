//! The plugin author's SDK for Plugboard: write a Matrix bot, bridge or pipeline stage in
//! Rust as a [`Plugin`], export it with [`export_plugin!`], build it for `wasm32-wasip2` and
//! install the `.wasm` with its `plugin.toml`. The SDK hides the WIT bindings; its modules
//! carry the names of the WIT interfaces they wrap ([`homeserver`], [`e2ee`], [`kv`], [`log`],
//! [`timers`]), and `testing` (with the `testing` feature) runs a plugin natively, without
//! wasm, for `cargo test`.
//!
//! ```ignore
//! use plugboard_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     fn init(_config: &Config) -> Result<Self, Error> {
//!         Ok(Echo)
//!     }
//!     fn commands() -> Commands<Self> {
//!         Commands::new("!").command("echo", "TEXT", "says TEXT back", |_, event, args| {
//!             homeserver::reply(event, MsgType::Notice, args.rest())
//!         })
//!     }
//! }
//!
//! export_plugin!(Echo);
//! ```

#![warn(missing_docs)]

extern crate self as plugboard_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub mod bindings;
pub mod clock;
pub mod command;
pub mod config;
pub mod e2ee;
pub mod events;
pub mod homeserver;
mod host;
pub mod http;
pub mod invite;
pub mod kv;
pub mod log;
pub mod message;
mod plugin;
pub mod random;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timers;
pub mod types;

pub use command::{Args, Commands};
pub use config::Config;
pub use events::{EventKind, MsgType};
pub use plugin::Plugin;
pub use types::{
    DeviceKeys, Ephemeral, Error, Event, HttpRequest, HttpResponse, ToDevice, Transaction,
};

/// What most plugins import.
pub mod prelude {
    pub use crate::events::*;
    pub use crate::message::Content;
    pub use crate::{
        clock, e2ee, export_plugin, homeserver, http, kv, log, random, timers, Args, Commands,
        Config, Ephemeral, Error, Event, HttpRequest, HttpResponse, Plugin, Transaction,
    };
}

#[doc(hidden)]
pub mod __runner {
    pub use crate::plugin::runner::*;
}

/// Exports `$plugin` (a type implementing [`Plugin`]) as the component's `plugin` world.
/// Write it once, at the top level of the plugin crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __PlugboardGuest;

        impl $crate::bindings::Guest for __PlugboardGuest {
            fn init(config: String) -> Result<(), $crate::Error> {
                $crate::__runner::init::<$plugin>(&config)
            }
            fn on_transaction(
                txn: $crate::bindings::plugboard::appservice::types::Transaction,
            ) -> Result<(), $crate::Error> {
                $crate::__runner::on_transaction::<$plugin>(txn.into())
            }
            fn on_timer(key: String, payload: String) -> Result<(), $crate::Error> {
                $crate::__runner::on_timer::<$plugin>(&key, &payload)
            }
            fn query_user(user: String) -> bool {
                $crate::__runner::query_user::<$plugin>(&user)
            }
            fn query_alias(alias: String) -> bool {
                $crate::__runner::query_alias::<$plugin>(&alias)
            }
            fn handle_http(request: $crate::HttpRequest) -> $crate::HttpResponse {
                $crate::__runner::handle_http::<$plugin>(&request)
            }
        }

        $crate::bindings::export!(__PlugboardGuest with_types_in $crate::bindings);
    };
}

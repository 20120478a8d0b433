//! Log lines into the server's log with the plugin's id (WIT interface `log`).

use crate::host;

pub use crate::bindings::plugboard::appservice::log::Level;

/// Writes `message` at `level` with structured fields.
pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    host::with(|h| h.log(level, message, &fields));
}

/// A debug line.
pub fn debug(message: &str) {
    write(Level::Debug, message, &[]);
}

/// An info line.
pub fn info(message: &str) {
    write(Level::Info, message, &[]);
}

/// A warning.
pub fn warn(message: &str) {
    write(Level::Warn, message, &[]);
}

/// An error line.
pub fn error(message: &str) {
    write(Level::Error, message, &[]);
}

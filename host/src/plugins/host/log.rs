//! `log`: a plugin's log lines go into the server's tracing output with the plugin's id.

use wasmtime::component::{HasSelf, Linker};

use crate::plugins::bindings::log::{self, Host, Level};
use crate::plugins::guest::Alive;

/// Longest message or field kept; the rest is cut with a note.
const MAX_LINE: usize = 8 * 1024;
/// Fields kept per line.
const MAX_FIELDS: usize = 32;

/// Links `log` into `linker`, its host found in the store's data by `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasSelf<LogCtx>>(linker, get)
}

pub(crate) struct LogCtx {
    plugin: String,
    alive: Alive,
}

impl LogCtx {
    pub(crate) fn new(plugin: String, alive: Alive) -> LogCtx {
        LogCtx { plugin, alive }
    }
}

/// `text` cut to [`MAX_LINE`] bytes at a character boundary.
pub(crate) fn clip(text: &str) -> &str {
    if text.len() <= MAX_LINE {
        return text;
    }
    let mut end = MAX_LINE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Host for LogCtx {
    fn write(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.alive.check()?;
        let fields: Vec<String> = fields
            .iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| format!("{}={}", clip(k), clip(v)))
            .collect();
        let fields = fields.join(" ");
        let message = clip(&message);
        let plugin = self.plugin.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, fields, "{message}"),
            Level::Debug => tracing::debug!(plugin, fields, "{message}"),
            Level::Info => tracing::info!(plugin, fields, "{message}"),
            Level::Warn => tracing::warn!(plugin, fields, "{message}"),
            Level::Error => tracing::error!(plugin, fields, "{message}"),
        }
        Ok(())
    }
}

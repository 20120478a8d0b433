//! What one successful call into a plugin changed, as the runtime collects it from the call's
//! store, and the one write that hands it to storage.

use crate::storage::plugins::{KvWrite, PluginWrite, TimerChange};
use crate::storage::queue::QueueWrite;
use crate::storage::writer::WriteOp;

/// What one successful call into a plugin changed: its key-value writes (a value, or `None`
/// to delete) and its timer changes, each in the order made.
#[derive(Debug, Clone, Default)]
pub(crate) struct PluginEffects {
    pub(crate) plugin_id: String,
    pub(crate) kv: Vec<KvWrite>,
    pub(crate) timers: Vec<TimerChange>,
}

impl PluginEffects {
    /// Whether the call wrote nothing of its own.
    pub(crate) fn is_empty(&self) -> bool {
        self.kv.is_empty() && self.timers.is_empty()
    }

    /// The write committing these effects. For a call that handled a transaction,
    /// `acknowledges` holds the queue steps that acknowledge it: they commit as one, so that
    /// the transaction is never acknowledged without its writes nor its writes kept without
    /// its acknowledgement (a crash in between would hand the plugin its own writes on the
    /// retry).
    pub(crate) fn into_write(self, acknowledges: Vec<QueueWrite>) -> WriteOp {
        WriteOp::Plugin(Box::new(PluginWrite {
            plugin_id: self.plugin_id,
            kv: self.kv,
            timers: self.timers,
            acknowledges,
        }))
    }
}

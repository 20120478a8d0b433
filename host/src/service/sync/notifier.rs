//! Wakes everyone waiting on the stream: /sync long-polls now, the appservice dispatcher
//! later. It holds the highest committed position and the typing serial.

use tokio::sync::watch;

use super::token::Position;

#[derive(Clone)]
pub(crate) struct Notifier {
    tx: watch::Sender<Position>,
}

impl Notifier {
    pub(crate) fn new(start: Position) -> Self {
        let (tx, _) = watch::channel(start);
        Notifier { tx }
    }

    pub(crate) fn position(&self) -> Position {
        *self.tx.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Position> {
        self.tx.subscribe()
    }

    /// Everything up to `stream` is committed.
    pub(crate) fn committed(&self, stream: i64) {
        self.tx.send_if_modified(|p| {
            if stream > p.stream {
                p.stream = stream;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn typing_changed(&self, serial: u64) {
        self.tx.send_if_modified(|p| {
            if serial > p.typing {
                p.typing = serial;
                true
            } else {
                false
            }
        });
    }
}

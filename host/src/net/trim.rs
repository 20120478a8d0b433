//! Gives the heap back to the system after a flood of connections. glibc's allocator keeps
//! what the tasks and buffers of closed connections freed: after 20,000 slow connections had
//! all been closed the server still held 307 MB, and 468 MB after three such floods.

use std::time::Duration;

use tokio::sync::watch;

use super::connection::Table;
use crate::lock::lock;

/// How often the connection table's high-water mark is read. A trim holds the allocator's
/// locks while it hands pages back (36 ms for what 12,000 connections had held, before
/// [`super::connection`] read heads into a small buffer), so the memory of a wave of
/// connections that time out together goes back in pieces, a second's worth at a time.
const EVERY: Duration = Duration::from_secs(1);

/// A fall of this many connections from the period's peak is worth a trim: one that never
/// finished its head held about 3 KB, one that was served more (hyper's buffers: 17 KB); a
/// fall of fewer is noise that the allocator reuses anyway.
const FALL: usize = 1_000;

/// Whether the heap should be trimmed: the connections open now are at least [`FALL`] fewer
/// than the most open at once during the period.
fn should_trim(peak: usize, open: usize) -> bool {
    peak.saturating_sub(open) >= FALL
}

/// Every [`EVERY`], trims the heap when connections fell by [`FALL`] or more; ends with
/// `stop`.
pub(super) async fn run(table: Table, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let (peak, open) = lock(&table).take_peak();
        if should_trim(peak, open) {
            // It walks the heap: off the workers that serve requests.
            let started = std::time::Instant::now();
            let released = tokio::task::spawn_blocking(release).await.unwrap_or(false);
            tracing::debug!(
                peak,
                open,
                released,
                took_ms = started.elapsed().as_millis() as u64,
                "heap trimmed after connections closed"
            );
        }
    }
}

/// Returns the free pages of every arena to the system; whether any was returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() -> bool {
    // SAFETY: malloc_trim only touches the allocator's own state, under its locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fall_of_a_thousand_connections_from_the_peak_trims() {
        assert!(should_trim(18_000, 0));
        assert!(should_trim(1_000, 0));
        assert!(should_trim(5_000, 4_000));
    }

    #[test]
    fn a_steady_or_growing_or_small_count_does_not() {
        assert!(!should_trim(0, 0));
        assert!(!should_trim(999, 0));
        assert!(!should_trim(18_000, 18_000));
        assert!(!should_trim(5_000, 4_001));
    }
}

//! The file-descriptor limit: raised to the hard limit at start-up (the soft limit is often
//! 1024, far below what a server holding one connection per syncing client needs), and the
//! number of connections that leaves room for.

/// The process's `RLIMIT_NOFILE` soft limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdLimit {
    pub(crate) before: u64,
    pub(crate) after: u64,
    pub(crate) hard: u64,
}

/// Raises the soft limit on open files to the hard limit. `None` where the platform has no
/// such limit or it cannot be read.
pub(crate) fn raise() -> std::io::Result<Option<FdLimit>> {
    use rlimit::Resource;
    if !Resource::NOFILE.is_supported() {
        return Ok(None);
    }
    let (before, hard) = Resource::NOFILE.get()?;
    let after = rlimit::increase_nofile_limit(hard)?;
    Ok(Some(FdLimit {
        before,
        after,
        hard,
    }))
}

/// Connections the server may hold when `max_total` is 0 ("auto"): the descriptor limit less a
/// reserve for everything else (the database and its WAL, media files, outbound HTTP to
/// application services, plugin components): a tenth, and at least 256 or half of a small
/// limit.
pub(crate) fn connections_for(limit: u64) -> usize {
    let reserve = (limit / 10).max(256.min(limit / 2));
    usize::try_from(limit - reserve)
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_cap_keeps_a_reserve_of_descriptors() {
        assert_eq!(connections_for(1024), 768);
        assert_eq!(connections_for(20_000), 18_000);
        assert_eq!(connections_for(1_048_576), 943_719);
        assert_eq!(connections_for(200), 100);
        assert_eq!(connections_for(1), 1);
    }

    #[test]
    fn raising_the_limit_puts_the_soft_limit_at_the_hard_limit() {
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        // Lowered first, so that the raise has something to do even where soft = hard.
        let lowered = (hard / 2).max(1);
        rlimit::Resource::NOFILE.set(lowered, hard).unwrap();
        let limit = raise().unwrap().expect("Linux has RLIMIT_NOFILE");
        assert_eq!(limit.before, lowered);
        assert_eq!(limit.after, hard);
        assert_eq!(limit.hard, hard);
        assert_eq!(rlimit::Resource::NOFILE.get().unwrap(), (hard, hard));
    }
}

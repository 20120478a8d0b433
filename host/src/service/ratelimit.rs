//! Token buckets per key (a user, or a client address), for messages, registrations and
//! logins. An exceeded bucket answers how long to wait. An application service is exempt when
//! it acts as its sender, or as any of its users when its registration says
//! `rate_limited: false`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::users::Session;
use super::{Error, Result};
use crate::config::RateLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Message,
    Registration,
    Login,
}

pub struct RateLimiter {
    config: RateLimits,
    buckets: Mutex<HashMap<(Action, String), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(config: RateLimits) -> Self {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn params(&self, action: Action) -> (f64, f64) {
        let c = &self.config;
        match action {
            Action::Message => (c.messages_per_second, c.message_burst as f64),
            Action::Registration => (c.registrations_per_second, c.registration_burst as f64),
            Action::Login => (c.logins_per_second, c.login_burst as f64),
        }
    }

    /// Takes one token for `key`, or says how long until one is there.
    pub fn check(&self, action: Action, key: &str) -> Result<()> {
        self.check_at(action, key, Instant::now())
    }

    /// Takes one token for what `session` does, keyed by its user; an application service's
    /// request that is not rate limited ([`AppserviceSession::rate_limited`]) takes none.
    ///
    /// [`AppserviceSession::rate_limited`]: super::users::AppserviceSession::rate_limited
    pub fn check_session(&self, action: Action, session: &Session) -> Result<()> {
        if session.appservice.as_ref().is_some_and(|a| !a.rate_limited) {
            return Ok(());
        }
        self.check(action, &session.user_id)
    }

    fn check_at(&self, action: Action, key: &str, now: Instant) -> Result<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let (rate, burst) = self.params(action);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry no information: dropping them bounds memory.
            buckets.retain(|(a, _), b| {
                let (r, cap) = self.params(*a);
                b.tokens + now.duration_since(b.updated).as_secs_f64() * r < cap
            });
        }
        let b = buckets.entry((action, key.to_string())).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / rate;
            Err(Error::LimitExceeded {
                retry_after_ms: (wait * 1000.0).ceil() as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter() -> RateLimiter {
        RateLimiter::new(RateLimits {
            enabled: true,
            messages_per_second: 2.0,
            message_burst: 3,
            ..RateLimits::default()
        })
    }

    #[test]
    fn burst_then_refill_at_rate() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check_at(Action::Message, "@a:x", t0).unwrap();
        }
        match l.check_at(Action::Message, "@a:x", t0) {
            Err(Error::LimitExceeded { retry_after_ms }) => assert_eq!(retry_after_ms, 500),
            other => panic!("{other:?}"),
        }
        l.check_at(Action::Message, "@a:x", t0 + Duration::from_millis(500))
            .unwrap();
    }

    #[test]
    fn keys_are_independent() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check_at(Action::Message, "@a:x", t0).unwrap();
        }
        l.check_at(Action::Message, "@b:x", t0).unwrap();
    }

    #[test]
    fn disabled_never_limits() {
        let l = RateLimiter::new(RateLimits {
            enabled: false,
            ..RateLimits::default()
        });
        for _ in 0..1000 {
            l.check(Action::Login, "ip").unwrap();
        }
    }
}

//! Token buckets for everything a client can make the server (and other people) pay for:
//! messages, room creation, state events, joins, invites, profile changes, reports, media
//! uploads, to-device messages, and registrations and logins. A user's request draws from the
//! user's bucket and from its client address's (which holds `address_factor` times as much);
//! an invite also from the room's and the invitee's. The request passes only when every
//! bucket it draws from has enough, and then takes from all of them; otherwise it answers how
//! long to wait. An application service is exempt when it acts as its sender, or as any of
//! its users when its registration says `rate_limited: false`; plugins always are.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::users::Session;
use super::{Error, Result, Services};
use crate::config::RateLimits;
use crate::lock::lock;

/// What a request does, as far as rate limits go. Each has its own rate and burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// Sending a message event, or a redaction.
    Message,
    /// Keyed by client address only.
    Registration,
    /// Keyed by client address only.
    Login,
    RoomCreation,
    StateEvent,
    Join,
    /// Invites a user sends.
    Invite,
    /// Invites into one room, keyed by the room.
    RoomInvite,
    /// Invites one user receives, keyed by the invitee.
    InviteReceived,
    ProfileChange,
    /// Reporting an event, a room or a user.
    Report,
    MediaUpload,
    /// `/sendToDevice` calls.
    ToDevice,
}

/// Whose bucket: the action's own key (a user, a room, an address for registrations), or the
/// client address a user's request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Own,
    Address,
}

/// A bucket's refill rate and size.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    per_second: f64,
    burst: f64,
}

/// A bucket as last seen. `tokens` goes below zero after a request that cost more than the
/// burst (creating a room with many invites): later requests wait until it is paid off.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One bucket a request draws from, and how much.
#[derive(Debug, Clone, Copy)]
struct Draw<'a> {
    action: Action,
    scope: Scope,
    key: &'a str,
    cost: f64,
}

/// Buckets kept before full ones (which carry no information) are dropped.
const MAX_BUCKETS: usize = 100_000;

/// What the token-bucket rule needs to know of one bucket: its tokens after refill, its rate
/// and what the request costs it.
#[derive(Debug, Clone, Copy)]
struct Need {
    tokens: f64,
    rate: Rate,
    cost: f64,
}

/// `tokens` refilled at `rate` for `elapsed` seconds, up to the burst.
fn refill(tokens: f64, rate: Rate, elapsed: f64) -> f64 {
    (tokens + elapsed * rate.per_second).min(rate.burst)
}

/// The rule: a request passes when every bucket holds its cost, or the whole burst when the
/// cost is larger (so that a request bigger than the burst can pass at all, and then leaves
/// the bucket in debt). Otherwise, the milliseconds until the emptiest bucket has enough.
fn decide(needs: &[Need]) -> std::result::Result<(), u64> {
    let mut wait: f64 = 0.0;
    for n in needs {
        let enough = n.cost.min(n.rate.burst);
        if n.tokens < enough {
            wait = wait.max((enough - n.tokens) / n.rate.per_second);
        }
    }
    if wait > 0.0 {
        Err(((wait * 1000.0).ceil() as u64).max(1))
    } else {
        Ok(())
    }
}

pub(crate) struct RateLimiter {
    config: RateLimits,
    buckets: Mutex<HashMap<(Action, Scope, String), Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(config: RateLimits) -> Self {
        RateLimiter {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rate of `action`'s buckets in `scope`; `None` for a bucket that does not limit
    /// (per-address buckets with `address_factor = 0`).
    fn rate(&self, action: Action, scope: Scope) -> Option<Rate> {
        let c = &self.config;
        let (per_second, burst) = match action {
            Action::Message => (c.messages_per_second, c.message_burst),
            Action::Registration => (c.registrations_per_second, c.registration_burst),
            Action::Login => (c.logins_per_second, c.login_burst),
            Action::RoomCreation => (c.room_creations_per_second, c.room_creation_burst),
            Action::StateEvent => (c.state_events_per_second, c.state_event_burst),
            Action::Join => (c.joins_per_second, c.join_burst),
            Action::Invite => (c.invites_per_second, c.invite_burst),
            Action::RoomInvite => (c.room_invites_per_second, c.room_invite_burst),
            Action::InviteReceived => (c.invites_received_per_second, c.invites_received_burst),
            Action::ProfileChange => (c.profile_changes_per_second, c.profile_change_burst),
            Action::Report => (c.reports_per_second, c.report_burst),
            Action::MediaUpload => (c.media_uploads_per_second, c.media_upload_burst),
            Action::ToDevice => (c.to_device_per_second, c.to_device_burst),
        };
        let factor = match scope {
            Scope::Own => 1.0,
            Scope::Address if c.address_factor > 0.0 => c.address_factor,
            Scope::Address => return None,
        };
        Some(Rate {
            per_second: per_second * factor,
            burst: f64::from(burst) * factor,
        })
    }

    /// Takes one token for `key` (a client address, for registrations and logins), or says
    /// how long until one is there.
    pub(crate) fn check(&self, action: Action, key: &str) -> Result<()> {
        self.draw(
            &[Draw {
                action,
                scope: Scope::Own,
                key,
                cost: 1.0,
            }],
            Instant::now(),
        )
    }

    /// Takes one `action` token from the user of `session` and one from its client
    /// `address`. A session that is not rate limited ([`exempt`]) takes none.
    pub(crate) fn check_request(
        &self,
        action: Action,
        session: &Session,
        address: &str,
    ) -> Result<()> {
        if exempt(session) {
            return Ok(());
        }
        self.draw(&user_draws(action, session, address, 1.0), Instant::now())
    }

    /// Creating a room: a room creation, and `invites` invites from the user and its address
    /// (there is no room to count them against yet), and one received by each invitee that
    /// counts ([`Services::counted_invitees`]).
    pub(crate) fn check_room_creation(
        &self,
        session: &Session,
        address: &str,
        invites: usize,
        invitees: &[&str],
    ) -> Result<()> {
        if exempt(session) {
            return Ok(());
        }
        let mut draws = user_draws(Action::RoomCreation, session, address, 1.0).to_vec();
        if invites > 0 {
            let n = invites as f64;
            draws.extend(user_draws(Action::Invite, session, address, n));
        }
        draws.extend(received(invitees));
        self.draw(&draws, Instant::now())
    }

    /// Inviting: one invite from the user, its address and the room, and one received by
    /// the invitee when it counts ([`Services::counted_invitees`]; `invitees` is empty when
    /// it does not).
    pub(crate) fn check_invite(
        &self,
        session: &Session,
        address: &str,
        room_id: &str,
        invitees: &[&str],
    ) -> Result<()> {
        if exempt(session) {
            return Ok(());
        }
        let mut draws = user_draws(Action::Invite, session, address, 1.0).to_vec();
        draws.push(Draw {
            action: Action::RoomInvite,
            scope: Scope::Own,
            key: room_id,
            cost: 1.0,
        });
        draws.extend(received(invitees));
        self.draw(&draws, Instant::now())
    }

    /// Refills the buckets of `draws`, applies [`decide`], and takes the costs from all of
    /// them or from none.
    fn draw(&self, draws: &[Draw<'_>], now: Instant) -> Result<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let draws: Vec<(Draw<'_>, Rate)> = draws
            .iter()
            .filter_map(|d| self.rate(d.action, d.scope).map(|r| (*d, r)))
            .collect();
        let mut buckets = lock(&self.buckets);
        if buckets.len() > MAX_BUCKETS {
            buckets.retain(|(action, scope, _), b| {
                self.rate(*action, *scope).is_some_and(|r| {
                    refill(b.tokens, r, now.duration_since(b.updated).as_secs_f64()) < r.burst
                })
            });
        }
        let needs: Vec<Need> = draws
            .iter()
            .map(|(d, rate)| {
                let tokens = match buckets.get(&(d.action, d.scope, d.key.to_string())) {
                    Some(b) => refill(
                        b.tokens,
                        *rate,
                        now.saturating_duration_since(b.updated).as_secs_f64(),
                    ),
                    None => rate.burst,
                };
                Need {
                    tokens,
                    rate: *rate,
                    cost: d.cost,
                }
            })
            .collect();
        decide(&needs).map_err(|retry_after_ms| Error::LimitExceeded { retry_after_ms })?;
        for ((d, _), need) in draws.iter().zip(&needs) {
            buckets.insert(
                (d.action, d.scope, d.key.to_string()),
                Bucket {
                    tokens: need.tokens - need.cost,
                    updated: now,
                },
            );
        }
        Ok(())
    }
}

/// An application service acting as its sender, or as its users when its registration says
/// `rate_limited: false`, is not rate limited; plugins' sessions never are.
fn exempt(session: &Session) -> bool {
    session.appservice.as_ref().is_some_and(|a| !a.rate_limited)
}

/// `cost` of `action` from the session's user and from its client address.
fn user_draws<'a>(
    action: Action,
    session: &'a Session,
    address: &'a str,
    cost: f64,
) -> [Draw<'a>; 2] {
    [
        Draw {
            action,
            scope: Scope::Own,
            key: &session.user_id,
            cost,
        },
        Draw {
            action,
            scope: Scope::Address,
            key: address,
            cost,
        },
    ]
}

/// One invite received by each of `invitees`.
fn received<'a>(invitees: &'a [&'a str]) -> impl Iterator<Item = Draw<'a>> {
    invitees.iter().map(|key| Draw {
        action: Action::InviteReceived,
        scope: Scope::Own,
        key,
        cost: 1.0,
    })
}

impl Services {
    /// The invitees whose received-invites bucket counts: not the users an application
    /// service or plugin holds (its bots expect invites to many rooms).
    pub(crate) fn counted_invitees<'a>(&self, invitees: &[&'a str]) -> Vec<&'a str> {
        let registry = self.appservices.registry();
        invitees
            .iter()
            .copied()
            .filter(|u| registry.exclusive_owner_of_user(u).is_none())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::service::users::AppserviceSession;

    fn limiter() -> RateLimiter {
        RateLimiter::new(RateLimits {
            enabled: true,
            messages_per_second: 2.0,
            message_burst: 3,
            address_factor: 2.0,
            ..RateLimits::default()
        })
    }

    fn user(id: &str) -> Session {
        Session {
            user_id: crate::service::identifiers::UserId::parse(id).unwrap(),
            device_id: "D".into(),
            appservice: None,
        }
    }

    fn one(action: Action, key: &str) -> Draw<'_> {
        Draw {
            action,
            scope: Scope::Own,
            key,
            cost: 1.0,
        }
    }

    fn wait_of(r: Result<()>) -> u64 {
        match r {
            Err(Error::LimitExceeded { retry_after_ms }) => retry_after_ms,
            other => panic!("expected M_LIMIT_EXCEEDED, got {other:?}"),
        }
    }

    #[test]
    fn a_burst_passes_and_then_one_token_refills_at_the_rate() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.draw(&[one(Action::Message, "@a:x")], t0).unwrap();
        }
        assert_eq!(wait_of(l.draw(&[one(Action::Message, "@a:x")], t0)), 500);
        l.draw(
            &[one(Action::Message, "@a:x")],
            t0 + Duration::from_millis(500),
        )
        .unwrap();
    }

    #[test]
    fn keys_and_actions_have_buckets_of_their_own() {
        let l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.draw(&[one(Action::Message, "@a:x")], t0).unwrap();
        }
        l.draw(&[one(Action::Message, "@b:x")], t0).unwrap();
        l.draw(&[one(Action::Join, "@a:x")], t0).unwrap();
    }

    #[test]
    fn a_refused_request_takes_from_no_bucket() {
        let l = limiter();
        let t0 = Instant::now();
        let (a, b) = (one(Action::Message, "@a:x"), one(Action::Message, "@b:x"));
        for _ in 0..3 {
            l.draw(&[a], t0).unwrap();
        }
        // b has tokens, a has none: the pair is refused and b keeps all three.
        wait_of(l.draw(&[b, a], t0));
        for _ in 0..3 {
            l.draw(&[b], t0).unwrap();
        }
        wait_of(l.draw(&[b], t0));
    }

    #[test]
    fn the_address_bucket_holds_the_factor_times_the_users_and_limits_many_users() {
        let l = limiter();
        // Three users of one address: 3 tokens each, 6 for the address.
        let users = [user("@a:x"), user("@b:x"), user("@c:x")];
        let mut passed = 0;
        for u in &users {
            for _ in 0..3 {
                if l.check_request(Action::Message, u, "10.0.0.1").is_ok() {
                    passed += 1;
                }
            }
        }
        assert_eq!(passed, 6, "the address allows twice one user's burst");
        // Another address is not affected.
        l.check_request(Action::Message, &user("@d:x"), "10.0.0.2")
            .unwrap();
    }

    #[test]
    fn address_factor_zero_limits_users_only() {
        let l = RateLimiter::new(RateLimits {
            address_factor: 0.0,
            message_burst: 2,
            ..RateLimits::default()
        });
        for u in ["@a:x", "@b:x", "@c:x", "@d:x"] {
            for _ in 0..2 {
                l.check_request(Action::Message, &user(u), "10.0.0.1")
                    .unwrap();
            }
        }
        wait_of(l.check_request(Action::Message, &user("@a:x"), "10.0.0.1"));
    }

    #[test]
    fn a_request_costing_more_than_the_burst_passes_when_full_and_leaves_a_debt() {
        let rate = Rate {
            per_second: 1.0,
            burst: 5.0,
        };
        let full = Need {
            tokens: 5.0,
            rate,
            cost: 8.0,
        };
        assert_eq!(decide(&[full]), Ok(()));
        let in_debt = Need {
            tokens: -3.0,
            rate,
            cost: 1.0,
        };
        assert_eq!(decide(&[in_debt]), Err(4000));
        let nearly_full = Need {
            tokens: 4.5,
            rate,
            cost: 8.0,
        };
        assert_eq!(decide(&[nearly_full]), Err(500));
    }

    #[test]
    fn the_wait_is_that_of_the_emptiest_bucket() {
        let slow = Rate {
            per_second: 0.1,
            burst: 10.0,
        };
        let fast = Rate {
            per_second: 10.0,
            burst: 10.0,
        };
        let needs = [
            Need {
                tokens: 0.5,
                rate: fast,
                cost: 1.0,
            },
            Need {
                tokens: 0.5,
                rate: slow,
                cost: 1.0,
            },
        ];
        assert_eq!(decide(&needs), Err(5000));
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let rate = Rate {
            per_second: 2.0,
            burst: 3.0,
        };
        assert_eq!(refill(0.0, rate, 1.0), 2.0);
        assert_eq!(refill(0.0, rate, 100.0), 3.0);
        assert_eq!(refill(-4.0, rate, 1.0), -2.0);
    }

    #[test]
    fn an_invitee_receives_few_invites_whoever_sends_them() {
        let l = RateLimiter::new(RateLimits::default());
        for (i, inviter) in ["@a:x", "@b:x", "@c:x", "@d:x", "@e:x"].iter().enumerate() {
            l.check_invite(&user(inviter), &format!("10.0.0.{i}"), "!r:x", &["@v:x"])
                .unwrap();
        }
        let wait = wait_of(l.check_invite(&user("@f:x"), "10.0.0.9", "!r:x", &["@v:x"]));
        assert!(wait > 300_000, "0.003/s: {wait} ms");
        // The room and the inviter still have room for an invite to someone else.
        l.check_invite(&user("@f:x"), "10.0.0.9", "!r:x", &["@w:x"])
            .unwrap();
    }

    #[test]
    fn a_room_receives_a_burst_of_invites_from_many_inviters() {
        let l = RateLimiter::new(RateLimits::default());
        for i in 0..10 {
            let inviter = format!("@u{i}:x");
            let invitee = format!("@v{i}:x");
            l.check_invite(&user(&inviter), "10.0.0.1", "!r:x", &[&invitee])
                .unwrap();
        }
        wait_of(l.check_invite(&user("@z:x"), "10.0.0.2", "!r:x", &["@w:x"]));
        l.check_invite(&user("@z:x"), "10.0.0.2", "!other:x", &["@w:x"])
            .unwrap();
    }

    #[test]
    fn room_creation_with_invites_takes_the_invites_from_the_creator() {
        let l = RateLimiter::new(RateLimits::default());
        let s = user("@a:x");
        let invitees = ["@1:x", "@2:x", "@3:x", "@4:x", "@5:x", "@6:x"];
        l.check_room_creation(&s, "10.0.0.1", 6, &invitees).unwrap();
        // Six of ten invites are gone: five more cannot go out at once.
        let more = ["@7:x", "@8:x", "@9:x", "@10:x", "@11:x"];
        wait_of(l.check_room_creation(&s, "10.0.0.1", 5, &more));
        l.check_room_creation(&s, "10.0.0.1", 4, &more[..4])
            .unwrap();
    }

    #[test]
    fn ten_rooms_then_one_a_minute_with_the_defaults() {
        let l = RateLimiter::new(RateLimits::default());
        let s = user("@a:x");
        for _ in 0..10 {
            l.check_room_creation(&s, "10.0.0.1", 0, &[]).unwrap();
        }
        let wait = wait_of(l.check_room_creation(&s, "10.0.0.1", 0, &[]));
        assert!((60_000..=63_000).contains(&wait), "{wait} ms");
    }

    #[test]
    fn an_appservice_is_exempt_only_when_its_registration_says_so() {
        let l = RateLimiter::new(RateLimits {
            message_burst: 1,
            ..RateLimits::default()
        });
        let free = Session {
            appservice: Some(AppserviceSession {
                id: "bridge".into(),
                rate_limited: false,
            }),
            ..user("@bridge_a:x")
        };
        let limited = Session {
            appservice: Some(AppserviceSession {
                id: "bridge".into(),
                rate_limited: true,
            }),
            ..user("@bridge_b:x")
        };
        for _ in 0..100 {
            l.check_request(Action::Message, &free, "10.0.0.1").unwrap();
        }
        l.check_request(Action::Message, &limited, "10.0.0.1")
            .unwrap();
        wait_of(l.check_request(Action::Message, &limited, "10.0.0.1"));
    }

    #[test]
    fn disabled_never_limits() {
        let l = RateLimiter::new(RateLimits {
            enabled: false,
            ..RateLimits::default()
        });
        for _ in 0..1000 {
            l.check(Action::Login, "ip").unwrap();
            l.check_request(Action::RoomCreation, &user("@a:x"), "ip")
                .unwrap();
        }
    }
}

//! Per-caller rate limits (GCRA token buckets from the `governor` crate) on what costs the
//! homeserver work: logins, credentials and writes. Each app user has a bucket per kind; the
//! backend's token has one bucket of its own, with a far higher rate. Reads are not limited.
//! Buckets live in this process: with several replicas, each allows the configured rate.

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use axum::http::Method;
use governor::{clock::Clock, clock::DefaultClock, DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::{auth::Caller, config::RateLimitConfig, domain::AppUserId};

/// What a request costs, by its method and route template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Login,
    Credentials,
    Write,
}

impl Kind {
    /// `None` for reads, which are not limited.
    pub fn of(method: &Method, route: &str) -> Option<Self> {
        match (method, route) {
            (&Method::POST, "/user/login") => Some(Self::Login),
            // axum answers HEAD with the GET handler, which provisions the account all the same.
            (&Method::GET | &Method::HEAD, "/user/credentials") => Some(Self::Credentials),
            (&Method::GET | &Method::HEAD | &Method::OPTIONS, _) => None,
            // The homeserver's own pushes: not a caller's writes.
            (_, route) if route.starts_with("/_matrix/") || route.starts_with("/transactions/") => None,
            _ => Some(Self::Write),
        }
    }
}

/// How long to wait before the next request of that kind may pass.
#[derive(Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

pub struct RateLimits {
    logins: Option<DefaultKeyedRateLimiter<AppUserId>>,
    credentials: Option<DefaultKeyedRateLimiter<AppUserId>>,
    writes: Option<DefaultKeyedRateLimiter<AppUserId>>,
    backend: Option<DefaultDirectRateLimiter>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// Every this many checks, buckets that are full again are dropped, so memory follows the
/// callers of the last minutes rather than every caller ever seen.
const SWEEP_EVERY: u64 = 10_000;

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        let per_minute =
            |n: u32| NonZeroU32::new(n).map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)));
        Self {
            logins: per_minute(config.user_logins_per_minute),
            credentials: per_minute(config.user_credentials_per_minute),
            writes: per_minute(config.user_writes_per_minute),
            backend: NonZeroU32::new(config.backend_per_second)
                .map(|n| DefaultDirectRateLimiter::direct(Quota::per_second(n))),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one request of `kind` from the caller's bucket.
    pub fn check(&self, caller: &Caller, kind: Kind) -> Result<(), Limited> {
        let outcome = match caller {
            Caller::Backend => match &self.backend {
                Some(limiter) => limiter.check(),
                None => return Ok(()),
            },
            Caller::User(user) => {
                let limiter = match kind {
                    Kind::Login => &self.logins,
                    Kind::Credentials => &self.credentials,
                    Kind::Write => &self.writes,
                };
                if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                    for limiter in [&self.logins, &self.credentials, &self.writes].into_iter().flatten() {
                        limiter.retain_recent();
                    }
                }
                let Some(limiter) = limiter else { return Ok(()) };
                limiter.check_key(&user.id)
            }
        };
        outcome.map_err(|not_until| Limited { retry_after: not_until.wait_time_from(self.clock.now()) })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::auth::AppUser;

    fn user(id: i64) -> Caller {
        Caller::User(AppUser { id, organizations: HashMap::new() })
    }

    fn limits(logins: u32, backend: u32) -> RateLimits {
        RateLimits::new(&RateLimitConfig {
            user_logins_per_minute: logins,
            user_credentials_per_minute: 0,
            user_writes_per_minute: 1,
            backend_per_second: backend,
        })
    }

    #[test]
    fn kinds_follow_method_and_route() {
        assert_eq!(Kind::of(&Method::POST, "/user/login"), Some(Kind::Login));
        assert_eq!(Kind::of(&Method::GET, "/user/credentials"), Some(Kind::Credentials));
        assert_eq!(Kind::of(&Method::HEAD, "/user/credentials"), Some(Kind::Credentials));
        assert_eq!(Kind::of(&Method::GET, "/chatrooms/{roomID}"), None);
        assert_eq!(Kind::of(&Method::PATCH, "/chatrooms/{roomID}"), Some(Kind::Write));
        assert_eq!(Kind::of(&Method::DELETE, "/user/devices"), Some(Kind::Write));
    }

    #[test]
    fn each_user_has_a_bucket_per_kind_and_the_backend_its_own() {
        let limits = limits(2, 3);
        let (alice, bob) = (user(1), user(2));
        assert!(limits.check(&alice, Kind::Login).is_ok());
        assert!(limits.check(&alice, Kind::Login).is_ok());
        let limited = limits.check(&alice, Kind::Login).expect_err("a third login within the minute");
        // Two per minute: the next one is due in about 30 s.
        assert!(limited.retry_after > Duration::from_secs(25), "{limited:?}");
        assert!(limited.retry_after <= Duration::from_secs(30), "{limited:?}");
        assert!(limits.check(&bob, Kind::Login).is_ok(), "another user's bucket");
        assert!(limits.check(&alice, Kind::Write).is_ok(), "another kind's bucket");
        assert!(limits.check(&alice, Kind::Write).is_err());
        assert!(limits.check(&alice, Kind::Credentials).is_ok(), "0 turns a limit off");
        for _ in 0..3 {
            assert!(limits.check(&Caller::Backend, Kind::Login).is_ok());
        }
        assert!(limits.check(&Caller::Backend, Kind::Write).is_err(), "one bucket for the backend");
    }
}

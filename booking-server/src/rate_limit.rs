//! Limits per caller: token buckets per user and per client address for the requests
//! that take seats (holds, best available, adds to holds; the queue's join when it
//! comes), decided in memory before any database work.
//!
//! Why in memory, per process: the point of the limit is to refuse an abusive caller
//! for less than it costs to serve them. A bucket in PostgreSQL would spend a
//! connection and a round trip on every refusal, which is the work the limit exists
//! to spare; a refusal from a map costs a mutex and a few arithmetic operations. The
//! price is that each server process limits on its own: behind N processes a caller
//! gets up to N times the rate (docs/DESIGN.md says so).
//!
//! Memory is bounded twice: a bucket that has refilled to its burst says nothing a
//! missing bucket would not, so idle buckets are dropped (at most once a second, on
//! the way to adding one); and each map holds at most `RATE_MAX_BUCKETS` buckets. A
//! newcomer that finds the map full (after dropping the idle ones) is let through
//! without a bucket and counted (`booking_rate_limit_untracked_total`): a flood of
//! distinct addresses cannot grow memory nor lock out everyone new; callers that
//! have a bucket stay limited, and the pool and the hold batcher still bound the work
//! (`503`).

use crate::http::ApiError;
use crate::state::AppState;
use booking_core::UserId;
use hyper::http::request::Parts;
use hyper::StatusCode;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A refill rate, as configured: `20/s`, `600/min` or `1000/h` (1 to 1,000,000 a unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
}

impl Rate {
    /// Parses `N/s`, `N/min` or `N/h`, N a whole number from 1 to 1,000,000.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad =
            || format!("{text:?} is not a rate: write N/s, N/min or N/h (N from 1 to 1000000)");
        let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if !(1..=1_000_000).contains(&n) {
            return Err(bad());
        }
        let seconds = match unit.trim() {
            "s" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        Ok(Rate {
            per_second: f64::from(n) / seconds,
        })
    }

    /// Tokens added per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// The burst when none is configured: two seconds of refill, at least 1.
    pub fn default_burst(&self) -> u32 {
        // At most 2,000,000: the cast cannot overflow.
        (self.per_second * 2.0).ceil().max(1.0) as u32
    }
}

/// One limit: how fast its buckets refill and how many tokens they hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate: Rate,
    /// Most tokens a bucket holds: the requests a caller may send at once after idling.
    pub burst: u32,
}

/// Which limit refused a request: the `limit` label of `booking_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The caller's user id (`RATE_HOLDS_PER_USER`).
    User,
    /// The client's address (`RATE_HOLDS_PER_IP`).
    Ip,
}

impl Kind {
    /// `"user"` or `"ip"`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Ip => "ip",
        }
    }
}

/// The time buckets are refilled by: the system's monotonic clock, or one that moves
/// only when told (tests, and simulations that must not depend on timing).
#[derive(Debug, Clone)]
pub struct Clock {
    start: Instant,
    /// Nanoseconds added to the real elapsed time; `None`: a manual clock, whose time
    /// is only what was added.
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock {
            start: Instant::now(),
            manual: None,
        }
    }

    /// A clock standing still until [`Clock::advance`] moves it.
    pub fn manual() -> Clock {
        Clock {
            start: Instant::now(),
            manual: Some(Arc::new(AtomicU64::new(0))),
        }
    }

    /// Moves a manual clock (and its clones) forward; a system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            m.fetch_add(nanos, Ordering::Relaxed);
        }
    }

    /// Time since the clock started.
    pub fn now(&self) -> Duration {
        match &self.manual {
            None => self.start.elapsed(),
            Some(m) => Duration::from_nanos(m.load(Ordering::Relaxed)),
        }
    }
}

/// A caller's bucket: its tokens when last seen, and when that was.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Duration,
}

/// The buckets of one limit, by caller.
#[derive(Debug)]
struct Buckets<K> {
    limit: Limit,
    map: HashMap<K, Bucket>,
    pruned_at: Duration,
}

/// What a bucket says about one more request.
enum Verdict {
    /// Allowed: the bucket to store with one token taken (`None`: untracked, the map
    /// is full).
    Take(Option<Bucket>),
    /// Refused: seconds until a token is there.
    Refuse(u32),
}

/// How often idle buckets are looked for, at most.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

impl<K: Hash + Eq> Buckets<K> {
    fn new(limit: Limit) -> Buckets<K> {
        Buckets {
            limit,
            map: HashMap::new(),
            pruned_at: Duration::ZERO,
        }
    }

    fn burst(&self) -> f64 {
        f64::from(self.limit.burst)
    }

    /// The tokens of `b` at `now`, refilled, at most the burst.
    fn refilled(&self, b: &Bucket, now: Duration) -> f64 {
        let elapsed = now.saturating_sub(b.at).as_secs_f64();
        (b.tokens + elapsed * self.limit.rate.per_second).min(self.burst())
    }

    /// Decides one request of `key` at `now`, storing nothing yet.
    fn verdict<Q>(&mut self, key: &Q, now: Duration, cap: usize) -> Verdict
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let tokens = match self.map.get(key) {
            Some(b) => self.refilled(b, now),
            None => {
                if self.map.len() >= cap || now.saturating_sub(self.pruned_at) >= PRUNE_EVERY {
                    self.prune(now);
                }
                if self.map.len() >= cap {
                    return Verdict::Take(None);
                }
                self.burst()
            }
        };
        if tokens >= 1.0 {
            Verdict::Take(Some(Bucket {
                tokens: tokens - 1.0,
                at: now,
            }))
        } else {
            let wait = (1.0 - tokens) / self.limit.rate.per_second;
            // Whole seconds, rounded up, at least 1 (a client that waits that long
            // finds a token); capped: an hour-long rate never waits past a day.
            Verdict::Refuse(wait.ceil().clamp(1.0, 86_400.0) as u32)
        }
    }

    /// Drops every bucket that has refilled to its burst: it limits nobody.
    fn prune(&mut self, now: Duration) {
        if now.saturating_sub(self.pruned_at) < PRUNE_EVERY && self.pruned_at != Duration::ZERO {
            return;
        }
        self.pruned_at = now;
        let (rate, burst) = (self.limit.rate.per_second, self.burst());
        self.map.retain(|_, b| {
            let elapsed = now.saturating_sub(b.at).as_secs_f64();
            b.tokens + elapsed * rate < burst
        });
    }
}

/// A refusal: which limit, and the `Retry-After` in whole seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The limit that refused.
    pub kind: Kind,
    /// Seconds until the caller's bucket has a token again.
    pub retry_after: u32,
}

/// What one decision did, besides allowing or refusing: for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracked {
    /// A newcomer of the user map was let through without a bucket (map full).
    pub untracked_user: bool,
    /// A newcomer of the address map was let through without a bucket (map full).
    pub untracked_ip: bool,
    /// Buckets in the user map after the decision.
    pub user_buckets: usize,
    /// Buckets in the address map after the decision.
    pub ip_buckets: usize,
}

/// The per-user and per-address limits of one server process.
#[derive(Debug)]
pub struct RateLimits {
    users: Option<Mutex<Buckets<Box<str>>>>,
    addresses: Option<Mutex<Buckets<IpAddr>>>,
    cap: usize,
    clock: Clock,
}

impl RateLimits {
    /// Limits of `per_user` and `per_ip` (`None`: that limit is off), at most `cap`
    /// buckets in each map, refilled by `clock`.
    pub fn new(per_user: Option<Limit>, per_ip: Option<Limit>, cap: usize, clock: Clock) -> Self {
        RateLimits {
            users: per_user.map(|l| Mutex::new(Buckets::new(l))),
            addresses: per_ip.map(|l| Mutex::new(Buckets::new(l))),
            cap: cap.max(1),
            clock,
        }
    }

    /// No limit at all.
    pub fn off() -> RateLimits {
        RateLimits::new(None, None, 1, Clock::system())
    }

    /// Whether both limits are off (every request is let through untouched).
    pub fn is_off(&self) -> bool {
        self.users.is_none() && self.addresses.is_none()
    }

    /// The clock the buckets refill by.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Takes a token of `user`'s bucket and of `peer`'s (either limit may be off; no
    /// `peer`: no address limit), or neither: a request refused by one limit costs
    /// the other nothing.
    pub fn check(&self, user: &UserId, peer: Option<IpAddr>) -> Result<Tracked, Refusal> {
        let now = self.clock.now();
        let mut tracked = Tracked::default();
        // Locked in this order only (users, then addresses): no deadlock.
        let mut users = self.users.as_ref().map(|m| m.lock());
        let user_verdict = match users.as_mut() {
            None => None,
            Some(b) => match b.verdict(user.as_str(), now, self.cap) {
                Verdict::Refuse(s) => {
                    return Err(Refusal {
                        kind: Kind::User,
                        retry_after: s,
                    })
                }
                Verdict::Take(bucket) => Some(bucket),
            },
        };
        let key = peer.map(address_key);
        let mut addresses = self.addresses.as_ref().zip(key).map(|(m, k)| (m.lock(), k));
        if let Some((b, k)) = addresses.as_mut() {
            match b.verdict(k, now, self.cap) {
                Verdict::Refuse(s) => {
                    return Err(Refusal {
                        kind: Kind::Ip,
                        retry_after: s,
                    })
                }
                Verdict::Take(None) => tracked.untracked_ip = true,
                Verdict::Take(Some(bucket)) => {
                    b.map.insert(*k, bucket);
                }
            }
            tracked.ip_buckets = b.map.len();
        }
        if let (Some(b), Some(verdict)) = (users.as_mut(), user_verdict) {
            match verdict {
                None => tracked.untracked_user = true,
                Some(bucket) => match b.map.get_mut(user.as_str()) {
                    Some(slot) => *slot = bucket,
                    None => {
                        b.map.insert(user.as_str().into(), bucket);
                    }
                },
            }
            tracked.user_buckets = b.map.len();
        }
        Ok(tracked)
    }
}

/// The key of an address: an IPv4 address (or an IPv4-mapped IPv6 one) as it is, an
/// IPv6 address by its /64, which one subscriber usually holds whole (limiting single
/// IPv6 addresses would let one machine count as 2^64 callers).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The TCP peer of a request, put in its extensions by [`crate::run`] as it accepts
/// the connection (the address a limit counts; a proxy in front is one peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The guard of every route that takes seats (holds, best available, adds to holds,
/// and the queue's join): call it with the caller as soon as it is known, before any
/// database work. `Err` is `429 rate_limited` with `Retry-After`, counted in
/// `booking_rate_limited_total{limit}`.
pub fn admit(state: &AppState, parts: &Parts, user: &UserId) -> Result<(), ApiError> {
    if state.rate_limits.is_off() {
        return Ok(());
    }
    let peer = parts.extensions.get::<Peer>().map(|p| p.0.ip());
    let metrics = &state.metrics.rate_limits;
    match state.rate_limits.check(user, peer) {
        Ok(tracked) => {
            metrics.observe(&tracked);
            Ok(())
        }
        Err(refusal) => {
            metrics.refused(refusal.kind);
            Err(refused(refusal))
        }
    }
}

/// `429 rate_limited` with `Retry-After`.
pub fn refused(refusal: Refusal) -> ApiError {
    let who = match refusal.kind {
        Kind::User => "this user",
        Kind::Ip => "this client address",
    };
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "Too many holds and adds from {who}; retry in {} s.",
            refusal.retry_after
        ),
    );
    e.retry_after = Some(refusal.retry_after);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: &str, burst: u32) -> Option<Limit> {
        Some(Limit {
            rate: Rate::parse(rate).unwrap(),
            burst,
        })
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn rates_parse_in_their_units_and_refuse_the_rest() {
        assert_eq!(Rate::parse("20/s").unwrap().per_second(), 20.0);
        assert_eq!(Rate::parse("600/min").unwrap().per_second(), 10.0);
        assert_eq!(Rate::parse("3600/h").unwrap().per_second(), 1.0);
        assert_eq!(Rate::parse("600/min").unwrap().default_burst(), 20);
        assert_eq!(Rate::parse("1/h").unwrap().default_burst(), 1);
        for bad in ["", "20", "0/s", "-1/s", "20/d", "1.5/s", "1000001/s", "x/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let clock = Clock::manual();
        let limits = RateLimits::new(limit("2/s", 3), None, 100, clock.clone());
        let alice = user("alice");
        for _ in 0..3 {
            limits.check(&alice, None).unwrap();
        }
        let refusal = limits.check(&alice, None).unwrap_err();
        assert_eq!(
            refusal,
            Refusal {
                kind: Kind::User,
                retry_after: 1
            }
        );
        clock.advance(Duration::from_millis(500));
        limits.check(&alice, None).unwrap();
        assert!(limits.check(&alice, None).is_err());
        // A long idle refills to the burst, not past it.
        clock.advance(Duration::from_secs(3600));
        for _ in 0..3 {
            limits.check(&alice, None).unwrap();
        }
        assert!(limits.check(&alice, None).is_err());
    }

    #[test]
    fn retry_after_is_the_wait_for_a_token_in_whole_seconds() {
        let clock = Clock::manual();
        let limits = RateLimits::new(limit("1/min", 1), None, 100, clock.clone());
        limits.check(&user("a"), None).unwrap();
        assert_eq!(limits.check(&user("a"), None).unwrap_err().retry_after, 60);
        clock.advance(Duration::from_millis(59_500));
        assert_eq!(limits.check(&user("a"), None).unwrap_err().retry_after, 1);
    }

    #[test]
    fn a_refusal_by_the_address_takes_no_token_from_the_user() {
        let clock = Clock::manual();
        let limits = RateLimits::new(limit("1/h", 2), limit("1/h", 1), 100, clock);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        limits.check(&user("a"), Some(ip)).unwrap();
        assert_eq!(
            limits.check(&user("a"), Some(ip)).unwrap_err().kind,
            Kind::Ip
        );
        // The user's second token is still there.
        limits.check(&user("a"), Some(other)).unwrap();
        assert_eq!(limits.check(&user("a"), None).unwrap_err().kind, Kind::User);
    }

    #[test]
    fn ipv6_addresses_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn idle_buckets_are_dropped_and_the_cap_lets_newcomers_through_untracked() {
        let clock = Clock::manual();
        let limits = RateLimits::new(limit("1/s", 1), None, 3, clock.clone());
        for name in ["a", "b", "c"] {
            limits.check(&user(name), None).unwrap();
        }
        // Full: a newcomer passes without a bucket, every time.
        let t = limits.check(&user("d"), None).unwrap();
        assert!(t.untracked_user);
        assert_eq!(t.user_buckets, 3);
        assert!(limits.check(&user("d"), None).unwrap().untracked_user);
        // The known callers stay limited.
        assert!(limits.check(&user("a"), None).is_err());
        // Once they have refilled, their buckets go and newcomers get their own.
        clock.advance(Duration::from_secs(2));
        let t = limits.check(&user("e"), None).unwrap();
        assert!(!t.untracked_user);
        assert_eq!(t.user_buckets, 1);
    }
}

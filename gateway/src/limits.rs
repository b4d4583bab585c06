//! What one caller may take of the gateway, so that no partner's traffic
//! fails another's.
//!
//! - A request rate per partner, over every partner route, and a lower one
//!   for test notifications, each of which costs a delivery. Over the rate
//!   a partner gets 429 with `Retry-After`. Limits are counted per gateway
//!   replica (GCRA, from `governor`): behind N replicas a partner gets up
//!   to N times the rate, which bounds the load each replica passes on.
//! - A cap on requests in progress, past which requests get 503 at once
//!   instead of queueing without bound.
//! - A deadline per request (body included), past which it gets 408.
//!
//! The rate maps hold one entry per partner that has called, and only
//! authenticated partners are counted, so they grow with the partner count,
//! never with an attacker's input.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::problem::ApiError;

/// A rate: so many requests per period, with a burst.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
    pub burst: NonZeroU32,
}

impl Rate {
    fn quota(self) -> Quota {
        let interval = self.per / self.count.get();
        Quota::with_period(interval.max(Duration::from_nanos(1)))
            .expect("the interval is positive")
            .allow_burst(self.burst)
    }

    fn describe(self) -> String {
        let per = match self.per.as_secs() {
            1 => "second".to_owned(),
            60 => "minute".to_owned(),
            s => format!("{s} seconds"),
        };
        format!("{} per {per} (burst {})", self.count, self.burst)
    }
}

/// The per-partner rates.
#[derive(Debug)]
pub struct RateLimits {
    requests: Limiter,
    echoes: Limiter,
}

#[derive(Debug)]
struct Limiter {
    rate: Rate,
    state: DefaultKeyedRateLimiter<Uuid>,
}

impl Limiter {
    fn new(rate: Rate) -> Self {
        Self {
            rate,
            state: DefaultKeyedRateLimiter::hashmap(rate.quota()),
        }
    }

    fn check(&self, partner: Uuid, what: &str) -> Result<(), ApiError> {
        self.state.check_key(&partner).map_err(|refused| {
            let wait = refused.wait_time_from(self.state.clock().now());
            ApiError::rate_limited(
                format!(
                    "this partner is over its rate of {what}: {}",
                    self.rate.describe()
                ),
                wait,
            )
        })
    }
}

impl RateLimits {
    pub fn new(requests: Rate, echoes: Rate) -> Self {
        Self {
            requests: Limiter::new(requests),
            echoes: Limiter::new(echoes),
        }
    }

    /// Counts one request of `partner` on any partner route.
    pub fn request(&self, partner: Uuid) -> Result<(), ApiError> {
        self.requests.check(partner, "requests")
    }

    /// Counts one test notification of `partner`.
    pub fn echo(&self, partner: Uuid) -> Result<(), ApiError> {
        self.echoes.check(partner, "test notifications")
    }
}

/// The cap on requests in progress and the deadline of each.
#[derive(Debug, Clone)]
pub struct RequestGuard {
    in_progress: Arc<Semaphore>,
    timeout: Duration,
}

impl RequestGuard {
    pub fn new(max_in_progress: usize, timeout: Duration) -> Self {
        Self {
            in_progress: Arc::new(Semaphore::new(max_in_progress)),
            timeout,
        }
    }
}

/// Liveness is answered whatever the load: an orchestrator that saw an
/// overloaded gateway as dead would restart it and make the overload worse.
const EXEMPT: &str = "/healthz";

/// Applies [`RequestGuard`] to every request but the liveness probe.
pub(crate) async fn middleware(
    State(guard): State<RequestGuard>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == EXEMPT {
        return next.run(request).await;
    }
    let Ok(_slot) = guard.in_progress.clone().try_acquire_owned() else {
        return ApiError::overloaded().into_response();
    };
    match tokio::time::timeout(guard.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::request_timeout(guard.timeout).into_response(),
    }
}

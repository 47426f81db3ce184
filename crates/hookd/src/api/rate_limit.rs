//! A per-token request rate limit on the API (GCRA, from `governor`).

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;

/// Requests per second allowed per token; `None` when the limit is off.
pub struct ApiRateLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl ApiRateLimit {
    /// `per_second` requests per second per token, with bursts of the same size; 0 turns the
    /// limit off.
    pub fn new(per_second: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_second)
                .map(|rate| RateLimiter::keyed(Quota::per_second(rate))),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of the token with this hash, or answers 429 with when to retry.
    pub fn check(&self, token_hash: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Keys are hashes of valid tokens only, so the map stays as small as the token set;
        // pruning idle keys now and then keeps revoked ones from lingering.
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&token_hash.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                ApiError::rate_limited(wait.as_secs().max(1))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_token_separately() {
        let limit = ApiRateLimit::new(2);
        assert!(limit.check("a").is_ok());
        assert!(limit.check("a").is_ok());
        let refused = limit
            .check("a")
            .expect_err("third request in the same second");
        assert_eq!(refused.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(limit.check("b").is_ok(), "another token has its own budget");
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limit = ApiRateLimit::new(0);
        for _ in 0..1000 {
            assert!(limit.check("a").is_ok());
        }
    }
}

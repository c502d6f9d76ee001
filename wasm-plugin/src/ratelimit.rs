//! Adapter for the `ratelimit` interface: a WIT resource over `llm_resilience::ratelimit`.

use crate::Plugin;
use crate::bindings::exports::llm::resilience::ratelimit::{
    Allowed, Denied, Guest, GuestLimiter, LimitError, Limiter, Verdict,
};
use crate::config::{parse, problems, to_json};
use llm_resilience::ratelimit as core;
use std::cell::RefCell;

/// The `limiter` resource.
pub struct LimiterResource(RefCell<core::RateLimiter>);

impl Guest for Plugin {
    type Limiter = LimiterResource;
}

impl GuestLimiter for LimiterResource {
    fn create(config_json: String) -> Result<Limiter, Vec<String>> {
        let config = parse("rate-limit config", &config_json)?;
        let limiter = core::RateLimiter::new(config).map_err(problems)?;
        Ok(Limiter::new(LimiterResource(RefCell::new(limiter))))
    }

    fn restore(snapshot_json: String) -> Result<Limiter, Vec<String>> {
        let snapshot = parse("rate-limit snapshot", &snapshot_json)?;
        let limiter = core::RateLimiter::restore(snapshot).map_err(problems)?;
        Ok(Limiter::new(LimiterResource(RefCell::new(limiter))))
    }

    fn check(&self, key: String, units: u32, now_ms: u64) -> Result<Verdict, LimitError> {
        match self.0.borrow_mut().check(&key, units, now_ms) {
            Ok(core::Verdict::Allowed { remaining }) => Ok(Verdict::Allowed(Allowed { remaining })),
            Ok(core::Verdict::Denied { retry_in_ms }) => {
                Ok(Verdict::Denied(Denied { retry_in_ms }))
            }
            Err(e) => Err(limit_error(e)),
        }
    }

    fn settle(
        &self,
        key: String,
        reserved: u32,
        actual: u32,
        now_ms: u64,
    ) -> Result<(), LimitError> {
        self.0
            .borrow_mut()
            .settle(&key, reserved, actual, now_ms)
            .map_err(limit_error)
    }

    fn block_until(&self, key: String, until_ms: u64, now_ms: u64) -> Result<(), LimitError> {
        self.0
            .borrow_mut()
            .block_until(&key, until_ms, now_ms)
            .map_err(limit_error)
    }

    fn remaining(&self, key: String, now_ms: u64) -> Result<u32, LimitError> {
        self.0.borrow().remaining(&key, now_ms).map_err(limit_error)
    }

    fn len(&self) -> u32 {
        u32::try_from(self.0.borrow().len()).unwrap_or(u32::MAX)
    }

    fn snapshot(&self) -> String {
        to_json(&self.0.borrow().snapshot())
    }
}

fn limit_error(e: core::RateLimitError) -> LimitError {
    match e {
        core::RateLimitError::EmptyKey => LimitError::EmptyKey,
        core::RateLimitError::KeyTooLong(_) => LimitError::KeyTooLong,
        core::RateLimitError::ZeroUnits => LimitError::ZeroUnits,
        core::RateLimitError::ExceedsBurst { .. } => LimitError::ExceedsBurst,
    }
}

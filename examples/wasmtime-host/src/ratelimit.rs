//! Rate limiters through the component: the WIT `ratelimit` interface with the core's types.

use llm_resilience::ratelimit::{RateLimitConfig, RateLimitError, RateLimitSnapshot, Verdict};

use crate::plugin::bindings::exports::llm::resilience::ratelimit as wit;
use crate::session::Resource;
use crate::{HostError, Plugin, Session};

/// A keyed GCRA rate limiter living in the component
/// ([`llm_resilience::ratelimit::RateLimiter`] behind the WIT `limiter` resource).
///
/// Every method is the native one with the same arguments and the same result (errors are the
/// core's [`RateLimitError`], numbers included), wrapped in `Result<_, HostError>` for what can
/// go wrong in the host.
#[derive(Debug)]
pub struct HostLimiter {
    resource: Resource,
    /// The burst, read by the host from the config the component accepted: the WIT error enum
    /// says `exceeds-burst` without the numbers the core's error carries.
    burst: u32,
}

impl Session {
    /// A limiter from a JSON config (`RateLimitConfig`; `"{}"` for 10 messages per minute per
    /// session). Every rejected field is listed in [`HostError::Config`].
    pub fn limiter(&self, config_json: &str) -> Result<HostLimiter, HostError> {
        let resource = self.create(|store, plugin| {
            plugin
                .llm_resilience_ratelimit()
                .limiter()
                .call_create(store, config_json)
        })?;
        let config: RateLimitConfig = host_read(config_json)?;
        Ok(HostLimiter {
            resource,
            burst: burst(&config),
        })
    }

    /// A limiter from a snapshot ([`HostLimiter::snapshot`], or `serde_json::to_string` of a
    /// native [`RateLimitSnapshot`]). A corrupt snapshot is a [`HostError::Config`].
    pub fn restore_limiter(&self, snapshot_json: &str) -> Result<HostLimiter, HostError> {
        let resource = self.create(|store, plugin| {
            plugin
                .llm_resilience_ratelimit()
                .limiter()
                .call_restore(store, snapshot_json)
        })?;
        let snapshot: RateLimitSnapshot = host_read(snapshot_json)?;
        Ok(HostLimiter {
            resource,
            burst: burst(&snapshot.config),
        })
    }
}

impl Plugin {
    /// A limiter in a session of its own: [`Session::limiter`] on a new [`Plugin::session`].
    pub fn limiter(&self, config_json: &str) -> Result<HostLimiter, HostError> {
        self.session()?.limiter(config_json)
    }

    /// A restored limiter in a session of its own: [`Session::restore_limiter`].
    pub fn restore_limiter(&self, snapshot_json: &str) -> Result<HostLimiter, HostError> {
        self.session()?.restore_limiter(snapshot_json)
    }
}

/// Reads JSON the component has just accepted. The host and the component read it with the
/// same core types, so this fails only when they come from different versions; it is then a
/// config error like any other (and the new resource is dropped by the caller's `?`).
fn host_read<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, HostError> {
    serde_json::from_str(json).map_err(|e| {
        HostError::Config(llm_resilience::ConfigError {
            problems: vec![format!(
                "the host cannot read what the component accepted: {e}"
            )],
        })
    })
}

fn burst(config: &RateLimitConfig) -> u32 {
    config.burst.unwrap_or(config.limit)
}

impl HostLimiter {
    /// The session the limiter lives in.
    pub fn session(&self) -> &Session {
        &self.resource.session
    }

    /// Asks to spend `units` for `key` at `now_ms`.
    pub fn check(
        &self,
        key: &str,
        units: u32,
        now_ms: u64,
    ) -> Result<Result<Verdict, RateLimitError>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_ratelimit()
                    .limiter()
                    .call_check(store, this, key, units, now_ms)
            })
            .map(|r| {
                r.map(|v| match v {
                    wit::Verdict::Allowed(a) => Verdict::Allowed {
                        remaining: a.remaining,
                    },
                    wit::Verdict::Denied(d) => Verdict::Denied {
                        retry_in_ms: d.retry_in_ms,
                    },
                })
                .map_err(|e| self.error(e, key, units))
            })
    }

    /// Settles a reservation: `reserved` units were allowed for `key`, the call cost `actual`
    /// (refunds or debits the difference).
    pub fn settle(
        &self,
        key: &str,
        reserved: u32,
        actual: u32,
        now_ms: u64,
    ) -> Result<Result<(), RateLimitError>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_ratelimit()
                    .limiter()
                    .call_settle(store, this, key, reserved, actual, now_ms)
            })
            .map(|r| r.map_err(|e| self.error(e, key, actual)))
    }

    /// Denies `key` until `until_ms` (a provider's 429 hint); never shortens a wait.
    pub fn block_until(
        &self,
        key: &str,
        until_ms: u64,
        now_ms: u64,
    ) -> Result<Result<(), RateLimitError>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_ratelimit()
                    .limiter()
                    .call_block_until(store, this, key, until_ms, now_ms)
            })
            .map(|r| r.map_err(|e| self.error(e, key, 0)))
    }

    /// Units `key` could spend at `now_ms` without waiting.
    pub fn remaining(
        &self,
        key: &str,
        now_ms: u64,
    ) -> Result<Result<u32, RateLimitError>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_ratelimit()
                    .limiter()
                    .call_remaining(store, this, key, now_ms)
            })
            .map(|r| r.map_err(|e| self.error(e, key, 0)))
    }

    /// Keys held.
    pub fn len(&self) -> Result<usize, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_ratelimit()
                    .limiter()
                    .call_len(store, this)
            })
            .map(|n| n as usize)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> Result<bool, HostError> {
        self.len().map(|n| n == 0)
    }

    /// The whole state as JSON: the serde form of a native [`RateLimitSnapshot`], so
    /// `RateLimiter::restore` reads it as well as [`Session::restore_limiter`].
    pub fn snapshot(&self) -> Result<String, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_ratelimit()
                .limiter()
                .call_snapshot(store, this)
        })
    }

    /// The core's error for a WIT one; the WIT enum drops the numbers, which the host knows.
    fn error(&self, e: wit::LimitError, key: &str, units: u32) -> RateLimitError {
        match e {
            wit::LimitError::EmptyKey => RateLimitError::EmptyKey,
            wit::LimitError::KeyTooLong => RateLimitError::KeyTooLong(key.len()),
            wit::LimitError::ZeroUnits => RateLimitError::ZeroUnits,
            wit::LimitError::ExceedsBurst => RateLimitError::ExceedsBurst {
                units,
                burst: self.burst,
            },
        }
    }
}

//! Credit monitoring through the component: the WIT `credits` interface with the core's types.

use llm_resilience::credits::{
    Affordable, AlertEvent, AlertKind, AlertState, CreditSnapshot, CreditStatus, CreditsError,
    CreditsInfo, KeyInfo, LimitReset,
};

use crate::plugin::bindings::exports::llm::resilience::credits as wit;
use crate::session::Resource;
use crate::{HostError, Plugin, Session};

/// A credit monitor living in the component ([`llm_resilience::credits::CreditMonitor`]
/// behind the WIT `credit-monitor` resource): the same alerts and status as the native one for
/// the same snapshots, and a snapshot either side restores.
#[derive(Debug)]
pub struct HostCreditMonitor {
    resource: Resource,
}

impl Plugin {
    /// Parses a `GET /api/v1/key` body inside the component ([`llm_resilience::credits::parse_key`]).
    pub fn parse_key(&self, body: &str) -> Result<Result<KeyInfo, CreditsError>, HostError> {
        self.call(|store, plugin| plugin.llm_resilience_credits().call_parse_key(store, body))
            .map(|r| r.map(key_from_wit).map_err(error_from_wit))
    }

    /// Parses a `GET /api/v1/credits` body inside the component
    /// ([`llm_resilience::credits::parse_credits`]).
    pub fn parse_credits(
        &self,
        body: &str,
    ) -> Result<Result<CreditsInfo, CreditsError>, HostError> {
        self.call(|store, plugin| {
            plugin
                .llm_resilience_credits()
                .call_parse_credits(store, body)
        })
        .map(|r| r.map(credits_from_wit).map_err(error_from_wit))
    }

    /// Reads a 402 "can only afford M" inside the component
    /// ([`llm_resilience::credits::suggest_max_tokens`]).
    pub fn suggest_max_tokens(&self, text: &str) -> Result<Option<Affordable>, HostError> {
        self.call(|store, plugin| {
            plugin
                .llm_resilience_credits()
                .call_suggest_max_tokens(store, text)
        })
        .map(|a| {
            a.map(|a| Affordable {
                requested_tokens: a.requested_tokens,
                affordable_tokens: a.affordable_tokens,
                suggested_max_tokens: a.suggested_max_tokens,
            })
        })
    }

    /// A credit monitor in a session of its own: [`Session::credit_monitor`].
    pub fn credit_monitor(&self, config_json: &str) -> Result<HostCreditMonitor, HostError> {
        self.session()?.credit_monitor(config_json)
    }
}

impl Session {
    /// A credit monitor from a JSON config (`CreditConfig`; `"{}"` for the defaults). Every
    /// rejected field is listed in [`HostError::Config`].
    pub fn credit_monitor(&self, config_json: &str) -> Result<HostCreditMonitor, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_credits()
                .credit_monitor()
                .call_create(store, config_json)
        })
        .map(|resource| HostCreditMonitor { resource })
    }

    /// A credit monitor from a snapshot ([`HostCreditMonitor::snapshot`], or `serde_json` of a
    /// native [`CreditMonitor`](llm_resilience::credits::CreditMonitor)).
    pub fn restore_credit_monitor(
        &self,
        snapshot_json: &str,
    ) -> Result<HostCreditMonitor, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_credits()
                .credit_monitor()
                .call_restore(store, snapshot_json)
        })
        .map(|resource| HostCreditMonitor { resource })
    }
}

impl HostCreditMonitor {
    /// The session the monitor lives in.
    pub fn session(&self) -> &Session {
        &self.resource.session
    }

    /// Feeds one poll taken at `now_ms` (and `wall_clock_ms`, Unix ms, when known); the alert
    /// events it caused, usually none.
    pub fn observe(
        &self,
        snapshot: &CreditSnapshot,
        now_ms: u64,
        wall_clock_ms: Option<u64>,
    ) -> Result<Vec<AlertEvent>, HostError> {
        let snapshot = wit::CreditSnapshot {
            key: snapshot.key.as_ref().map(key_to_wit),
            credits: snapshot.credits.map(|c| wit::CreditsInfo {
                total_credits: c.total_credits,
                total_usage: c.total_usage,
            }),
        };
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_credits()
                    .credit_monitor()
                    .call_observe(store, this, &snapshot, now_ms, wall_clock_ms)
            })
            .map(|events| {
                events
                    .into_iter()
                    .map(|e| AlertEvent {
                        alert: alert_kind_from_wit(e.alert),
                        state: match e.state {
                            wit::AlertState::Fired => AlertState::Fired,
                            wit::AlertState::Resolved => AlertState::Resolved,
                        },
                        value: e.value,
                        threshold: e.threshold,
                        message: e.message,
                    })
                    .collect()
            })
    }

    /// What was known after the last snapshot.
    pub fn status(&self) -> Result<CreditStatus, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_credits()
                    .credit_monitor()
                    .call_status(store, this)
            })
            .map(|s| CreditStatus {
                balance_usd: s.balance_usd,
                account_balance_usd: s.account_balance_usd,
                key_remaining_usd: s.key_remaining_usd,
                account_burn_usd_per_hour: s.account_burn_usd_per_hour,
                key_burn_usd_per_hour: s.key_burn_usd_per_hour,
                runway_hours: s.runway_hours,
                runway_unlimited: s.runway_unlimited,
                daily_spend_usd: s.daily_spend_usd,
                active: s.active.into_iter().map(alert_kind_from_wit).collect(),
            })
    }

    /// The whole state as JSON: the serde form of a native
    /// [`CreditMonitor`](llm_resilience::credits::CreditMonitor).
    pub fn snapshot(&self) -> Result<String, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_credits()
                .credit_monitor()
                .call_snapshot(store, this)
        })
    }
}

fn alert_kind_from_wit(k: wit::AlertKind) -> AlertKind {
    match k {
        wit::AlertKind::BalanceCritical => AlertKind::BalanceCritical,
        wit::AlertKind::BalanceWarning => AlertKind::BalanceWarning,
        wit::AlertKind::Runway => AlertKind::Runway,
        wit::AlertKind::DailySpend => AlertKind::DailySpend,
    }
}

fn credits_from_wit(c: wit::CreditsInfo) -> CreditsInfo {
    CreditsInfo {
        total_credits: c.total_credits,
        total_usage: c.total_usage,
    }
}

fn key_from_wit(k: wit::KeyInfo) -> KeyInfo {
    KeyInfo {
        label: k.label,
        usage: k.usage,
        usage_daily: k.usage_daily,
        usage_weekly: k.usage_weekly,
        usage_monthly: k.usage_monthly,
        byok_usage: k.byok_usage,
        limit: k.limit,
        limit_remaining: k.limit_remaining,
        limit_reset: k.limit_reset.map(|r| match r {
            wit::LimitReset::Daily => LimitReset::Daily,
            wit::LimitReset::Weekly => LimitReset::Weekly,
            wit::LimitReset::Monthly => LimitReset::Monthly,
            wit::LimitReset::Other => LimitReset::Other,
        }),
        is_free_tier: k.is_free_tier,
        include_byok_in_limit: k.include_byok_in_limit,
        expires_at: k.expires_at,
    }
}

fn key_to_wit(k: &KeyInfo) -> wit::KeyInfo {
    wit::KeyInfo {
        label: k.label.clone(),
        usage: k.usage,
        usage_daily: k.usage_daily,
        usage_weekly: k.usage_weekly,
        usage_monthly: k.usage_monthly,
        byok_usage: k.byok_usage,
        limit: k.limit,
        limit_remaining: k.limit_remaining,
        limit_reset: k.limit_reset.map(|r| match r {
            LimitReset::Daily => wit::LimitReset::Daily,
            LimitReset::Weekly => wit::LimitReset::Weekly,
            LimitReset::Monthly => wit::LimitReset::Monthly,
            LimitReset::Other => wit::LimitReset::Other,
        }),
        is_free_tier: k.is_free_tier,
        include_byok_in_limit: k.include_byok_in_limit,
        expires_at: k.expires_at.clone(),
    }
}

fn error_from_wit(e: wit::CreditsError) -> CreditsError {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    match e {
        wit::CreditsError::TooLarge(bytes) => CreditsError::TooLarge { bytes: size(bytes) },
        wit::CreditsError::InvalidJson(p) => CreditsError::InvalidJson {
            line: size(p.line),
            column: size(p.column),
        },
        wit::CreditsError::Api(a) => CreditsError::Api {
            code: a.code,
            message: a.message,
        },
        wit::CreditsError::MissingField(field) => CreditsError::MissingField { field },
        wit::CreditsError::InvalidField(f) => CreditsError::InvalidField {
            field: f.field,
            expected: f.expected,
            found: f.found,
        },
        wit::CreditsError::OutOfRange(field) => CreditsError::OutOfRange { field },
    }
}

//! Adapter for the `credits` interface: the parsers, the 402 reader and the `credit-monitor`
//! resource over `llm_resilience::credits`.

use crate::Plugin;
use crate::bindings::exports::llm::resilience::credits::{
    Affordable, AlertEvent, AlertKind, AlertState, ApiError, CreditMonitor, CreditSnapshot,
    CreditStatus, CreditsError, CreditsInfo, Guest, GuestCreditMonitor, InvalidField, JsonPosition,
    KeyInfo, LimitReset,
};
use crate::config::{parse, problems, to_json};
use llm_resilience::credits as core;
use std::cell::RefCell;

/// The `credit-monitor` resource.
pub struct CreditMonitorResource(RefCell<core::CreditMonitor>);

impl Guest for Plugin {
    type CreditMonitor = CreditMonitorResource;

    fn parse_key(body: String) -> Result<KeyInfo, CreditsError> {
        core::parse_key(&body).map(key_to_wit).map_err(error_to_wit)
    }

    fn parse_credits(body: String) -> Result<CreditsInfo, CreditsError> {
        core::parse_credits(&body)
            .map(|c| CreditsInfo {
                total_credits: c.total_credits,
                total_usage: c.total_usage,
            })
            .map_err(error_to_wit)
    }

    fn suggest_max_tokens(text: String) -> Option<Affordable> {
        core::suggest_max_tokens(&text).map(|a| Affordable {
            requested_tokens: a.requested_tokens,
            affordable_tokens: a.affordable_tokens,
            suggested_max_tokens: a.suggested_max_tokens,
        })
    }
}

impl GuestCreditMonitor for CreditMonitorResource {
    fn create(config_json: String) -> Result<CreditMonitor, Vec<String>> {
        let config = parse("credit config", &config_json)?;
        let monitor = core::CreditMonitor::new(config).map_err(problems)?;
        Ok(CreditMonitor::new(CreditMonitorResource(RefCell::new(
            monitor,
        ))))
    }

    fn restore(snapshot_json: String) -> Result<CreditMonitor, Vec<String>> {
        let snapshot = parse("credit-monitor snapshot", &snapshot_json)?;
        let monitor = core::CreditMonitor::restore(snapshot).map_err(problems)?;
        Ok(CreditMonitor::new(CreditMonitorResource(RefCell::new(
            monitor,
        ))))
    }

    fn observe(
        &self,
        snapshot: CreditSnapshot,
        now_ms: u64,
        wall_clock_ms: Option<u64>,
    ) -> Vec<AlertEvent> {
        let snapshot = core::CreditSnapshot {
            key: snapshot.key.map(key_from_wit),
            credits: snapshot.credits.map(|c| core::CreditsInfo {
                total_credits: c.total_credits,
                total_usage: c.total_usage,
            }),
        };
        self.0
            .borrow_mut()
            .observe(&snapshot, now_ms, wall_clock_ms)
            .into_iter()
            .map(|e| AlertEvent {
                alert: alert_kind_to_wit(e.alert),
                state: match e.state {
                    core::AlertState::Fired => AlertState::Fired,
                    core::AlertState::Resolved => AlertState::Resolved,
                },
                value: e.value,
                threshold: e.threshold,
                message: e.message,
            })
            .collect()
    }

    fn status(&self) -> CreditStatus {
        let m = self.0.borrow();
        let s = m.status();
        CreditStatus {
            balance_usd: s.balance_usd,
            account_balance_usd: s.account_balance_usd,
            key_remaining_usd: s.key_remaining_usd,
            account_burn_usd_per_hour: s.account_burn_usd_per_hour,
            key_burn_usd_per_hour: s.key_burn_usd_per_hour,
            runway_hours: s.runway_hours,
            runway_unlimited: s.runway_unlimited,
            daily_spend_usd: s.daily_spend_usd,
            active: s.active.iter().copied().map(alert_kind_to_wit).collect(),
        }
    }

    fn snapshot(&self) -> String {
        to_json(&*self.0.borrow())
    }
}

fn alert_kind_to_wit(k: core::AlertKind) -> AlertKind {
    match k {
        core::AlertKind::BalanceCritical => AlertKind::BalanceCritical,
        core::AlertKind::BalanceWarning => AlertKind::BalanceWarning,
        core::AlertKind::Runway => AlertKind::Runway,
        core::AlertKind::DailySpend => AlertKind::DailySpend,
    }
}

fn key_to_wit(k: core::KeyInfo) -> KeyInfo {
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
            core::LimitReset::Daily => LimitReset::Daily,
            core::LimitReset::Weekly => LimitReset::Weekly,
            core::LimitReset::Monthly => LimitReset::Monthly,
            core::LimitReset::Other => LimitReset::Other,
        }),
        is_free_tier: k.is_free_tier,
        include_byok_in_limit: k.include_byok_in_limit,
        expires_at: k.expires_at,
    }
}

fn key_from_wit(k: KeyInfo) -> core::KeyInfo {
    core::KeyInfo {
        label: k.label,
        usage: k.usage,
        usage_daily: k.usage_daily,
        usage_weekly: k.usage_weekly,
        usage_monthly: k.usage_monthly,
        byok_usage: k.byok_usage,
        limit: k.limit,
        limit_remaining: k.limit_remaining,
        limit_reset: k.limit_reset.map(|r| match r {
            LimitReset::Daily => core::LimitReset::Daily,
            LimitReset::Weekly => core::LimitReset::Weekly,
            LimitReset::Monthly => core::LimitReset::Monthly,
            LimitReset::Other => core::LimitReset::Other,
        }),
        is_free_tier: k.is_free_tier,
        include_byok_in_limit: k.include_byok_in_limit,
        expires_at: k.expires_at,
    }
}

fn error_to_wit(e: core::CreditsError) -> CreditsError {
    match e {
        core::CreditsError::TooLarge { bytes } => CreditsError::TooLarge(bytes as u64),
        core::CreditsError::InvalidJson { line, column } => {
            CreditsError::InvalidJson(JsonPosition {
                line: line as u64,
                column: column as u64,
            })
        }
        core::CreditsError::Api { code, message } => CreditsError::Api(ApiError { code, message }),
        core::CreditsError::MissingField { field } => CreditsError::MissingField(field),
        core::CreditsError::InvalidField {
            field,
            expected,
            found,
        } => CreditsError::InvalidField(InvalidField {
            field,
            expected,
            found,
        }),
        core::CreditsError::OutOfRange { field } => CreditsError::OutOfRange(field),
    }
}

//! Credit monitoring: warn early, once, and never spam.
//!
//! # Why
//!
//! A support bot that runs out of OpenRouter credit does not degrade: every call fails with a
//! 402 until someone tops up, and customers get no answer. The Go service checks the balance
//! every hour against fixed thresholds and logs a warning *every hour* while the balance is low
//! — so operators learn to ignore it, and nothing tells them how long the money will last.
//!
//! This module gives the host three things, all pure (no IO, no clock reads):
//!
//! 1. **Parsers** for OpenRouter's `GET /api/v1/key` ([`parse_key`]) and `GET /api/v1/credits`
//!    ([`parse_credits`]) bodies, tolerant of missing, `null`, new and deprecated fields (such
//!    as `rate_limit`, whose own `note` says it is "deprecated and safe to ignore"), with typed
//!    errors ([`CreditsError`]) and a size cap ([`MAX_RESPONSE_BYTES`]).
//! 2. A **monitor** ([`CreditMonitor`]) fed [`CreditSnapshot`]s that returns [`AlertEvent`]s.
//! 3. A reader for OpenRouter's 402 "can only afford M" message ([`suggest_max_tokens`]).
//!
//! # What the monitor watches
//!
//! - **Balance**: the account's `total_credits − total_usage` (from `/credits`, which needs a
//!   management key) and the key's `limit_remaining` (from `/key`, when the key has a limit);
//!   with both, the smaller one binds. Two thresholds: warning ($5) and critical ($1).
//! - **Daily spend**: the key's `usage_daily` (OpenRouter's own counter for the current UTC
//!   day), or — when it is absent — what the total usage grew by since the first snapshot of
//!   the current UTC day (that needs the wall clock; spend before that first snapshot is not
//!   seen). With several measures, the largest counts. Threshold $1/day.
//! - **Runway**: hours of balance left at the current burn rate. Threshold 24 h. A key whose
//!   limit resets (`limit_reset`: daily, weekly, monthly, at midnight UTC) before it would run
//!   out does not limit the runway — its money comes back first (this needs the wall clock).
//!
//! # Once per crossing (hysteresis)
//!
//! Each alert is a two-state machine: *armed* and *fired*. An armed alert fires when its value
//! crosses the threshold and emits one [`AlertState::Fired`] event; it then stays silent however
//! long the condition lasts. It re-arms — emitting one [`AlertState::Resolved`] event — only
//! when the value recovers **clearly**: `hysteresis_percent` (default 20 %) beyond the
//! threshold (a balance back above $1.20 for the $1 alert; a daily spend back under $0.80 for
//! the $1/day alert). A balance that wobbles around $1.00 as calls are billed and refunded does
//! not page anyone twice. When the critical balance alert fires in the same snapshot as the
//! warning (a big drop), only the critical event is emitted; the warning is marked fired too.
//!
//! # Why burn comes from total usage
//!
//! `usage_daily` drops to zero at UTC midnight. A burn rate computed from its deltas would see a
//! negative spend at midnight — a runway alert that resolves and fires again every night — and a
//! burn rate computed from *balance* deltas would read every top-up as negative spend. The
//! monitor instead derives burn from the **total** usage (`usage` of the key, `total_usage` of
//! the account), which only grows: burn = growth of total usage over the last
//! `burn_window_ms` (default 6 h), in dollars per hour. It needs at least `min_burn_span_ms`
//! (default 30 min) of history; before that the runway is unknown and its alert does not move.
//! The history is a bounded list of anchor points (at most [`MAX_ANCHORS`] per source, one per
//! `burn_window_ms / 32`), so memory is constant however often the host polls.
//!
//! # Clocks
//!
//! `now_ms` is the caller's monotonic clock, kept by the monitor's [`Clock`] under the rule
//! every handle follows ([`crate::clock`]); burn history is stored in the monitor's time. A
//! snapshot at the same `now_ms` as the previous one (a duplicate) updates the values but adds
//! no history; so does one up to 1 s *earlier* (jitter: the clock stands still). A clock that
//! goes further **backwards** starts a new epoch (typically a restart restored the monitor's
//! state into a process whose monotonic clock started again near zero): the time between the
//! last snapshot and this one is unknown, so the burn history cannot be continued — it is
//! dropped and rebuilt from that snapshot on, while the alert states are kept; nothing fires
//! again just because the process restarted. The same happens when a total usage goes *down*
//! (another key or account was fed in). A forward step counts at most 2³² ms (49.7 days),
//! longer than any burn window, so a far-future `now_ms` only ages the history out. The
//! monitor's serde form carries a format `version` and the clock. `wall_clock_ms` (Unix time, ms) is only used to know
//! the UTC day; a wall clock that steps back into an earlier day is ignored for day changes.
//!
//! # Secrets
//!
//! `/key` returns a `label` that can be the key itself (OpenRouter's own docs show a full
//! `sk-or-v1-…` there). Every label, error message and alert message goes through
//! [`crate::redact::redact`]; parse errors name fields and JSON types, never values.

use crate::clock::{Clock, SNAPSHOT_VERSION, Step, check_version};
use crate::config::{ConfigError, Problems};
use crate::redact::redact;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;

/// The largest `/key` or `/credits` body parsed, in bytes. Real bodies are under 1 KiB; a
/// larger one is rejected with [`CreditsError::TooLarge`] before any parsing.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// [`suggest_max_tokens`] reads at most this many bytes of its input (a 402 body with many
/// `previous_errors` is a few KiB).
pub const MAX_AFFORD_SCAN_BYTES: usize = 64 * 1024;

/// The safety margin [`suggest_max_tokens`] keeps below the affordable number, in percent.
///
/// OpenRouter computes "can only afford M" for the provider it tried; a retry may be routed to
/// another provider at a different price (one real 402 lists six providers affording between
/// 3 395 and 5 365 tokens) and the balance keeps moving while other calls are billed. 5 %
/// below the smallest affordable number absorbs that without giving away much of the answer.
pub const AFFORD_MARGIN_PERCENT: u64 = 5;

/// Dollar amounts beyond ±this are rejected as out of range (keeps all arithmetic exact in
/// micro-dollars).
pub const MAX_USD: f64 = 1e9;

/// The most burn-history anchor points kept per source.
pub const MAX_ANCHORS: usize = 64;

/// Anchors are at least `burn_window_ms / ANCHOR_DIVISOR` apart.
const ANCHOR_DIVISOR: u64 = 32;
/// The longest string field kept from a response (a label, a date), in bytes.
const MAX_FIELD_BYTES: usize = 128;
/// The longest error message kept from an API error body, in bytes.
const MAX_MESSAGE_BYTES: usize = 512;
const MS_PER_HOUR: f64 = 3_600_000.0;
const MS_PER_DAY: u64 = 86_400_000;
const MICROS_PER_USD: f64 = 1_000_000.0;

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A `/key` or `/credits` body that cannot be used. Messages carry field names and JSON types,
/// never field values (which could be a key); an API error's message is redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum CreditsError {
    /// The body is longer than [`MAX_RESPONSE_BYTES`].
    #[error("response of {bytes} bytes is larger than the {MAX_RESPONSE_BYTES} bytes parsed")]
    TooLarge {
        /// The body's length.
        bytes: usize,
    },
    /// The body is not JSON.
    #[error("response is not valid JSON (line {line}, column {column})")]
    InvalidJson {
        /// Where the parser stopped, 1-based.
        line: usize,
        /// Where the parser stopped, 1-based.
        column: usize,
    },
    /// OpenRouter answered with an error envelope (`{"error":{"code":401,"message":…}}`).
    #[error("OpenRouter returned an error{}: {message}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    Api {
        /// `error.code`, when it is a number.
        code: Option<i64>,
        /// `error.message`, redacted, at most 512 bytes.
        message: String,
    },
    /// A required field is missing or `null` (`data` itself, or `/credits` totals).
    #[error("response has no {field}")]
    MissingField {
        /// The field's path, e.g. `data.total_credits`.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("{field} must be {expected}, got {found}")]
    InvalidField {
        /// The field's path.
        field: String,
        /// The expected type.
        expected: String,
        /// The JSON type found.
        found: String,
    },
    /// A number is negative where it cannot be, or beyond ±[`MAX_USD`].
    #[error("{field} is out of range")]
    OutOfRange {
        /// The field's path.
        field: String,
    },
}

impl CreditsError {
    /// A short stable code: `too-large`, `invalid-json`, `api`, `missing-field`,
    /// `invalid-field`, `out-of-range`.
    pub const fn code(&self) -> &'static str {
        match self {
            CreditsError::TooLarge { .. } => "too-large",
            CreditsError::InvalidJson { .. } => "invalid-json",
            CreditsError::Api { .. } => "api",
            CreditsError::MissingField { .. } => "missing-field",
            CreditsError::InvalidField { .. } => "invalid-field",
            CreditsError::OutOfRange { .. } => "out-of-range",
        }
    }
}

/// When a key's spending limit resets (OpenRouter: at midnight UTC; weeks start on Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitReset {
    /// Every UTC day.
    Daily,
    /// Every UTC week (Monday).
    Weekly,
    /// Every UTC month.
    Monthly,
    /// A value this version does not know (OpenRouter documents the enum as open).
    Other,
}

/// What `GET /api/v1/key` says about the key. Every field is optional: OpenRouter has added and
/// deprecated fields over time, and a field the monitor does not need must not break it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyInfo {
    /// The key's label, redacted (it can be the key itself), at most 128 bytes.
    pub label: Option<String>,
    /// Total OpenRouter credit usage of the key, USD. Only grows.
    pub usage: Option<f64>,
    /// Usage in the current UTC day, USD (resets at midnight UTC).
    pub usage_daily: Option<f64>,
    /// Usage in the current UTC week (Monday–Sunday), USD.
    pub usage_weekly: Option<f64>,
    /// Usage in the current UTC month, USD.
    pub usage_monthly: Option<f64>,
    /// Total BYOK usage, USD.
    pub byok_usage: Option<f64>,
    /// The key's spending limit, USD; `None`: unlimited.
    pub limit: Option<f64>,
    /// What is left of the limit, USD (can be slightly negative after an overshoot).
    pub limit_remaining: Option<f64>,
    /// When the limit resets; `None`: never.
    pub limit_reset: Option<LimitReset>,
    /// Whether the key is on the free tier.
    pub is_free_tier: Option<bool>,
    /// Whether BYOK usage counts against the limit.
    pub include_byok_in_limit: Option<bool>,
    /// When the key expires (ISO 8601, as sent), at most 128 bytes.
    pub expires_at: Option<String>,
}

/// What `GET /api/v1/credits` says about the account (needs a management key).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CreditsInfo {
    /// Credits ever bought, USD.
    pub total_credits: f64,
    /// Credits ever used, USD. Only grows.
    pub total_usage: f64,
}

impl CreditsInfo {
    /// `total_credits − total_usage`, USD.
    pub fn balance(&self) -> f64 {
        self.total_credits - self.total_usage
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_string()
}

/// Parses the body into `data`, or the typed error.
fn data_object(body: &str) -> Result<serde_json::Map<String, Value>, CreditsError> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(CreditsError::TooLarge { bytes: body.len() });
    }
    let value: Value = serde_json::from_str(body).map_err(|e| CreditsError::InvalidJson {
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(mut top) = value else {
        return Err(CreditsError::InvalidField {
            field: "response".into(),
            expected: "an object".into(),
            found: json_type(&value).into(),
        });
    };
    if let Some(Value::Object(error)) = top.get("error") {
        let code = error.get("code").and_then(Value::as_i64);
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(CreditsError::Api {
            code,
            message: cut(&redact(message), MAX_MESSAGE_BYTES),
        });
    }
    match top.remove("data") {
        None | Some(Value::Null) => Err(CreditsError::MissingField {
            field: "data".into(),
        }),
        Some(Value::Object(data)) => Ok(data),
        Some(other) => Err(CreditsError::InvalidField {
            field: "data".into(),
            expected: "an object".into(),
            found: json_type(&other).into(),
        }),
    }
}

/// How a number field may range.
#[derive(Clone, Copy)]
enum Sign {
    NonNegative,
    Any,
}

fn number(
    data: &serde_json::Map<String, Value>,
    name: &str,
    sign: Sign,
) -> Result<Option<f64>, CreditsError> {
    let field = || format!("data.{name}");
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let x = n
                .as_f64()
                .ok_or_else(|| CreditsError::OutOfRange { field: field() })?;
            let ok = x.is_finite() && x.abs() <= MAX_USD && (matches!(sign, Sign::Any) || x >= 0.0);
            if ok {
                Ok(Some(x))
            } else {
                Err(CreditsError::OutOfRange { field: field() })
            }
        }
        Some(other) => Err(CreditsError::InvalidField {
            field: field(),
            expected: "a number".into(),
            found: json_type(other).into(),
        }),
    }
}

fn boolean(
    data: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<bool>, CreditsError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(CreditsError::InvalidField {
            field: format!("data.{name}"),
            expected: "a boolean".into(),
            found: json_type(other).into(),
        }),
    }
}

fn string(
    data: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, CreditsError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(cut(&redact(s), MAX_FIELD_BYTES))),
        Some(other) => Err(CreditsError::InvalidField {
            field: format!("data.{name}"),
            expected: "a string".into(),
            found: json_type(other).into(),
        }),
    }
}

/// Parses a `GET /api/v1/key` body (`{"data":{"label":…,"usage":…,"limit":…,…}}`).
///
/// Missing and `null` fields become `None`; unknown and deprecated fields (`rate_limit`,
/// `is_provisioning_key`, …) are ignored. A field of the wrong JSON type, a negative usage or
/// limit, and a body over [`MAX_RESPONSE_BYTES`] are errors; an `{"error":…}` envelope is
/// [`CreditsError::Api`].
pub fn parse_key(body: &str) -> Result<KeyInfo, CreditsError> {
    let data = data_object(body)?;
    let limit_reset =
        string(&data, "limit_reset")?.map(|s| match s.to_ascii_lowercase().as_str() {
            "daily" => LimitReset::Daily,
            "weekly" => LimitReset::Weekly,
            "monthly" => LimitReset::Monthly,
            _ => LimitReset::Other,
        });
    Ok(KeyInfo {
        label: string(&data, "label")?,
        usage: number(&data, "usage", Sign::NonNegative)?,
        usage_daily: number(&data, "usage_daily", Sign::NonNegative)?,
        usage_weekly: number(&data, "usage_weekly", Sign::NonNegative)?,
        usage_monthly: number(&data, "usage_monthly", Sign::NonNegative)?,
        byok_usage: number(&data, "byok_usage", Sign::NonNegative)?,
        limit: number(&data, "limit", Sign::NonNegative)?,
        limit_remaining: number(&data, "limit_remaining", Sign::Any)?,
        limit_reset,
        is_free_tier: boolean(&data, "is_free_tier")?,
        include_byok_in_limit: boolean(&data, "include_byok_in_limit")?,
        expires_at: string(&data, "expires_at")?,
    })
}

/// Parses a `GET /api/v1/credits` body (`{"data":{"total_credits":…,"total_usage":…}}`).
/// Both totals are required and must be non-negative.
pub fn parse_credits(body: &str) -> Result<CreditsInfo, CreditsError> {
    let data = data_object(body)?;
    let required = |name: &str| {
        number(&data, name, Sign::NonNegative)?.ok_or_else(|| CreditsError::MissingField {
            field: format!("data.{name}"),
        })
    };
    Ok(CreditsInfo {
        total_credits: required("total_credits")?,
        total_usage: required("total_usage")?,
    })
}

// ---------------------------------------------------------------------------------------------
// 402 "can only afford"
// ---------------------------------------------------------------------------------------------

/// What a 402 "can only afford" message says, and the `max_tokens` to retry with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affordable {
    /// "You requested up to N tokens" (from the same sentence as the smallest `affordable`).
    pub requested_tokens: Option<u64>,
    /// The smallest "can only afford M" in the text (a body with `previous_errors` has one per
    /// provider tried).
    pub affordable_tokens: u64,
    /// `affordable_tokens` minus [`AFFORD_MARGIN_PERCENT`] (rounded down), never more than
    /// `requested_tokens`; `None` when nothing is left (top up instead of retrying).
    pub suggested_max_tokens: Option<u64>,
}

/// Finds ASCII `needle` in `hay` case-insensitively from `from`; returns the index after it.
fn find_after(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let hay_rest = hay.get(from..)?;
    hay_rest
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p + needle.len())
}

/// A decimal number at `at` (at most 18 digits, so it fits a `u64`).
fn digits_at(hay: &[u8], at: usize) -> Option<u64> {
    let rest = hay.get(at..)?;
    let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 18 {
        return None;
    }
    rest.get(..len)?.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Reads OpenRouter's 402 "This request requires more credits, or fewer max_tokens. You
/// requested up to N tokens, but can only afford M." — from the message or the whole JSON body
/// — and suggests a `max_tokens` that fits: the smallest `M` found, minus
/// [`AFFORD_MARGIN_PERCENT`]. `None` when the text has no "can only afford M". Only the first
/// [`MAX_AFFORD_SCAN_BYTES`] bytes are read.
pub fn suggest_max_tokens(text: &str) -> Option<Affordable> {
    let bytes = text.as_bytes();
    let hay = bytes.get(..bytes.len().min(MAX_AFFORD_SCAN_BYTES))?;
    const AFFORD: &[u8] = b"can only afford ";
    const REQUESTED: &[u8] = b"requested up to ";
    /// "requested up to N" must be this close before "can only afford" to pair with it.
    const PAIR_WINDOW: usize = 128;
    let mut best: Option<(u64, Option<u64>)> = None;
    let mut from = 0;
    while let Some(at) = find_after(hay, AFFORD, from) {
        from = at;
        let Some(afford) = digits_at(hay, at) else {
            continue;
        };
        let start = at.saturating_sub(AFFORD.len() + PAIR_WINDOW);
        let mut requested = None;
        let mut r_from = start;
        while let Some(r_at) = find_after(hay, REQUESTED, r_from) {
            if r_at >= at {
                break;
            }
            requested = digits_at(hay, r_at).or(requested);
            r_from = r_at;
        }
        if best.is_none_or(|(a, _)| afford < a) {
            best = Some((afford, requested));
        }
    }
    let (affordable_tokens, requested_tokens) = best?;
    let mut suggested = affordable_tokens - affordable_tokens * AFFORD_MARGIN_PERCENT / 100;
    if let Some(r) = requested_tokens {
        suggested = suggested.min(r);
    }
    Some(Affordable {
        requested_tokens,
        affordable_tokens,
        suggested_max_tokens: (suggested > 0).then_some(suggested),
    })
}

// ---------------------------------------------------------------------------------------------
// Monitor
// ---------------------------------------------------------------------------------------------

/// Settings of a [`CreditMonitor`]. Every field has a documented default; `None` disables an
/// alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreditConfig {
    /// Warn when the balance falls under this, USD. Default `Some(5.0)`. > 0, and above
    /// `critical_balance_usd`.
    pub warning_balance_usd: Option<f64>,
    /// Critical when the balance falls under this, USD. Default `Some(1.0)`. > 0.
    pub critical_balance_usd: Option<f64>,
    /// Alert when the spend of the current UTC day goes over this, USD. Default `Some(1.0)`.
    /// > 0.
    pub daily_spend_usd: Option<f64>,
    /// Alert when fewer than this many hours of balance are left at the current burn rate.
    /// Default `Some(24.0)`. > 0, at most 1 000 000.
    pub runway_hours: Option<f64>,
    /// How far beyond its threshold a value must recover before an alert re-arms, in percent
    /// of the threshold. Default 20. 1..=90.
    pub hysteresis_percent: u32,
    /// The burn rate is the growth of total usage over this window, ms. Default 21 600 000
    /// (6 h). 60 000 ..= 2 592 000 000 (30 days).
    pub burn_window_ms: u64,
    /// The least history that gives a burn rate, ms. Default 1 800 000 (30 min).
    /// 1 ..= `burn_window_ms`.
    pub min_burn_span_ms: u64,
}

impl Default for CreditConfig {
    fn default() -> Self {
        CreditConfig {
            warning_balance_usd: Some(5.0),
            critical_balance_usd: Some(1.0),
            daily_spend_usd: Some(1.0),
            runway_hours: Some(24.0),
            hysteresis_percent: 20,
            burn_window_ms: 21_600_000,
            min_burn_span_ms: 1_800_000,
        }
    }
}

impl CreditConfig {
    /// Checks every field; lists each rejected one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        let usd = |p: &mut Problems, name: &str, v: Option<f64>| {
            if let Some(x) = v {
                p.check(x.is_finite() && x > 0.0 && x <= MAX_USD, || {
                    format!("{name} must be > 0 and <= {MAX_USD} or null (got {x})")
                });
            }
        };
        usd(&mut p, "warning_balance_usd", self.warning_balance_usd);
        usd(&mut p, "critical_balance_usd", self.critical_balance_usd);
        usd(&mut p, "daily_spend_usd", self.daily_spend_usd);
        if let (Some(w), Some(c)) = (self.warning_balance_usd, self.critical_balance_usd) {
            p.check(w > c, || {
                format!("warning_balance_usd ({w}) must be above critical_balance_usd ({c})")
            });
        }
        if let Some(h) = self.runway_hours {
            p.check(h.is_finite() && h > 0.0 && h <= 1_000_000.0, || {
                format!("runway_hours must be > 0 and <= 1000000 or null (got {h})")
            });
        }
        p.check((1..=90).contains(&self.hysteresis_percent), || {
            format!(
                "hysteresis_percent must be in 1..=90 (got {})",
                self.hysteresis_percent
            )
        });
        p.check(
            (60_000..=2_592_000_000).contains(&self.burn_window_ms),
            || {
                format!(
                    "burn_window_ms must be in 60000..=2592000000 (got {})",
                    self.burn_window_ms
                )
            },
        );
        p.check(
            self.min_burn_span_ms >= 1 && self.min_burn_span_ms <= self.burn_window_ms,
            || {
                format!(
                    "min_burn_span_ms must be in 1..=burn_window_ms (got {})",
                    self.min_burn_span_ms
                )
            },
        );
        p.finish(())
    }
}

/// One poll's worth of data: either response, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreditSnapshot {
    /// From `GET /api/v1/key`.
    pub key: Option<KeyInfo>,
    /// From `GET /api/v1/credits`.
    pub credits: Option<CreditsInfo>,
}

/// Which alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// The balance is under the critical threshold.
    BalanceCritical,
    /// The balance is under the warning threshold.
    BalanceWarning,
    /// The runway is under its threshold.
    Runway,
    /// Today's spend is over its threshold.
    DailySpend,
}

impl AlertKind {
    /// Every kind, in the order events are emitted.
    pub const ALL: [AlertKind; 4] = [
        AlertKind::BalanceCritical,
        AlertKind::BalanceWarning,
        AlertKind::Runway,
        AlertKind::DailySpend,
    ];

    /// The kebab-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::BalanceCritical => "balance-critical",
            AlertKind::BalanceWarning => "balance-warning",
            AlertKind::Runway => "runway",
            AlertKind::DailySpend => "daily-spend",
        }
    }

    const fn index(self) -> usize {
        match self {
            AlertKind::BalanceCritical => 0,
            AlertKind::BalanceWarning => 1,
            AlertKind::Runway => 2,
            AlertKind::DailySpend => 3,
        }
    }
}

/// Whether an alert started or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertState {
    /// The value crossed the threshold; the alert will not fire again until it resolves.
    Fired,
    /// The value recovered clearly past the threshold; the alert is armed again.
    Resolved,
}

/// One alert event. At most one `Fired` per crossing, one `Resolved` per recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Which alert.
    pub alert: AlertKind,
    /// Started or ended.
    pub state: AlertState,
    /// The value that crossed: USD for balance and daily spend, hours for runway; `None` for a
    /// runway that became unlimited (no spend over the burn window).
    pub value: Option<f64>,
    /// The threshold, in the same unit.
    pub threshold: f64,
    /// A human-readable line for an operator, redacted.
    pub message: String,
}

/// What the monitor knew after the last snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreditStatus {
    /// The binding balance, USD (the smaller of the account balance and the key's remaining
    /// limit).
    pub balance_usd: Option<f64>,
    /// The account balance, `total_credits − total_usage`, USD.
    pub account_balance_usd: Option<f64>,
    /// The key's `limit_remaining`, USD.
    pub key_remaining_usd: Option<f64>,
    /// The account's burn rate, USD per hour.
    pub account_burn_usd_per_hour: Option<f64>,
    /// The key's burn rate, USD per hour.
    pub key_burn_usd_per_hour: Option<f64>,
    /// Hours of balance left; `None` when unknown or unlimited (see `runway_unlimited`).
    pub runway_hours: Option<f64>,
    /// True when a burn rate of zero makes the runway unlimited.
    pub runway_unlimited: bool,
    /// Today's spend, USD.
    pub daily_spend_usd: Option<f64>,
    /// Alerts currently fired, in [`AlertKind::ALL`] order.
    pub active: Vec<AlertKind>,
}

/// One total-usage series (the account's or the key's): burn history and the UTC-day baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Series {
    /// `(now_ms, usage_micros)` anchor points (the monitor's time), oldest first.
    anchors: VecDeque<(u64, i64)>,
    /// The latest point.
    last: Option<(u64, i64)>,
    /// `(utc_day, usage_micros)` at the first snapshot of that day.
    day: Option<(u64, i64)>,
}

/// Burn, in micro-dollars per hour: `None` unknown.
type Burn = Option<f64>;

impl Series {
    fn clear_history(&mut self) {
        self.anchors.clear();
        self.last = None;
    }

    /// Records `usage` at `now`; returns the burn rate.
    fn observe(&mut self, now: u64, usage: i64, day: Option<u64>, config: &CreditConfig) -> Burn {
        if self.last.is_some_and(|(_, u)| usage < u) {
            // Total usage never shrinks: this is another key or account. Start over.
            self.clear_history();
            self.day = None;
        }
        self.last = Some((now, usage));
        let spacing = (config.burn_window_ms / ANCHOR_DIVISOR).max(1);
        if self
            .anchors
            .back()
            .is_none_or(|(t, _)| now.saturating_sub(*t) >= spacing)
        {
            self.anchors.push_back((now, usage));
        }
        let window_start = now.saturating_sub(config.burn_window_ms);
        while self.anchors.front().is_some_and(|(t, _)| *t < window_start)
            || self.anchors.len() > MAX_ANCHORS
        {
            self.anchors.pop_front();
        }
        if let Some(d) = day
            && self.day.is_none_or(|(old, _)| d > old)
        {
            self.day = Some((d, usage));
        }
        let (t0, u0) = *self.anchors.front()?;
        let span = now.saturating_sub(t0);
        if span < config.min_burn_span_ms || span == 0 {
            return None;
        }
        Some((usage.saturating_sub(u0)) as f64 * MS_PER_HOUR / span as f64)
    }

    /// Spend since the first snapshot of the current UTC day, micro-dollars.
    fn day_spend(&self, day: Option<u64>) -> Option<i64> {
        day?;
        let (_, u0) = self.day?;
        let (_, u) = self.last?;
        Some(u.saturating_sub(u0).max(0))
    }
}

/// Monitor state that survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct MonitorState {
    /// The monitor's time (`last_now_ms`, a number or null, before snapshot version 1).
    #[serde(alias = "last_now_ms")]
    clock: Clock,
    /// The account's total-usage series.
    account: Series,
    /// The key's total-usage series.
    key: Series,
    /// Fired flags, by [`AlertKind::index`].
    fired: [bool; 4],
    /// What was known after the last snapshot.
    status: CreditStatus,
}

/// Watches credit snapshots and emits alerts once per crossing. Serializable: export it with
/// serde and bring it back with [`CreditMonitor::restore`], so a restart neither forgets the
/// burn history nor fires the same alerts again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreditMonitor {
    /// Snapshot format; 0 when read from a snapshot written before versions existed.
    #[serde(default)]
    version: u32,
    config: CreditConfig,
    state: MonitorState,
}

fn micros(usd: f64) -> i64 {
    // Callers bound |usd| by MAX_USD, so this is exact to the micro-dollar and cannot saturate.
    (usd * MICROS_PER_USD).round() as i64
}

fn usd(micros: i64) -> f64 {
    micros as f64 / MICROS_PER_USD
}

/// The runway of one balance at one burn rate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Runway {
    Unknown,
    Unlimited,
    Hours(f64),
}

fn runway_of(balance: i64, burn: Burn) -> Runway {
    if balance <= 0 {
        return Runway::Hours(0.0);
    }
    match burn {
        None => Runway::Unknown,
        Some(b) if b <= 0.0 => Runway::Unlimited,
        Some(b) => Runway::Hours(balance as f64 / b),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month)` of a day since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn year_month(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// Hours from `wall_ms` (Unix time) to the key limit's next reset: midnight UTC; Monday for
/// weekly limits; the 1st of the month for monthly ones. `None` for an unknown period.
fn hours_until_reset(reset: LimitReset, wall_ms: u64) -> Option<f64> {
    let today = i64::try_from(wall_ms / MS_PER_DAY).ok()?;
    let next_day = match reset {
        LimitReset::Daily => today + 1,
        // 1970-01-01 was a Thursday: (days + 3) % 7 is 0 on Mondays.
        LimitReset::Weekly => today + 7 - (today + 3).rem_euclid(7),
        LimitReset::Monthly => {
            let (y, m) = year_month(today);
            if m == 12 {
                days_from_civil(y + 1, 1, 1)
            } else {
                days_from_civil(y, m + 1, 1)
            }
        }
        LimitReset::Other => return None,
    };
    let next_ms = u64::try_from(next_day).ok()?.checked_mul(MS_PER_DAY)?;
    Some(next_ms.saturating_sub(wall_ms) as f64 / MS_PER_HOUR)
}

fn combine(a: Runway, b: Runway) -> Runway {
    match (a, b) {
        (Runway::Hours(x), Runway::Hours(y)) => Runway::Hours(x.min(y)),
        (Runway::Hours(x), _) | (_, Runway::Hours(x)) => Runway::Hours(x),
        (Runway::Unknown, _) | (_, Runway::Unknown) => Runway::Unknown,
        _ => Runway::Unlimited,
    }
}

impl CreditMonitor {
    /// A monitor with nothing observed yet.
    pub fn new(config: CreditConfig) -> Result<CreditMonitor, ConfigError> {
        config.validate()?;
        Ok(CreditMonitor {
            version: SNAPSHOT_VERSION,
            config,
            state: MonitorState::default(),
        })
    }

    /// Validates an exported monitor (from serde) and returns it. A newer format `version` is
    /// rejected; a snapshot without one is migrated (its `last_now_ms` becomes the clock). The
    /// monitor keeps the snapshot's clock: if this process's clock restarted, the first
    /// observation starts a new epoch (see the module docs).
    pub fn restore(mut snapshot: CreditMonitor) -> Result<CreditMonitor, ConfigError> {
        let mut p = Problems::default();
        check_version(&mut p, "version", snapshot.version);
        if let Err(e) = snapshot.config.validate() {
            p.extend("", e);
        }
        for (name, s) in [
            ("account", &snapshot.state.account),
            ("key", &snapshot.state.key),
        ] {
            p.check(s.anchors.len() <= MAX_ANCHORS, || {
                format!("snapshot {name} history holds more than {MAX_ANCHORS} anchors")
            });
            p.check(
                s.anchors
                    .iter()
                    .zip(s.anchors.iter().skip(1))
                    .all(|(a, b)| a.0 < b.0),
                || format!("snapshot {name} history is not in time order"),
            );
            let bound = micros(MAX_USD);
            p.check(
                s.anchors
                    .iter()
                    .map(|a| a.1)
                    .chain(s.last.map(|l| l.1))
                    .chain(s.day.map(|d| d.1))
                    .all(|u| (0..=bound).contains(&u)),
                || format!("snapshot {name} history has usage out of range"),
            );
            let now = snapshot.state.clock.now();
            p.check(
                s.anchors.iter().chain(s.last.iter()).all(|a| a.0 <= now),
                || format!("snapshot {name} history is ahead of the clock"),
            );
        }
        snapshot.version = SNAPSHOT_VERSION;
        p.finish(snapshot)
    }

    /// The configuration.
    pub fn config(&self) -> &CreditConfig {
        &self.config
    }

    /// What was known after the last snapshot.
    pub fn status(&self) -> &CreditStatus {
        &self.state.status
    }

    /// Feeds one snapshot taken at `now_ms` (monotonic clock) and, when known, `wall_clock_ms`
    /// (Unix time, for the UTC day). Returns the alert events it caused, in
    /// [`AlertKind::ALL`] order — usually none.
    pub fn observe(
        &mut self,
        snapshot: &CreditSnapshot,
        now_ms: u64,
        wall_clock_ms: Option<u64>,
    ) -> Vec<AlertEvent> {
        let st = &mut self.state;
        let (now_ms, step) = st.clock.observe_step(now_ms);
        if step == Step::NewEpoch {
            // The clock went backwards (a restart): the time since the last snapshot is
            // unknown, so the history cannot be continued. Rebuild it; keep the alert states.
            st.account.clear_history();
            st.key.clear_history();
        }
        let day = wall_clock_ms.map(|w| w / MS_PER_DAY);
        let config = &self.config;

        let clamp = |x: f64| micros(x.clamp(-MAX_USD, MAX_USD));
        let account_balance = snapshot
            .credits
            .map(|c| clamp(c.total_credits).saturating_sub(clamp(c.total_usage)));
        let account_burn = match snapshot.credits {
            Some(c) if c.total_usage.is_finite() && c.total_usage >= 0.0 => {
                st.account
                    .observe(now_ms, clamp(c.total_usage), day, config)
            }
            _ => None,
        };
        let key = snapshot.key.as_ref();
        let key_remaining = key
            .and_then(|k| k.limit_remaining)
            .filter(|x| x.is_finite())
            .map(clamp);
        let key_burn = match key.and_then(|k| k.usage) {
            Some(u) if u.is_finite() && u >= 0.0 => st.key.observe(now_ms, clamp(u), day, config),
            _ => None,
        };

        let balance = match (account_balance, key_remaining) {
            (Some(a), Some(k)) => Some(a.min(k)),
            (a, k) => a.or(k),
        };
        let runway = {
            let a = account_balance.map_or(Runway::Unknown, |b| runway_of(b, account_burn));
            let reset_in = key
                .and_then(|k| k.limit_reset)
                .zip(wall_clock_ms)
                .and_then(|(reset, wall)| hours_until_reset(reset, wall));
            let k = match (key_remaining.map(|b| runway_of(b, key_burn)), reset_in) {
                // The limit comes back before the key runs out: the key does not limit.
                (Some(Runway::Hours(h)), Some(until)) if h > until => Runway::Unlimited,
                (k, _) => k.unwrap_or(Runway::Unknown),
            };
            match (account_balance, key_remaining) {
                (Some(_), Some(_)) => combine(a, k),
                (Some(_), None) => a,
                (None, Some(_)) => k,
                (None, None) => Runway::Unknown,
            }
        };
        let daily = [
            key.and_then(|k| k.usage_daily)
                .filter(|x| x.is_finite())
                .map(clamp),
            snapshot.credits.and_then(|_| st.account.day_spend(day)),
            key.filter(|k| k.usage.is_some())
                .and_then(|_| st.key.day_spend(day)),
        ]
        .into_iter()
        .flatten()
        .max();

        // Alert machines.
        let h = i64::from(config.hysteresis_percent);
        let label = key
            .and_then(|k| k.label.as_deref())
            .map(|l| format!(" (key {l})"))
            .unwrap_or_default();
        let mut events = Vec::new();
        let mut step = |kind: AlertKind,
                        cross: Option<bool>,
                        recover: bool,
                        value,
                        threshold,
                        text: String| {
            let fired = &mut st.fired[kind.index()];
            if !*fired && cross == Some(true) {
                *fired = true;
                events.push(AlertEvent {
                    alert: kind,
                    state: AlertState::Fired,
                    value,
                    threshold,
                    message: redact(&text),
                });
            } else if *fired && recover {
                *fired = false;
                events.push(AlertEvent {
                    alert: kind,
                    state: AlertState::Resolved,
                    value,
                    threshold,
                    message: redact(&text),
                });
            }
        };
        for (kind, threshold, name) in [
            (
                AlertKind::BalanceCritical,
                config.critical_balance_usd,
                "critical",
            ),
            (
                AlertKind::BalanceWarning,
                config.warning_balance_usd,
                "warning",
            ),
        ] {
            let (Some(t), Some(b)) = (threshold, balance) else {
                continue;
            };
            let tm = micros(t);
            let under = b < tm;
            let recovered = i128::from(b) * 100 >= i128::from(tm) * i128::from(100 + h);
            let text = if under {
                format!(
                    "OpenRouter balance ${:.2}{label} is under the {name} threshold ${t:.2}",
                    usd(b)
                )
            } else {
                format!(
                    "OpenRouter balance ${:.2}{label} is back above the {name} threshold ${t:.2}",
                    usd(b)
                )
            };
            step(kind, Some(under), recovered, Some(usd(b)), t, text);
        }
        if let Some(t) = config.runway_hours {
            let (cross, recover, value) = match runway {
                Runway::Unknown => (None, false, None),
                Runway::Unlimited => (Some(false), true, None),
                Runway::Hours(r) => (Some(r < t), r * 100.0 >= t * (100 + h) as f64, Some(r)),
            };
            let text = match (runway, cross) {
                (Runway::Hours(r), Some(true)) => format!(
                    "OpenRouter credit{label} runs out in about {r:.1} h at the current spend (threshold {t} h)"
                ),
                (Runway::Hours(r), _) => format!(
                    "OpenRouter credit{label} lasts about {r:.1} h again at the current spend (threshold {t} h)"
                ),
                _ => format!(
                    "OpenRouter credit{label}: no spend over the burn window; runway unlimited"
                ),
            };
            step(AlertKind::Runway, cross, recover, value, t, text);
        }
        if let (Some(t), Some(d)) = (config.daily_spend_usd, daily) {
            let tm = micros(t);
            let over = d > tm;
            let recovered = i128::from(d) * 100 <= i128::from(tm) * i128::from(100 - h);
            let text = if over {
                format!(
                    "OpenRouter spend today ${:.2}{label} is over the daily threshold ${t:.2}",
                    usd(d)
                )
            } else {
                format!(
                    "OpenRouter spend today ${:.2}{label} is back under the daily threshold ${t:.2}",
                    usd(d)
                )
            };
            step(
                AlertKind::DailySpend,
                Some(over),
                recovered,
                Some(usd(d)),
                t,
                text,
            );
        }
        // A big drop fires critical and warning together: the critical event says it all.
        if events
            .iter()
            .any(|e| e.alert == AlertKind::BalanceCritical && e.state == AlertState::Fired)
        {
            events.retain(|e| {
                !(e.alert == AlertKind::BalanceWarning && e.state == AlertState::Fired)
            });
        }

        st.status = CreditStatus {
            balance_usd: balance.map(usd),
            account_balance_usd: account_balance.map(usd),
            key_remaining_usd: key_remaining.map(usd),
            account_burn_usd_per_hour: account_burn.map(|b| b / MICROS_PER_USD),
            key_burn_usd_per_hour: key_burn.map(|b| b / MICROS_PER_USD),
            runway_hours: match runway {
                Runway::Hours(r) => Some(r),
                _ => None,
            },
            runway_unlimited: runway == Runway::Unlimited,
            daily_spend_usd: daily.map(usd),
            active: AlertKind::ALL
                .into_iter()
                .filter(|k| st.fired[k.index()])
                .collect(),
        };
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // A FAKE OpenRouter key with the real shape; it was never valid.
    const FAKE_KEY: &str = "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef";
    const HOUR: u64 = 3_600_000;
    /// 2026-11-27T00:00:00Z.
    const DAY0: u64 = 1_795_737_600_000;

    fn key(usage: f64, usage_daily: f64, limit_remaining: Option<f64>) -> CreditSnapshot {
        CreditSnapshot {
            key: Some(KeyInfo {
                label: Some("whatsapp-bot".into()),
                usage: Some(usage),
                usage_daily: Some(usage_daily),
                limit: limit_remaining.map(|_| 50.0),
                limit_remaining,
                ..KeyInfo::default()
            }),
            credits: None,
        }
    }

    fn credits(total_credits: f64, total_usage: f64) -> CreditSnapshot {
        CreditSnapshot {
            key: None,
            credits: Some(CreditsInfo {
                total_credits,
                total_usage,
            }),
        }
    }

    fn kinds(events: &[AlertEvent]) -> Vec<(AlertKind, AlertState)> {
        events.iter().map(|e| (e.alert, e.state)).collect()
    }

    #[test]
    fn parses_the_documented_key_response_and_ignores_deprecated_fields() {
        // OpenRouter's API reference example for GET /api/v1/key.
        let body = r#"{"data":{"byok_usage":17.38,"byok_usage_daily":17.38,"byok_usage_monthly":17.38,"byok_usage_weekly":17.38,"creator_user_id":"user_2dHFtVWx2n56w6HkM0000000000","expires_at":"2027-12-31T23:59:59Z","include_byok_in_limit":false,"is_free_tier":false,"is_management_key":false,"is_provisioning_key":false,"label":"sk-or-v1-au7...890","limit":100,"limit_remaining":74.5,"limit_reset":"monthly","rate_limit":{"interval":"1h","note":"This field is deprecated and safe to ignore.","requests":1000},"usage":25.5,"usage_daily":25.5,"usage_monthly":25.5,"usage_weekly":25.5}}"#;
        let k = parse_key(body).unwrap();
        assert_eq!(k.limit, Some(100.0));
        assert_eq!(k.limit_remaining, Some(74.5));
        assert_eq!(k.limit_reset, Some(LimitReset::Monthly));
        assert_eq!(k.usage_daily, Some(25.5));
        assert_eq!(k.byok_usage, Some(17.38));
        assert_eq!(k.label.as_deref(), Some("[REDACTED]...890"));
        // The same key with every optional field missing or null still parses.
        let k = parse_key(r#"{"data":{"label":null,"limit":null,"rate_limit":{"requests":-1}}}"#)
            .unwrap();
        assert_eq!(k, KeyInfo::default());
    }

    #[test]
    fn errors_name_fields_never_values() {
        let body = format!(r#"{{"data":{{"usage":"{FAKE_KEY}"}}}}"#);
        let e = parse_key(&body).unwrap_err();
        assert_eq!(e.code(), "invalid-field");
        assert!(!e.to_string().contains("sk-or"), "{e}");
        let body =
            format!(r#"{{"error":{{"code":401,"message":"Bearer {FAKE_KEY} is invalid"}}}}"#);
        let e = parse_credits(&body).unwrap_err();
        assert_eq!(
            e,
            CreditsError::Api {
                code: Some(401),
                message: "Bearer [REDACTED] is invalid".into()
            }
        );
        assert!(!e.to_string().contains("0f1e2d3c"), "{e}");
        // A syntax error right after a key: serde_json's own message is not used.
        let e = parse_key(&format!("{{\"data\": {FAKE_KEY}")).unwrap_err();
        assert_eq!(e.code(), "invalid-json");
        assert!(!e.to_string().contains("0f1e2d3c"), "{e}");
    }

    #[test]
    fn oversized_bodies_are_rejected_before_parsing() {
        let body = format!(
            r#"{{"data":{{"label":"{}"}}}}"#,
            "x".repeat(MAX_RESPONSE_BYTES)
        );
        assert_eq!(
            parse_key(&body),
            Err(CreditsError::TooLarge { bytes: body.len() })
        );
        // Just under the cap parses, and the label is cut to 128 bytes at a char boundary.
        let label = "é".repeat((MAX_RESPONSE_BYTES - 40) / 2);
        let k = parse_key(&format!(r#"{{"data":{{"label":"{label}"}}}}"#)).unwrap();
        assert_eq!(k.label.unwrap().len(), MAX_FIELD_BYTES);
    }

    #[test]
    fn burn_survives_the_utc_midnight_reset_of_usage_daily() {
        // 0.50 USD/h from 22:00 to 02:00 UTC; usage_daily resets at midnight.
        let mut m = CreditMonitor::new(CreditConfig {
            daily_spend_usd: None,
            ..CreditConfig::default()
        })
        .unwrap();
        let series = [
            (0, 22, 100.0, 11.0, 20.0),
            (1, 23, 100.5, 11.5, 19.5),
            (2, 24, 101.0, 0.0, 19.0),
            (3, 25, 101.5, 0.5, 18.5),
            (4, 26, 102.0, 1.0, 18.0),
        ];
        for (h, wall_h, usage, daily, remaining) in series {
            let events = m.observe(
                &key(usage, daily, Some(remaining)),
                h * HOUR,
                Some(DAY0 + wall_h * HOUR),
            );
            if h >= 1 {
                assert_eq!(m.status().key_burn_usd_per_hour, Some(0.5), "hour {h}");
                // 19.5 / 0.5 = 39 h, ..., 18 / 0.5 = 36 h: never under 24 h, never an event.
                assert_eq!(m.status().runway_hours, Some(remaining / 0.5));
            }
            assert!(events.is_empty(), "hour {h}: {events:?}");
        }
    }

    #[test]
    fn a_wobbling_balance_alerts_once() {
        let mut m = CreditMonitor::new(CreditConfig {
            runway_hours: None,
            daily_spend_usd: None,
            ..CreditConfig::default()
        })
        .unwrap();
        let mut all = Vec::new();
        // Billed and refunded around the $1 line, every minute, for an hour.
        for i in 0..60u64 {
            let balance = if i % 2 == 0 { 0.98 } else { 1.05 };
            all.extend(m.observe(&credits(10.0 + balance, 10.0), i * 60_000, None));
        }
        assert_eq!(
            kinds(&all),
            [(AlertKind::BalanceCritical, AlertState::Fired),]
        );
        assert_eq!(
            m.status().active,
            [AlertKind::BalanceCritical, AlertKind::BalanceWarning]
        );
    }

    #[test]
    fn a_restart_with_a_new_clock_does_not_fire_again() {
        let mut m = CreditMonitor::new(CreditConfig::default()).unwrap();
        let first = m.observe(&credits(10.0, 9.0), 49 * HOUR, None);
        assert_eq!(
            kinds(&first),
            [(AlertKind::BalanceWarning, AlertState::Fired)]
        );
        // 0.50 USD/h with 0.50 USD left: one hour of runway.
        let second = m.observe(&credits(10.0, 9.5), 50 * HOUR, None);
        assert_eq!(
            kinds(&second),
            [
                (AlertKind::BalanceCritical, AlertState::Fired),
                (AlertKind::Runway, AlertState::Fired),
            ]
        );
        assert_eq!(m.status().runway_hours, Some(1.0));
        assert_eq!(
            m.status().active,
            [
                AlertKind::BalanceCritical,
                AlertKind::BalanceWarning,
                AlertKind::Runway
            ]
        );
        let text = serde_json::to_string(&m).unwrap();
        let mut m = CreditMonitor::restore(serde_json::from_str(&text).unwrap()).unwrap();
        let events = m.observe(&credits(10.0, 9.6), 5, None);
        assert!(events.is_empty(), "{events:?}");
        // A new epoch: the history starts over at the monitor's time, which stood still at 50 h.
        assert_eq!(m.state.account.anchors, [(50 * HOUR, 9_600_000)]);
        assert_eq!(m.status().account_burn_usd_per_hour, None);
    }

    #[test]
    fn jitter_keeps_the_history_and_old_snapshots_are_migrated() {
        let mut m = CreditMonitor::new(CreditConfig::default()).unwrap();
        m.observe(&credits(100.0, 40.0), 10 * HOUR, None);
        m.observe(&credits(100.0, 41.0), 11 * HOUR, None);
        // A reading 0.5 s late (threads racing for the lock): no new epoch, history kept.
        m.observe(&credits(100.0, 41.0), 11 * HOUR - 500, None);
        assert_eq!(m.status().account_burn_usd_per_hour, Some(1.0));
        assert_eq!(m.state.account.anchors.len(), 2);
        // A snapshot written before versions: `last_now_ms` instead of a clock.
        let mut v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["version"], 1);
        let o = v.as_object_mut().unwrap();
        o.remove("version");
        let state = o["state"].as_object_mut().unwrap();
        state.remove("clock");
        state.insert("last_now_ms".into(), (11 * HOUR).into());
        let old = CreditMonitor::restore(serde_json::from_value(v.clone()).unwrap()).unwrap();
        assert_eq!(old, m);
        // A monitor that never observed wrote `last_now_ms: null`: a fresh clock.
        let fresh = CreditMonitor::new(CreditConfig::default()).unwrap();
        let mut f = serde_json::to_value(&fresh).unwrap();
        f.as_object_mut().unwrap().remove("version");
        let state = f["state"].as_object_mut().unwrap();
        state.remove("clock");
        state.insert("last_now_ms".into(), serde_json::Value::Null);
        assert_eq!(
            CreditMonitor::restore(serde_json::from_value(f).unwrap()).unwrap(),
            fresh
        );
        v["version"] = 2.into();
        let err = CreditMonitor::restore(serde_json::from_value(v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 2 is newer"), "{err}");
    }

    #[test]
    fn usage_going_down_starts_the_history_over() {
        let mut m = CreditMonitor::new(CreditConfig::default()).unwrap();
        m.observe(&credits(100.0, 40.0), 0, None);
        m.observe(&credits(100.0, 41.0), HOUR, None);
        assert_eq!(m.status().account_burn_usd_per_hour, Some(1.0));
        // Another account's numbers: no negative burn, no history mixing.
        m.observe(&credits(100.0, 5.0), 2 * HOUR, None);
        assert_eq!(m.status().account_burn_usd_per_hour, None);
        assert_eq!(m.state.account.anchors.len(), 1);
    }

    #[test]
    fn history_is_bounded_however_often_the_host_polls() {
        let mut m = CreditMonitor::new(CreditConfig::default()).unwrap();
        for i in 0..100_000u64 {
            m.observe(&credits(1000.0, i as f64 / 1000.0), i * 1_000, None);
        }
        assert!(m.state.account.anchors.len() <= MAX_ANCHORS);
        // 100 000 s at 0.001 USD/s = 3.6 USD/h.
        let burn = m.status().account_burn_usd_per_hour.unwrap();
        assert!((burn - 3.6).abs() < 1e-9, "{burn}");
    }

    #[test]
    fn restore_rejects_inconsistent_snapshots() {
        let mut m = CreditMonitor::new(CreditConfig::default()).unwrap();
        m.state.account.anchors = (0..=MAX_ANCHORS as u64).map(|i| (i, 0)).collect();
        m.state.key.anchors = [(5, 0), (4, 0)].into_iter().collect();
        m.state.clock = Clock::resumed(MAX_ANCHORS as u64);
        let e = CreditMonitor::restore(m.clone()).unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        // History after the clock's time cannot have been written by this library.
        m.state.clock = Clock::resumed(3);
        let e = CreditMonitor::restore(m).unwrap_err();
        assert_eq!(e.problems.len(), 4, "{e}");
        assert!(e.to_string().contains("ahead of the clock"), "{e}");
        let mut m = CreditMonitor::new(CreditConfig::default()).unwrap();
        m.config.hysteresis_percent = 0;
        assert!(CreditMonitor::restore(m).is_err());
    }

    #[test]
    fn alert_messages_are_redacted() {
        let mut m = CreditMonitor::new(CreditConfig::default()).unwrap();
        // A label that parse_key would have redacted, fed directly: the monitor redacts too.
        // Nothing left: critical, a runway of 0 h, and 3 USD spent today.
        let mut s = key(10.0, 3.0, Some(0.0));
        if let Some(k) = s.key.as_mut() {
            k.label = Some(FAKE_KEY.into());
        }
        let events = m.observe(&s, 0, Some(DAY0));
        assert_eq!(
            kinds(&events),
            [
                (AlertKind::BalanceCritical, AlertState::Fired),
                (AlertKind::Runway, AlertState::Fired),
                (AlertKind::DailySpend, AlertState::Fired),
            ]
        );
        for e in events {
            assert!(!e.message.contains("0f1e2d3c"), "{}", e.message);
            assert!(e.message.contains("[REDACTED]"), "{}", e.message);
        }
    }

    #[test]
    fn limit_reset_times() {
        // 2026-11-27 was a Friday; 21:00 UTC.
        let wall = DAY0 + 21 * HOUR;
        assert_eq!(hours_until_reset(LimitReset::Daily, wall), Some(3.0));
        // Monday 2026-11-30 00:00 UTC: 2 days and 3 hours.
        assert_eq!(hours_until_reset(LimitReset::Weekly, wall), Some(51.0));
        // 2026-12-01 00:00 UTC: 3 days and 3 hours.
        assert_eq!(hours_until_reset(LimitReset::Monthly, wall), Some(75.0));
        // December rolls into January; a Monday at midnight waits a whole week.
        let dec31 = 1_798_675_200_000; // 2026-12-31T00:00:00Z
        assert_eq!(hours_until_reset(LimitReset::Monthly, dec31), Some(24.0));
        let monday = DAY0 + 3 * MS_PER_DAY;
        assert_eq!(hours_until_reset(LimitReset::Weekly, monday), Some(168.0));
        // Leap year: 2028-02-28 00:00 → 2028-03-01 is two days.
        let feb28 = 1_835_308_800_000;
        assert_eq!(hours_until_reset(LimitReset::Monthly, feb28), Some(48.0));
        assert_eq!(hours_until_reset(LimitReset::Other, wall), None);
        // The far future neither panics nor overflows.
        let _ = hours_until_reset(LimitReset::Monthly, u64::MAX);
        let _ = hours_until_reset(LimitReset::Weekly, u64::MAX);
    }

    #[test]
    fn afford_margin_and_bounds() {
        let a =
            suggest_max_tokens("You requested up to 100 tokens, but can only afford 100.").unwrap();
        assert_eq!(a.suggested_max_tokens, Some(95));
        // More affordable than requested (inconsistent text): never suggest more than asked.
        let a =
            suggest_max_tokens("You requested up to 50 tokens, but can only afford 1000.").unwrap();
        assert_eq!(a.suggested_max_tokens, Some(50));
        // Too many digits to be a token count: ignored.
        assert_eq!(
            suggest_max_tokens("can only afford 99999999999999999999"),
            None
        );
        // Past the scan cap: not read.
        let far = format!("{}can only afford 10", " ".repeat(MAX_AFFORD_SCAN_BYTES));
        assert_eq!(suggest_max_tokens(&far), None);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>()
                .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
            any::<i64>().prop_map(|x| Value::Number(x.into())),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let field = prop_oneof![
                Just("data".to_string()),
                Just("error".to_string()),
                Just("usage".to_string()),
                Just("usage_daily".to_string()),
                Just("limit".to_string()),
                Just("limit_remaining".to_string()),
                Just("limit_reset".to_string()),
                Just("label".to_string()),
                Just("total_credits".to_string()),
                Just("total_usage".to_string()),
                Just("code".to_string()),
                Just("message".to_string()),
                "[a-z_]{0,8}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(field, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn snapshot() -> impl Strategy<Value = CreditSnapshot> {
        let money = prop_oneof![
            0.0..20.0f64,
            Just(0.0),
            Just(1.0),
            Just(5.0),
            -2.0..2.0f64,
            Just(1e9),
            Just(-1e9)
        ];
        let reset = prop_oneof![
            Just(LimitReset::Daily),
            Just(LimitReset::Weekly),
            Just(LimitReset::Monthly),
            Just(LimitReset::Other),
        ];
        let key = (
            proptest::option::of(money.clone()),
            proptest::option::of(money.clone()),
            proptest::option::of(money.clone()),
            proptest::option::of(reset),
        )
            .prop_map(
                |(usage, usage_daily, limit_remaining, limit_reset)| KeyInfo {
                    label: Some(FAKE_KEY.into()),
                    usage,
                    usage_daily,
                    limit_remaining,
                    limit_reset,
                    ..KeyInfo::default()
                },
            );
        let credits = (money.clone(), money).prop_map(|(total_credits, total_usage)| CreditsInfo {
            total_credits,
            total_usage,
        });
        (proptest::option::of(key), proptest::option::of(credits))
            .prop_map(|(key, credits)| CreditSnapshot { key, credits })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_json_never_panics(v in json_value(), wrap in any::<bool>()) {
            let v = if wrap { serde_json::json!({"data": v}) } else { v };
            let text = v.to_string();
            for result in [parse_key(&text).map(|_| ()), parse_credits(&text).map(|_| ())] {
                if let Err(e) = result {
                    // Every error renders, and never panics doing so.
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}", n in any::<u64>()) {
            let _ = parse_key(&s);
            let _ = parse_credits(&s);
            let text = format!("{s} requested up to {n} tokens, but can only afford {n}{s}");
            for t in [s.as_str(), text.as_str()] {
                if let Some(a) = suggest_max_tokens(t)
                    && let Some(m) = a.suggested_max_tokens
                {
                    prop_assert!(m <= a.affordable_tokens);
                    prop_assert!(a.requested_tokens.is_none_or(|r| m <= r));
                    prop_assert!(m > 0);
                }
            }
        }

        #[test]
        fn alerts_alternate_and_never_leak(
            steps in prop::collection::vec((snapshot(), -3_600_000i64..7_200_000, proptest::option::of(0u64..4 * 86_400_000)), 1..40),
            restore_at in 0usize..40,
        ) {
            let mut m = CreditMonitor::new(CreditConfig::default()).unwrap();
            let mut now: u64 = 10 * HOUR;
            for (i, (s, dt, wall)) in steps.iter().enumerate() {
                now = now.saturating_add_signed(*dt);
                if i == restore_at {
                    let text = serde_json::to_string(&m).unwrap();
                    m = CreditMonitor::restore(serde_json::from_str(&text).unwrap()).unwrap();
                }
                let before = m.status().active.clone();
                let events = m.observe(s, now, wall.map(|w| DAY0 + w));
                let after = m.status().active.clone();
                let critical_fired = events.iter().any(|e| {
                    e.alert == AlertKind::BalanceCritical && e.state == AlertState::Fired
                });
                for e in &events {
                    prop_assert!(!e.message.contains("0f1e2d3c"), "{}", e.message);
                }
                for kind in AlertKind::ALL {
                    let (was, is) = (before.contains(&kind), after.contains(&kind));
                    let mine: Vec<_> = events.iter().filter(|e| e.alert == kind).collect();
                    prop_assert!(mine.len() <= 1, "{:?}", events);
                    match mine.first().map(|e| e.state) {
                        // Once per crossing: a fired alert cannot fire again before resolving.
                        Some(AlertState::Fired) => prop_assert!(!was && is, "{:?}", kind),
                        Some(AlertState::Resolved) => prop_assert!(was && !is, "{:?}", kind),
                        // Silent changes: only the warning, under a critical fired with it.
                        None => prop_assert!(
                            was == is
                                || (kind == AlertKind::BalanceWarning && !was && is && critical_fired),
                            "{:?} changed silently", kind
                        ),
                    }
                    prop_assert_eq!(is, m.state.fired[kind.index()]);
                }
                prop_assert!(m.state.account.anchors.len() <= MAX_ANCHORS);
                prop_assert!(m.state.key.anchors.len() <= MAX_ANCHORS);
            }
        }
    }
}

//! Scenario files: what the mock serves and how it fails.
//!
//! A scenario is data, not code, so that the Rust and Go workers, the tests and the demo all run
//! the same failures (the format is documented in `examples/scenarios/README.md`). A file is
//! parsed strictly (`deny_unknown_fields`: a typo is an error, not a silently ignored fault) and
//! then validated as a whole, so a bad file gets one error that lists *every* problem.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The largest scenario file read, in bytes: scenarios are a few kilobytes.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_SCENARIO_BYTES`].
    #[error("scenario file {path} is {bytes} bytes, more than the {max} allowed")]
    TooLarge {
        /// The path given.
        path: String,
        /// Its size.
        bytes: u64,
        /// The cap.
        max: u64,
    },
    /// The text is not JSON of the scenario's shape (unknown field, wrong type, …).
    #[error("scenario is not valid JSON of the expected shape: {0}")]
    Parse(String),
    /// The JSON has the right shape but its values are inconsistent; every problem is listed.
    #[error("invalid scenario: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// One scenario: models, account, workload and faults (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `[a-z0-9-]+`, unique among the scenarios.
    pub name: String,
    /// One line, shown in the report.
    #[serde(default)]
    pub description: String,
    /// Drives the workload and every `share` and latency draw.
    pub seed: u64,
    /// What the mock serves, by OpenRouter model id.
    pub models: BTreeMap<String, ModelSpec>,
    /// The API key's account.
    pub account: Account,
    /// The jobs the workers get.
    pub workload: WorkloadSpec,
    /// Injected failures, first match wins, in file order.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

/// One served model. The window and prices are the *scenario's*, not necessarily the real
/// model's (a scenario may shrink a window to make overflows happen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Tokens, prompt + `max_tokens`.
    pub context_window: u64,
    /// `[min, max]` milliseconds, drawn uniformly per request.
    pub latency_ms: [u64; 2],
    /// The provider's tokenizer against exact o200k_base, in percent (100 = the same).
    #[serde(default = "default_ratio")]
    pub token_ratio_percent: u32,
    /// USD per million prompt tokens.
    pub usd_per_million_prompt: f64,
    /// USD per million completion tokens.
    pub usd_per_million_completion: f64,
    /// `provider_name` in OpenRouter's error metadata.
    pub provider: String,
}

fn default_ratio() -> u32 {
    100
}

/// The key's account, as `GET /api/v1/key` shows it at the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The key's spending limit in USD (`null`: unlimited).
    pub limit_usd: Option<f64>,
    /// What was already spent, USD.
    #[serde(default)]
    pub usage_usd: f64,
    /// OpenRouter's `is_free_tier`.
    #[serde(default)]
    pub is_free_tier: bool,
}

/// The shape of the generated workload (see [`crate::workload`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Customer messages in the queue (1..=10 000).
    pub jobs: u32,
    /// Chat sessions they belong to (1..=jobs).
    pub sessions: u32,
    /// Jobs arrive spread over `[0, arrival_ms)`.
    pub arrival_ms: u64,
    /// Share of jobs on long conversations.
    #[serde(default)]
    pub long_share: f64,
    /// Share of jobs the worker should stream.
    #[serde(default)]
    pub stream_share: f64,
    /// Share of messages the moderator flags.
    #[serde(default)]
    pub flagged_share: f64,
    /// Share of Indonesian-speaking customers.
    #[serde(default)]
    pub indonesian_share: f64,
}

/// One fault as written in the file: a flat record, checked against its `type` by
/// [`Scenario::validate`] (so an unknown type or a field that does not belong to the type is
/// listed with every other problem).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// `outage`, `rate-limit`, `overloaded`, `slow`, `gateway-timeout`, `stream-error`, `reset`,
    /// `top-up`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The model id the fault applies to; `"*"` (the default) for every model.
    #[serde(default = "any_model")]
    pub model: String,
    /// Start of the window (arrival time, ms since the mock's clock started), inclusive.
    #[serde(default)]
    pub from_ms: Option<u64>,
    /// End of the window, exclusive.
    #[serde(default)]
    pub to_ms: Option<u64>,
    /// Probability that a matching request is hit (0..=1, default 1).
    #[serde(default)]
    pub share: Option<f64>,
    /// `outage`: 502 or 503.
    #[serde(default)]
    pub status: Option<u16>,
    /// `rate-limit`: the `Retry-After` seconds.
    #[serde(default)]
    pub retry_after_s: Option<u64>,
    /// `slow`: extra delay.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// `stream-error` (required) and `reset` (optional): content chunks sent first.
    #[serde(default)]
    pub after_chunks: Option<u32>,
    /// `top-up`: when.
    #[serde(default)]
    pub at_ms: Option<u64>,
    /// `top-up`: by how much the limit grows.
    #[serde(default)]
    pub usd: Option<f64>,
}

fn any_model() -> String {
    "*".to_string()
}

/// What a fault does, typed (built from a validated [`FaultSpec`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultAction {
    /// The provider is down: 502 or 503.
    Outage {
        /// 502 or 503.
        status: u16,
    },
    /// 429 with `Retry-After`.
    RateLimit {
        /// Seconds.
        retry_after_s: u64,
    },
    /// Anthropic's 529 "Overloaded".
    Overloaded,
    /// The normal answer, late.
    Slow {
        /// Extra delay.
        delay_ms: u64,
    },
    /// 524 or 408.
    GatewayTimeout,
    /// A mid-stream error chunk after that many chunks (502 when not streamed).
    StreamError {
        /// Content chunks first.
        after_chunks: u32,
    },
    /// A TCP RST, before any response or after that many chunks of a stream.
    Reset {
        /// Chunks first (streams only).
        after_chunks: Option<u32>,
    },
}

impl FaultAction {
    /// The `type` name, as in the file and the `x-mock-fault` header.
    pub fn name(&self) -> &'static str {
        match self {
            FaultAction::Outage { .. } => "outage",
            FaultAction::RateLimit { .. } => "rate-limit",
            FaultAction::Overloaded => "overloaded",
            FaultAction::Slow { .. } => "slow",
            FaultAction::GatewayTimeout => "gateway-timeout",
            FaultAction::StreamError { .. } => "stream-error",
            FaultAction::Reset { .. } => "reset",
        }
    }
}

/// A request fault with its window, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Model id or `"*"`.
    pub model: String,
    /// Window start, inclusive.
    pub from_ms: u64,
    /// Window end, exclusive.
    pub to_ms: u64,
    /// Probability, 0..=1.
    pub share: f64,
    /// What happens.
    pub action: FaultAction,
}

impl Fault {
    /// Whether a request for `model` arriving at `t_ms` is in this fault's window.
    pub fn matches(&self, model: &str, t_ms: u64) -> bool {
        (self.model == "*" || self.model == model) && self.from_ms <= t_ms && t_ms < self.to_ms
    }
}

/// A scheduled top-up of the account's limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopUp {
    /// When (ms since the clock started).
    pub at_ms: u64,
    /// USD added to the limit.
    pub usd: f64,
}

/// The fault types a file may name.
pub const FAULT_TYPES: [&str; 8] = [
    "outage",
    "rate-limit",
    "overloaded",
    "slow",
    "gateway-timeout",
    "stream-error",
    "reset",
    "top-up",
];

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| ScenarioError::Io {
            path: shown.clone(),
            source,
        })?;
        if meta.len() > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::TooLarge {
                path: shown,
                bytes: meta.len(),
                max: MAX_SCENARIO_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: shown,
            source,
        })?;
        Scenario::from_json(&text)
    }

    /// Parses and validates a scenario from JSON text.
    pub fn from_json(text: &str) -> Result<Scenario, ScenarioError> {
        if text.len() as u64 > MAX_SCENARIO_BYTES {
            return Err(ScenarioError::TooLarge {
                path: "<text>".to_string(),
                bytes: text.len() as u64,
                max: MAX_SCENARIO_BYTES,
            });
        }
        let scenario: Scenario =
            serde_json::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks every value; the error lists each problem found.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let mut p: Vec<String> = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            p.push(format!("name must match [a-z0-9-]+ (got {:?})", self.name));
        }
        if self.models.is_empty() {
            p.push("models must not be empty".to_string());
        }
        for (id, m) in &self.models {
            if id.is_empty() || id.len() > 200 || id == "*" {
                p.push(format!(
                    "model id {id:?} must be 1..=200 bytes and not \"*\""
                ));
            }
            if !(256..=10_000_000).contains(&m.context_window) {
                p.push(format!(
                    "models.{id}.context_window must be in 256..=10000000 (got {})",
                    m.context_window
                ));
            }
            if m.latency_ms[0] > m.latency_ms[1] || m.latency_ms[1] > 60_000 {
                p.push(format!(
                    "models.{id}.latency_ms must be [min, max] with min <= max <= 60000 (got {:?})",
                    m.latency_ms
                ));
            }
            if !(10..=1000).contains(&m.token_ratio_percent) {
                p.push(format!(
                    "models.{id}.token_ratio_percent must be in 10..=1000 (got {})",
                    m.token_ratio_percent
                ));
            }
            for (field, v) in [
                ("usd_per_million_prompt", m.usd_per_million_prompt),
                ("usd_per_million_completion", m.usd_per_million_completion),
            ] {
                if !(v.is_finite() && (0.0..=100_000.0).contains(&v)) {
                    p.push(format!(
                        "models.{id}.{field} must be in 0..=100000 (got {v})"
                    ));
                }
            }
            if m.provider.is_empty() {
                p.push(format!("models.{id}.provider must not be empty"));
            }
        }
        if let Some(limit) = self.account.limit_usd
            && !(limit.is_finite() && limit >= 0.0)
        {
            p.push(format!("account.limit_usd must be >= 0 (got {limit})"));
        }
        if !(self.account.usage_usd.is_finite() && self.account.usage_usd >= 0.0) {
            p.push(format!(
                "account.usage_usd must be >= 0 (got {})",
                self.account.usage_usd
            ));
        }
        let w = &self.workload;
        if !(1..=10_000).contains(&w.jobs) {
            p.push(format!(
                "workload.jobs must be in 1..=10000 (got {})",
                w.jobs
            ));
        }
        if w.sessions == 0 || w.sessions > w.jobs.max(1) {
            p.push(format!(
                "workload.sessions must be in 1..=jobs (got {})",
                w.sessions
            ));
        }
        if w.arrival_ms > 3_600_000 {
            p.push(format!(
                "workload.arrival_ms must be at most 3600000 (got {})",
                w.arrival_ms
            ));
        }
        for (field, v) in [
            ("long_share", w.long_share),
            ("stream_share", w.stream_share),
            ("flagged_share", w.flagged_share),
            ("indonesian_share", w.indonesian_share),
        ] {
            if !share_ok(v) {
                p.push(format!("workload.{field} must be in 0..=1 (got {v})"));
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            check_fault(i, f, &self.models, &mut p);
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ScenarioError::Invalid(p))
        }
    }

    /// The request faults, typed, in file order (top-ups are not among them). Call on a
    /// validated scenario; faults that do not validate are skipped.
    pub fn request_faults(&self) -> Vec<Fault> {
        self.faults.iter().filter_map(typed_fault).collect()
    }

    /// The scheduled top-ups, in file order.
    pub fn top_ups(&self) -> Vec<TopUp> {
        self.faults
            .iter()
            .filter(|f| f.kind == "top-up")
            .filter_map(|f| {
                Some(TopUp {
                    at_ms: f.at_ms?,
                    usd: f.usd?,
                })
            })
            .collect()
    }

    /// The smallest context window among the models.
    pub fn smallest_window(&self) -> u64 {
        self.models
            .values()
            .map(|m| m.context_window)
            .min()
            .unwrap_or(16_000)
    }
}

fn share_ok(v: f64) -> bool {
    v.is_finite() && (0.0..=1.0).contains(&v)
}

fn typed_fault(f: &FaultSpec) -> Option<Fault> {
    let action = match f.kind.as_str() {
        "outage" => FaultAction::Outage {
            status: f.status.unwrap_or(503),
        },
        "rate-limit" => FaultAction::RateLimit {
            retry_after_s: f.retry_after_s.unwrap_or(1),
        },
        "overloaded" => FaultAction::Overloaded,
        "slow" => FaultAction::Slow {
            delay_ms: f.delay_ms?,
        },
        "gateway-timeout" => FaultAction::GatewayTimeout,
        "stream-error" => FaultAction::StreamError {
            after_chunks: f.after_chunks.unwrap_or(2),
        },
        "reset" => FaultAction::Reset {
            after_chunks: f.after_chunks,
        },
        _ => return None,
    };
    Some(Fault {
        model: f.model.clone(),
        from_ms: f.from_ms?,
        to_ms: f.to_ms?,
        share: f.share.unwrap_or(1.0),
        action,
    })
}

/// Checks one fault against its type; pushes every problem.
fn check_fault(i: usize, f: &FaultSpec, models: &BTreeMap<String, ModelSpec>, p: &mut Vec<String>) {
    let at = format!("faults[{i}] ({})", f.kind);
    if !FAULT_TYPES.contains(&f.kind.as_str()) {
        p.push(format!(
            "faults[{i}].type {:?} is not one of {}",
            f.kind,
            FAULT_TYPES.join(", ")
        ));
        return;
    }
    if f.model != "*" && !models.contains_key(&f.model) {
        p.push(format!("{at}: model {:?} is not among the models", f.model));
    }
    // Which optional fields each type takes.
    let allowed: &[&str] = match f.kind.as_str() {
        "outage" => &["status"],
        "rate-limit" => &["retry_after_s"],
        "slow" => &["delay_ms"],
        "stream-error" | "reset" => &["after_chunks"],
        "top-up" => &["at_ms", "usd"],
        _ => &[],
    };
    let present = [
        ("status", f.status.is_some()),
        ("retry_after_s", f.retry_after_s.is_some()),
        ("delay_ms", f.delay_ms.is_some()),
        ("after_chunks", f.after_chunks.is_some()),
        ("at_ms", f.at_ms.is_some()),
        ("usd", f.usd.is_some()),
    ];
    for (field, is) in present {
        if is && !allowed.contains(&field) {
            p.push(format!("{at}: field {field} does not apply to this type"));
        }
    }
    if f.kind == "top-up" {
        for (field, is) in [
            ("from_ms", f.from_ms.is_some()),
            ("to_ms", f.to_ms.is_some()),
            ("share", f.share.is_some()),
        ] {
            if is {
                p.push(format!("{at}: field {field} does not apply to a top-up"));
            }
        }
        if f.model != "*" {
            p.push(format!(
                "{at}: a top-up applies to the account, not a model"
            ));
        }
        if f.at_ms.is_none() {
            p.push(format!("{at}: at_ms is required"));
        }
        match f.usd {
            None => p.push(format!("{at}: usd is required")),
            Some(u) if !(u.is_finite() && u > 0.0 && u <= 1_000_000.0) => {
                p.push(format!("{at}: usd must be in (0, 1000000] (got {u})"))
            }
            Some(_) => {}
        }
        return;
    }
    match (f.from_ms, f.to_ms) {
        (Some(from), Some(to)) if from >= to => {
            p.push(format!("{at}: from_ms ({from}) must be below to_ms ({to})"))
        }
        (Some(_), Some(_)) => {}
        _ => p.push(format!("{at}: from_ms and to_ms are required")),
    }
    if let Some(s) = f.share
        && !share_ok(s)
    {
        p.push(format!("{at}: share must be in 0..=1 (got {s})"));
    }
    match f.kind.as_str() {
        "outage" => {
            if let Some(s) = f.status
                && s != 502
                && s != 503
            {
                p.push(format!("{at}: status must be 502 or 503 (got {s})"));
            }
        }
        "rate-limit" => {
            if let Some(s) = f.retry_after_s
                && s > 3600
            {
                p.push(format!(
                    "{at}: retry_after_s must be at most 3600 (got {s})"
                ));
            }
        }
        "slow" => match f.delay_ms {
            None => p.push(format!("{at}: delay_ms is required")),
            Some(d) if d > 120_000 => {
                p.push(format!("{at}: delay_ms must be at most 120000 (got {d})"))
            }
            Some(_) => {}
        },
        "stream-error" | "reset" => {
            if let Some(n) = f.after_chunks
                && n > 1000
            {
                p.push(format!("{at}: after_chunks must be at most 1000 (got {n})"));
            }
        }
        _ => {}
    }
}

//! Token counting through the component: the WIT `tokens` interface with the core's types.

use llm_resilience::chat::{Message, Role, ToolCall, ToolSchema};
use llm_resilience::tokens::{Encoding, TokenError};

use crate::plugin::bindings::exports::llm::resilience::tokens as wit;
use crate::session::Resource;
use crate::{HostError, Plugin, Session};

/// A token counter living in the component: the exact tokenizer
/// (`llm_resilience::tokens::Tokenizer`, the core's feature `tiktoken`) or the upper bound
/// ([`llm_resilience::tokens::UpperBound`]) behind the WIT `counter` resource.
///
/// Counts are the native ones, wrapped in `Result<_, HostError>`. Building an exact counter
/// decodes the BPE tables inside the component, which is slow and takes about 20 MiB of
/// linear memory (see `BENCHMARKS.md`): make one per session and keep it, and give its plugin
/// [`Limits`](crate::Limits) with room for it ([`EXACT_COUNTER_LIMITS`]; the defaults fit with
/// a thin fuel margin). The counter is also
/// what [`HostCounter::trim`] counts with.
#[derive(Debug)]
pub struct HostCounter {
    pub(crate) resource: Resource,
}

/// Limits under which [`Session::exact_counter`] fits with a wide margin: 128 MiB of linear
/// memory and 8·10⁹ fuel per call.
///
/// Measured here: building the o200k_base tables inside the component needs between 1·10⁹ and
/// 2·10⁹ fuel (it fails at 1·10⁹ and fits the default 2·10⁹, a thin margin) and grows the
/// linear memory to about 20 MiB (it fails under 16 MiB); o200k_base and cl100k_base together
/// in one session fit in 48 MiB. Counting and trimming need far less: the default
/// [`Limits`](crate::Limits) are enough for them with either counter.
pub const EXACT_COUNTER_LIMITS: crate::Limits = crate::Limits {
    memory_bytes: 128 * 1024 * 1024,
    fuel: 8_000_000_000,
};

/// Per-model ratios of a provider's token count to ours, living in the component
/// ([`llm_resilience::tokens::Calibration`] behind the WIT `calibration` resource).
#[derive(Debug)]
pub struct HostCalibration {
    resource: Resource,
}

impl Plugin {
    /// The encoding an OpenAI model id uses ([`Encoding::for_model`]), through the component.
    pub fn encoding_for_model(&self, model: &str) -> Result<Encoding, HostError> {
        self.call(|store, plugin| {
            plugin
                .llm_resilience_tokens()
                .call_encoding_for_model(store, model)
        })
        .map(encoding_from_wit)
    }
}

impl Session {
    /// An exact counter for `encoding`, built inside the component (slow: see
    /// [`HostCounter`]). A failure to decode the built-in tables is [`HostError::Trap`].
    pub fn exact_counter(&self, encoding: Encoding) -> Result<HostCounter, HostError> {
        let encoding = encoding_to_wit(encoding);
        let result = self.call(|store, plugin| {
            plugin
                .llm_resilience_tokens()
                .counter()
                .call_exact(store, encoding)
        })?;
        match result {
            Ok(handle) => Ok(HostCounter {
                resource: self.adopt(handle),
            }),
            Err(message) => Err(HostError::Trap(message)),
        }
    }

    /// The upper-bound counter (cheap: no tables).
    pub fn upper_bound_counter(&self) -> Result<HostCounter, HostError> {
        let handle = self.call(|store, plugin| {
            plugin
                .llm_resilience_tokens()
                .counter()
                .call_upper_bound(store)
        })?;
        Ok(HostCounter {
            resource: self.adopt(handle),
        })
    }

    /// An empty calibration from a JSON config (`CalibrationConfig`; `"{}"` for the defaults).
    /// Every rejected field is listed in [`HostError::Config`].
    pub fn calibration(&self, config_json: &str) -> Result<HostCalibration, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_tokens()
                .calibration()
                .call_create(store, config_json)
        })
        .map(|resource| HostCalibration { resource })
    }

    /// A calibration from a snapshot ([`HostCalibration::snapshot`], or `serde_json` of a
    /// native [`Calibration`](llm_resilience::tokens::Calibration)).
    pub fn restore_calibration(&self, snapshot_json: &str) -> Result<HostCalibration, HostError> {
        self.create(|store, plugin| {
            plugin
                .llm_resilience_tokens()
                .calibration()
                .call_restore(store, snapshot_json)
        })
        .map(|resource| HostCalibration { resource })
    }
}

impl HostCounter {
    /// The session the counter lives in.
    pub fn session(&self) -> &Session {
        &self.resource.session
    }

    /// The encoding of an exact counter; `None` for the upper bound.
    pub fn encoding(&self) -> Result<Option<Encoding>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_tokens()
                    .counter()
                    .call_encoding(store, this)
            })
            .map(|e| e.map(encoding_from_wit))
    }

    /// Tokens in `text` ([`TokenCounter::count_text`](llm_resilience::tokens::TokenCounter::count_text)).
    pub fn count_text(&self, text: &str) -> Result<Result<u64, TokenError>, HostError> {
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_tokens()
                    .counter()
                    .call_count_text(store, this, text)
            })
            .map(|r| r.map_err(token_error_from_wit))
    }

    /// Tokens of a whole request
    /// ([`TokenCounter::count_messages`](llm_resilience::tokens::TokenCounter::count_messages)).
    pub fn count_messages(
        &self,
        messages: &[Message],
        tools: &[ToolSchema],
    ) -> Result<Result<u64, TokenError>, HostError> {
        let messages: Vec<wit::Message> = messages.iter().map(message_to_wit).collect();
        let tools: Vec<wit::ToolSchema> = tools.iter().map(tool_to_wit).collect();
        self.resource
            .call(|store, plugin, this| {
                plugin
                    .llm_resilience_tokens()
                    .counter()
                    .call_count_messages(store, this, &messages, &tools)
            })
            .map(|r| r.map_err(token_error_from_wit))
    }
}

impl HostCalibration {
    /// The session the calibration lives in.
    pub fn session(&self) -> &Session {
        &self.resource.session
    }

    /// The ratio used for `model` (parts per million): learned, or its family's seed.
    pub fn ratio(&self, model: &str) -> Result<u32, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_tokens()
                .calibration()
                .call_ratio(store, this, model)
        })
    }

    /// Our count for `model` turned into the provider's expected count (rounded up).
    pub fn adjust(&self, model: &str, our_count: u64) -> Result<u64, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_tokens()
                .calibration()
                .call_adjust(store, this, model, our_count)
        })
    }

    /// Folds in one call; the model's new ratio, or `None` when the observation is ignored.
    pub fn observe(
        &self,
        model: &str,
        our_count: u64,
        reported: u64,
    ) -> Result<Option<u32>, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_tokens()
                .calibration()
                .call_observe(store, this, model, our_count, reported)
        })
    }

    /// Forgets `model`; true if it was remembered.
    pub fn forget(&self, model: &str) -> Result<bool, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_tokens()
                .calibration()
                .call_forget(store, this, model)
        })
    }

    /// Models remembered.
    pub fn len(&self) -> Result<u32, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_tokens()
                .calibration()
                .call_len(store, this)
        })
    }

    /// Whether no model is remembered.
    pub fn is_empty(&self) -> Result<bool, HostError> {
        self.len().map(|n| n == 0)
    }

    /// The whole state as JSON: the serde form of a native
    /// [`Calibration`](llm_resilience::tokens::Calibration).
    pub fn snapshot(&self) -> Result<String, HostError> {
        self.resource.call(|store, plugin, this| {
            plugin
                .llm_resilience_tokens()
                .calibration()
                .call_snapshot(store, this)
        })
    }
}

fn token_error_from_wit(e: wit::TokenError) -> TokenError {
    match e {
        wit::TokenError::TooLarge(bytes) => {
            TokenError::TooLarge(usize::try_from(bytes).unwrap_or(usize::MAX))
        }
    }
}

fn encoding_to_wit(e: Encoding) -> wit::Encoding {
    match e {
        Encoding::O200kBase => wit::Encoding::O200kBase,
        Encoding::Cl100kBase => wit::Encoding::Cl100kBase,
    }
}

fn encoding_from_wit(e: wit::Encoding) -> Encoding {
    match e {
        wit::Encoding::O200kBase => Encoding::O200kBase,
        wit::Encoding::Cl100kBase => Encoding::Cl100kBase,
    }
}

pub(crate) fn role_from_wit(r: wit::Role) -> Role {
    match r {
        wit::Role::System => Role::System,
        wit::Role::User => Role::User,
        wit::Role::Assistant => Role::Assistant,
        wit::Role::Tool => Role::Tool,
    }
}

fn role_to_wit(r: Role) -> wit::Role {
    match r {
        Role::System => wit::Role::System,
        Role::User => wit::Role::User,
        Role::Assistant => wit::Role::Assistant,
        Role::Tool => wit::Role::Tool,
    }
}

pub(crate) fn message_to_wit(m: &Message) -> wit::Message {
    wit::Message {
        role: role_to_wit(m.role),
        content: m.content.clone(),
        name: m.name.clone(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| wit::ToolCall {
                id: c.id.clone(),
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            })
            .collect(),
        tool_call_id: m.tool_call_id.clone(),
    }
}

pub(crate) fn message_from_wit(m: wit::Message) -> Message {
    Message {
        role: role_from_wit(m.role),
        content: m.content,
        name: m.name,
        tool_calls: m
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments,
            })
            .collect(),
        tool_call_id: m.tool_call_id,
    }
}

pub(crate) fn tool_to_wit(t: &ToolSchema) -> wit::ToolSchema {
    wit::ToolSchema {
        name: t.name.clone(),
        description: t.description.clone(),
        parameters: t.parameters.clone(),
    }
}

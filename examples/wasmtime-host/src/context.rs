//! Context trimming through the component: the WIT `context` interface with the core's types.

use llm_resilience::Classification;
use llm_resilience::ConfigError;
use llm_resilience::context::{
    ContextBudget, ContextConfig, ContextError, DropReason, Fate, TrimInput, TrimReport, Trimmed,
};

use crate::plugin::bindings::exports::llm::resilience::context as wit;
use crate::plugin::{classification_to_wit, kind_from_wit};
use crate::tokens::{message_from_wit, message_to_wit, role_from_wit, tool_to_wit};
use crate::{HostCounter, HostError, HostRetryPolicy};

impl HostCounter {
    /// Trims `input` into `budget`, counting with this counter, inside the component
    /// ([`llm_resilience::context::trim`]): the same [`Trimmed`] (messages and report) or the
    /// same [`ContextError`] as the native call with the native counter.
    pub fn trim(
        &self,
        budget: &ContextBudget,
        input: &TrimInput<'_>,
    ) -> Result<Result<Trimmed, ContextError>, HostError> {
        let budget = budget_to_wit(budget.config());
        let input = wit::TrimInput {
            system: input.system.to_string(),
            documents: input.documents.to_vec(),
            history: input.history.iter().map(message_to_wit).collect(),
            latest: message_to_wit(input.latest),
            tools: input.tools.iter().map(tool_to_wit).collect(),
        };
        let result = self.call(|store, plugin, this| {
            plugin
                .llm_resilience_context()
                .call_trim(store, budget, &input, this)
        })?;
        match result {
            Ok(t) => Ok(Ok(Trimmed {
                messages: t.messages.into_iter().map(message_from_wit).collect(),
                report: report_from_wit(t.report),
            })),
            Err(e) => error_from_wit(e).map(Err),
        }
    }
}

impl HostRetryPolicy {
    /// The next context budget after a context overflow
    /// ([`llm_resilience::context::next_budget`] with this policy), inside the component. Its
    /// limit equals the `target_tokens` that [`decide`](HostRetryPolicy::decide) gives for the
    /// same failure and `request_tokens`.
    pub fn next_budget(
        &self,
        failure: &Classification,
        current: &ContextBudget,
        request_tokens: Option<u64>,
    ) -> Result<Result<ContextBudget, ContextError>, HostError> {
        let failure = classification_to_wit(failure);
        let current = budget_to_wit(current.config());
        let result = self.resource().call(|store, plugin, this| {
            plugin.llm_resilience_context().call_next_budget(
                store,
                &failure,
                current,
                request_tokens,
                this,
            )
        })?;
        match result {
            Ok(b) => ContextBudget::new(config_from_wit(b))
                .map(Ok)
                .map_err(HostError::Config),
            Err(e) => error_from_wit(e).map(Err),
        }
    }
}

fn budget_to_wit(c: &ContextConfig) -> wit::Budget {
    wit::Budget {
        context_window: c.context_window,
        reserved_output_tokens: c.reserved_output_tokens,
        safety_margin_tokens: c.safety_margin_tokens,
        max_history_messages: c.max_history_messages,
        max_document_chars: c.max_document_chars,
        max_message_chars: c.max_message_chars,
        min_document_chars: c.min_document_chars,
    }
}

fn config_from_wit(b: wit::Budget) -> ContextConfig {
    ContextConfig {
        context_window: b.context_window,
        reserved_output_tokens: b.reserved_output_tokens,
        safety_margin_tokens: b.safety_margin_tokens,
        max_history_messages: b.max_history_messages,
        max_document_chars: b.max_document_chars,
        max_message_chars: b.max_message_chars,
        min_document_chars: b.min_document_chars,
    }
}

fn report_from_wit(r: wit::TrimReport) -> TrimReport {
    TrimReport {
        tokens_before: r.tokens_before,
        tokens_after: r.tokens_after,
        limit_tokens: r.limit_tokens,
        documents: r.documents.into_iter().map(fate_from_wit).collect(),
        history: r.history.into_iter().map(fate_from_wit).collect(),
    }
}

fn fate_from_wit(f: wit::Fate) -> Fate {
    match f {
        wit::Fate::Kept => Fate::Kept,
        wit::Fate::Truncated(t) => Fate::Truncated {
            chars_before: t.chars_before,
            chars_after: t.chars_after,
        },
        wit::Fate::Dropped(reason) => Fate::Dropped {
            reason: match reason {
                wit::DropReason::Budget => DropReason::Budget,
                wit::DropReason::MaxMessages => DropReason::MaxMessages,
                wit::DropReason::OrphanToolResult => DropReason::OrphanToolResult,
                wit::DropReason::UnansweredToolCall => DropReason::UnansweredToolCall,
                wit::DropReason::BeforeFirstUserTurn => DropReason::BeforeFirstUserTurn,
            },
        },
    }
}

/// The core's error for a WIT one. `invalid-budget` cannot happen for a budget that came from
/// a validated [`ContextBudget`]; if the component says so anyway it is a [`HostError::Config`].
fn error_from_wit(e: wit::ContextError) -> Result<ContextError, HostError> {
    Ok(match e {
        wit::ContextError::InvalidBudget(problems) => {
            return Err(HostError::Config(ConfigError { problems }));
        }
        wit::ContextError::DoesNotFit(d) => ContextError::DoesNotFit {
            required_tokens: d.required_tokens,
            limit_tokens: d.limit_tokens,
        },
        wit::ContextError::LatestNotUser(role) => ContextError::LatestNotUser {
            role: role_from_wit(role),
        },
        wit::ContextError::Tokens(message) => ContextError::Tokens { message },
        wit::ContextError::NotOverflow(kind) => ContextError::NotOverflow {
            kind: kind_from_wit(kind),
        },
        wit::ContextError::CannotShrink => ContextError::CannotShrink,
    })
}

//! Adapter for the `context` interface: `trim` and `next-budget` over
//! `llm_resilience::context`.

use crate::Plugin;
use crate::bindings::exports::llm::resilience::classify::Classification;
use crate::bindings::exports::llm::resilience::context::{
    Budget, ContextError, DoesNotFit, DropReason, Fate, Guest, TrimInput, TrimReport, Trimmed,
    Truncated,
};
use crate::bindings::exports::llm::resilience::retry::PolicyBorrow;
use crate::bindings::exports::llm::resilience::tokens::CounterBorrow;
use crate::classify::{classification_from_wit, kind_to_wit};
use crate::retry::PolicyResource;
use crate::tokens::{
    CounterResource, message_from_wit, message_to_wit, role_to_wit, tool_from_wit,
};
use llm_resilience::chat;
use llm_resilience::context as core;

impl Guest for Plugin {
    fn default_budget() -> Budget {
        budget_to_wit(core::ContextConfig::default())
    }

    fn limit_tokens(budget: Budget) -> Result<u64, Vec<String>> {
        core::ContextBudget::new(config_from_wit(budget))
            .map(|b| b.limit_tokens())
            .map_err(|e| e.problems)
    }

    fn trim(
        budget: Budget,
        input: TrimInput,
        counter: CounterBorrow<'_>,
    ) -> Result<Trimmed, ContextError> {
        let budget = core::ContextBudget::new(config_from_wit(budget))
            .map_err(|e| ContextError::InvalidBudget(e.problems))?;
        let history: Vec<chat::Message> = input.history.into_iter().map(message_from_wit).collect();
        let latest = message_from_wit(input.latest);
        let tools: Vec<chat::ToolSchema> = input.tools.into_iter().map(tool_from_wit).collect();
        let trim_input = core::TrimInput {
            system: &input.system,
            documents: &input.documents,
            history: &history,
            latest: &latest,
            tools: &tools,
        };
        let counter = counter.get::<CounterResource>();
        let trimmed = core::trim(&budget, &trim_input, counter.as_dyn()).map_err(error_to_wit)?;
        Ok(Trimmed {
            messages: trimmed.messages.into_iter().map(message_to_wit).collect(),
            report: report_to_wit(trimmed.report),
        })
    }

    fn next_budget(
        failure: Classification,
        current: Budget,
        request_tokens: Option<u64>,
        policy: PolicyBorrow<'_>,
    ) -> Result<Budget, ContextError> {
        let current = core::ContextBudget::new(config_from_wit(current))
            .map_err(|e| ContextError::InvalidBudget(e.problems))?;
        let policy = policy.get::<PolicyResource>();
        let next = core::next_budget(
            &classification_from_wit(failure),
            &current,
            request_tokens,
            &policy.0,
        )
        .map_err(error_to_wit)?;
        Ok(budget_to_wit(next.config().clone()))
    }
}

fn config_from_wit(b: Budget) -> core::ContextConfig {
    core::ContextConfig {
        context_window: b.context_window,
        reserved_output_tokens: b.reserved_output_tokens,
        safety_margin_tokens: b.safety_margin_tokens,
        max_history_messages: b.max_history_messages,
        max_document_chars: b.max_document_chars,
        max_message_chars: b.max_message_chars,
        min_document_chars: b.min_document_chars,
    }
}

fn budget_to_wit(c: core::ContextConfig) -> Budget {
    Budget {
        context_window: c.context_window,
        reserved_output_tokens: c.reserved_output_tokens,
        safety_margin_tokens: c.safety_margin_tokens,
        max_history_messages: c.max_history_messages,
        max_document_chars: c.max_document_chars,
        max_message_chars: c.max_message_chars,
        min_document_chars: c.min_document_chars,
    }
}

fn report_to_wit(r: core::TrimReport) -> TrimReport {
    TrimReport {
        tokens_before: r.tokens_before,
        tokens_after: r.tokens_after,
        limit_tokens: r.limit_tokens,
        documents: r.documents.into_iter().map(fate_to_wit).collect(),
        history: r.history.into_iter().map(fate_to_wit).collect(),
    }
}

fn fate_to_wit(f: core::Fate) -> Fate {
    match f {
        core::Fate::Kept => Fate::Kept,
        core::Fate::Truncated {
            chars_before,
            chars_after,
        } => Fate::Truncated(Truncated {
            chars_before,
            chars_after,
        }),
        core::Fate::Dropped { reason } => Fate::Dropped(match reason {
            core::DropReason::Budget => DropReason::Budget,
            core::DropReason::MaxMessages => DropReason::MaxMessages,
            core::DropReason::OrphanToolResult => DropReason::OrphanToolResult,
            core::DropReason::UnansweredToolCall => DropReason::UnansweredToolCall,
            core::DropReason::BeforeFirstUserTurn => DropReason::BeforeFirstUserTurn,
        }),
    }
}

fn error_to_wit(e: core::ContextError) -> ContextError {
    match e {
        core::ContextError::DoesNotFit {
            required_tokens,
            limit_tokens,
        } => ContextError::DoesNotFit(DoesNotFit {
            required_tokens,
            limit_tokens,
        }),
        core::ContextError::LatestNotUser { role } => {
            ContextError::LatestNotUser(role_to_wit(role))
        }
        core::ContextError::Tokens { message } => ContextError::Tokens(message),
        core::ContextError::NotOverflow { kind } => ContextError::NotOverflow(kind_to_wit(kind)),
        core::ContextError::CannotShrink => ContextError::CannotShrink,
    }
}

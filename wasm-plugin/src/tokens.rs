//! Adapter for the `tokens` interface: the `counter` and `calibration` resources over
//! `llm_resilience::tokens`, and the chat types shared with `context`.

use crate::Plugin;
use crate::bindings::exports::llm::resilience::tokens::{
    Calibration, Counter, Encoding, Guest, GuestCalibration, GuestCounter, Message, Role,
    TokenError, ToolCall, ToolSchema,
};
use crate::config::{parse, problems, to_json};
use llm_resilience::chat;
use llm_resilience::tokens::{self as core, TokenCounter};
use std::cell::RefCell;

/// The counter a `counter` resource holds.
pub(crate) enum CounterKind {
    /// The exact BPE tokenizer.
    Exact(core::Tokenizer),
    /// The upper bound.
    Upper(core::UpperBound),
}

/// The `counter` resource.
pub struct CounterResource(CounterKind);

impl CounterResource {
    /// The counter as the core's trait object.
    pub(crate) fn as_dyn(&self) -> &dyn TokenCounter {
        match &self.0 {
            CounterKind::Exact(t) => t,
            CounterKind::Upper(u) => u,
        }
    }
}

/// The `calibration` resource.
pub struct CalibrationResource(RefCell<core::Calibration>);

impl Guest for Plugin {
    type Counter = CounterResource;
    type Calibration = CalibrationResource;

    fn encoding_for_model(model: String) -> Encoding {
        encoding_to_wit(core::Encoding::for_model(&model))
    }
}

impl GuestCounter for CounterResource {
    fn exact(encoding: Encoding) -> Result<Counter, String> {
        let tokenizer =
            core::Tokenizer::new(encoding_from_wit(encoding)).map_err(|e| e.to_string())?;
        Ok(Counter::new(CounterResource(CounterKind::Exact(tokenizer))))
    }

    fn upper_bound() -> Counter {
        Counter::new(CounterResource(CounterKind::Upper(
            core::UpperBound::default(),
        )))
    }

    fn encoding(&self) -> Option<Encoding> {
        match &self.0 {
            CounterKind::Exact(t) => Some(encoding_to_wit(t.encoding())),
            CounterKind::Upper(_) => None,
        }
    }

    fn count_text(&self, text: String) -> Result<u64, TokenError> {
        self.as_dyn().count_text(&text).map_err(token_error)
    }

    fn count_messages(
        &self,
        messages: Vec<Message>,
        tools: Vec<ToolSchema>,
    ) -> Result<u64, TokenError> {
        let messages: Vec<chat::Message> = messages.into_iter().map(message_from_wit).collect();
        let tools: Vec<chat::ToolSchema> = tools.into_iter().map(tool_from_wit).collect();
        self.as_dyn()
            .count_messages(&messages, &tools)
            .map_err(token_error)
    }
}

impl GuestCalibration for CalibrationResource {
    fn create(config_json: String) -> Result<Calibration, Vec<String>> {
        let config = parse("calibration config", &config_json)?;
        let calibration = core::Calibration::new(config).map_err(problems)?;
        Ok(Calibration::new(CalibrationResource(RefCell::new(
            calibration,
        ))))
    }

    fn restore(snapshot_json: String) -> Result<Calibration, Vec<String>> {
        let snapshot = parse("calibration snapshot", &snapshot_json)?;
        let calibration = core::Calibration::restore(snapshot).map_err(problems)?;
        Ok(Calibration::new(CalibrationResource(RefCell::new(
            calibration,
        ))))
    }

    fn ratio(&self, model: String) -> u32 {
        self.0.borrow().ratio(&model)
    }

    fn adjust(&self, model: String, our_count: u64) -> u64 {
        self.0.borrow().adjust(&model, our_count)
    }

    fn observe(&self, model: String, our_count: u64, reported: u64) -> Option<u32> {
        self.0.borrow_mut().observe(&model, our_count, reported)
    }

    fn forget(&self, model: String) -> bool {
        self.0.borrow_mut().forget(&model)
    }

    fn len(&self) -> u32 {
        u32::try_from(self.0.borrow().len()).unwrap_or(u32::MAX)
    }

    fn snapshot(&self) -> String {
        to_json(&*self.0.borrow())
    }
}

fn token_error(e: core::TokenError) -> TokenError {
    match e {
        core::TokenError::TooLarge(bytes) => TokenError::TooLarge(bytes as u64),
    }
}

fn encoding_from_wit(e: Encoding) -> core::Encoding {
    match e {
        Encoding::O200kBase => core::Encoding::O200kBase,
        Encoding::Cl100kBase => core::Encoding::Cl100kBase,
    }
}

fn encoding_to_wit(e: core::Encoding) -> Encoding {
    match e {
        core::Encoding::O200kBase => Encoding::O200kBase,
        core::Encoding::Cl100kBase => Encoding::Cl100kBase,
    }
}

/// WIT role → core role.
pub(crate) fn role_from_wit(r: Role) -> chat::Role {
    match r {
        Role::System => chat::Role::System,
        Role::User => chat::Role::User,
        Role::Assistant => chat::Role::Assistant,
        Role::Tool => chat::Role::Tool,
    }
}

/// Core role → WIT role.
pub(crate) fn role_to_wit(r: chat::Role) -> Role {
    match r {
        chat::Role::System => Role::System,
        chat::Role::User => Role::User,
        chat::Role::Assistant => Role::Assistant,
        chat::Role::Tool => Role::Tool,
    }
}

/// WIT message → core message.
pub(crate) fn message_from_wit(m: Message) -> chat::Message {
    chat::Message {
        role: role_from_wit(m.role),
        content: m.content,
        name: m.name,
        tool_calls: m
            .tool_calls
            .into_iter()
            .map(|c| chat::ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments,
            })
            .collect(),
        tool_call_id: m.tool_call_id,
    }
}

/// Core message → WIT message.
pub(crate) fn message_to_wit(m: chat::Message) -> Message {
    Message {
        role: role_to_wit(m.role),
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

/// WIT tool schema → core tool schema.
pub(crate) fn tool_from_wit(t: ToolSchema) -> chat::ToolSchema {
    chat::ToolSchema {
        name: t.name,
        description: t.description,
        parameters: t.parameters,
    }
}

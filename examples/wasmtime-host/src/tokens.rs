//! Token counting through the component: the WIT `tokens` interface with the core's types.

use llm_resilience::chat::{Message, Role, ToolCall, ToolSchema};
use llm_resilience::tokens::{Encoding, TokenError};

use crate::plugin::bindings::exports::llm::resilience::tokens as wit;
use std::sync::{Mutex, MutexGuard};

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::plugin::{HostState, Warm, bindings, give_back, run};
use crate::session::Resource;
use crate::{HostError, Plugin, Session};

/// A token counter living in the component: the exact tokenizer
/// (`llm_resilience::tokens::Tokenizer`, the core's feature `tiktoken`) or the upper bound
/// ([`llm_resilience::tokens::UpperBound`]) behind the WIT `counter` resource.
///
/// Counts are the native ones, wrapped in `Result<_, HostError>`. Building an exact counter
/// decodes the BPE tables inside the component, which is slow and takes about 20 MiB of
/// linear memory (see `BENCHMARKS.md`): make one per session and keep it. The counter is also
/// what [`HostCounter::trim`] counts with.
///
/// # An instance of its own, rebuilt after a trap
///
/// Counting and trimming are the calls whose cost grows with their input (a whole
/// conversation), so they are the ones that can meet a [`Limits`](crate::Limits) bound. A
/// counter therefore does not live in its session's instance but in one of its own: a call
/// that runs out of fuel or memory (or traps otherwise) returns that typed error and loses only
/// this counter's instance — the breakers, limiters, retry state and credit monitors of the
/// session keep their state and keep working.
///
/// A counter has no state beyond its kind (an encoding, or the upper bound), so after such a
/// failure it is **rebuilt transparently**: the next call instantiates the component anew and
/// creates the same counter there (for an exact counter this costs the table build again,
/// ≈ 0.2 s), then runs. Nothing is lost and the handle stays valid; if the rebuild itself
/// fails, that call returns the typed error and the one after tries again.
#[derive(Debug)]
pub struct HostCounter {
    cell: Mutex<Cell>,
    kind: Kind,
    session: Session,
}

/// Which counter a [`HostCounter`] is, to build it again.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Exact(Encoding),
    UpperBound,
}

/// The counter's own instance and its handle there; `None` before the first call and after a
/// failure (the next call builds it).
#[derive(Default)]
struct Cell(Option<(Box<Warm>, ResourceAny)>);

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell")
            .field("built", &self.0.is_some())
            .finish()
    }
}

/// Limits under which [`Session::exact_counter`] and every valid count and trim fit: the
/// defaults ([`DEFAULT_MEMORY_BYTES`](crate::DEFAULT_MEMORY_BYTES),
/// [`DEFAULT_FUEL`](crate::DEFAULT_FUEL)).
///
/// Measured here: building the o200k_base tables inside the component needs ≈ 1.25·10⁹ fuel
/// and grows the linear memory to ≈ 31 MiB; counting 4 MiB of text ≈ 4.2·10⁹ more; trimming
/// the largest valid inputs up to ≈ 9·10⁹ and ≈ 64 MiB (see `DEFAULT_FUEL`).
pub const EXACT_COUNTER_LIMITS: crate::Limits = crate::Limits {
    memory_bytes: crate::DEFAULT_MEMORY_BYTES,
    fuel: crate::DEFAULT_FUEL,
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
    /// An exact counter for `encoding`, built inside the component in an instance of its own
    /// (slow: see [`HostCounter`]). A failure to decode the built-in tables is
    /// [`HostError::Trap`].
    pub fn exact_counter(&self, encoding: Encoding) -> Result<HostCounter, HostError> {
        HostCounter::build(self, Kind::Exact(encoding))
    }

    /// The upper-bound counter (cheap: no tables), in an instance of its own (see
    /// [`HostCounter`]).
    pub fn upper_bound_counter(&self) -> Result<HostCounter, HostError> {
        HostCounter::build(self, Kind::UpperBound)
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
    /// A counter of `kind` for `session`, built now (so a failure to build shows here).
    fn build(session: &Session, kind: Kind) -> Result<HostCounter, HostError> {
        let counter = HostCounter {
            cell: Mutex::new(Cell::default()),
            kind,
            session: session.clone(),
        };
        counter.call(|_, _, _| Ok(()))?;
        Ok(counter)
    }

    /// The session the counter was made in (its calls run in an instance of their own).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Whether the counter's instance is built: false only after a call failed and before the
    /// next call rebuilt it (see [`HostCounter`]).
    pub fn is_built(&self) -> bool {
        self.lock().0.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, Cell> {
        // A panic while the lock is held can only come from the host's own code between two
        // calls; the cell is still consistent then.
        self.cell.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `f` with the counter's handle in its own instance, building both first if needed;
    /// a failure drops the instance (the next call rebuilds it).
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &bindings::Plugin, ResourceAny) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        let maker = self.session.maker();
        let mut cell = self.lock();
        if cell.0.is_none() {
            let mut warm = Box::new(maker.take()?);
            let handle = self.create(&mut warm)?;
            cell.0 = Some((warm, handle));
        }
        let Some((warm, handle)) = cell.0.as_mut() else {
            return Err(HostError::Trap(
                "the counter's instance was not built".into(),
            ));
        };
        let handle = *handle;
        match run(maker.limits, warm, |store, plugin| f(store, plugin, handle)) {
            Ok(value) => Ok(value),
            Err(error) => {
                // The instance cannot be trusted after a trap: drop it with its store.
                cell.0 = None;
                Err(error)
            }
        }
    }

    /// Creates the counter in `warm`.
    fn create(&self, warm: &mut Warm) -> Result<ResourceAny, HostError> {
        let limits = self.session.maker().limits;
        match self.kind {
            Kind::Exact(encoding) => {
                let encoding = encoding_to_wit(encoding);
                match run(limits, warm, |store, plugin| {
                    plugin
                        .llm_resilience_tokens()
                        .counter()
                        .call_exact(store, encoding)
                })? {
                    Ok(handle) => Ok(handle),
                    Err(message) => Err(HostError::Trap(message)),
                }
            }
            Kind::UpperBound => run(limits, warm, |store, plugin| {
                plugin
                    .llm_resilience_tokens()
                    .counter()
                    .call_upper_bound(store)
            }),
        }
    }

    /// The encoding of an exact counter; `None` for the upper bound.
    pub fn encoding(&self) -> Result<Option<Encoding>, HostError> {
        self.call(|store, plugin, this| {
            plugin
                .llm_resilience_tokens()
                .counter()
                .call_encoding(store, this)
        })
        .map(|e| e.map(encoding_from_wit))
    }

    /// Tokens in `text` ([`TokenCounter::count_text`](llm_resilience::tokens::TokenCounter::count_text)).
    pub fn count_text(&self, text: &str) -> Result<Result<u64, TokenError>, HostError> {
        self.call(|store, plugin, this| {
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
        self.call(|store, plugin, this| {
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

impl Drop for HostCounter {
    fn drop(&mut self) {
        let cell = std::mem::take(self.cell.get_mut().unwrap_or_else(|p| p.into_inner()));
        if let Some((mut warm, handle)) = cell.0 {
            // Free the counter, then give the instance back (it is kept only if it stayed
            // small: an exact counter's tables make it too large to keep idle).
            if run(self.session.maker().limits, &mut warm, |store, _| {
                handle.resource_drop(store)
            })
            .is_ok()
            {
                give_back(&self.session.maker().pool, *warm);
            }
        }
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

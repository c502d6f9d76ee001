//! Loading the component and calling it under limits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};

use llm_resilience::classify as core;

/// Bindings generated from `wit/llm-resilience.wit`, world `plugin` (documented there).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "plugin",
    });
}

use bindings::exports::llm::resilience::classify as wit;

/// Default cap on the component's linear memory: 128 MiB.
///
/// Fits every input the core calls valid, with the exact tokenizer built in the same instance
/// (its tables take ≈ 31 MiB): the costliest measured, trimming 100 000 history messages
/// (≈ 3.4 MiB of text) into a 1M-token window, grows the memory to ≈ 64 MiB. Bodies cost
/// little: the host copies only the 256 KiB the classifier reads. Small enough that many
/// concurrent instances cannot exhaust a server.
pub const DEFAULT_MEMORY_BYTES: usize = 128 * 1024 * 1024;

/// Default fuel per call: twenty billion units.
///
/// wasmtime charges one unit per instruction, plus one per byte that `memory.copy` /
/// `memory.fill` move. It is sized for the costliest inputs the core calls valid, measured
/// here (`tests/limits.rs` runs each under these defaults): counting the 4 MiB of text a count
/// accepts (`MAX_TOKENIZE_BYTES`) takes ≈ 4.2·10⁹ with the exact tokenizer; trimming the
/// largest valid inputs (4 MiB of text, up to 131 072 documents and history messages) counts
/// every text about twice, ≈ 9·10⁹ for 100 000 history messages kept in a 1M-token window;
/// building the exact tokenizer ≈ 1.25·10⁹; classifying any body ≈ 2.5·10⁸ at most. A
/// component stuck in a loop of plain instructions is stopped after about twenty billion of
/// them (a few seconds of CPU) instead of never.
pub const DEFAULT_FUEL: u64 = 20_000_000_000;

/// The resources one call may use. Checked by [`Plugin::set_limits`] and at construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most linear memory the component may have, in bytes (instantiation included).
    /// Growing beyond it is a [`HostError::MemoryLimit`].
    pub memory_bytes: usize,
    /// Fuel for one call: copying the input in, the call itself and the copy of the result out
    /// (instantiating a fresh instance gets its own budget of the same size). Running out is a
    /// [`HostError::OutOfFuel`].
    pub fuel: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            fuel: DEFAULT_FUEL,
        }
    }
}

impl Limits {
    fn validate(self) -> Result<Limits, HostError> {
        let mut rejected = Vec::new();
        if self.memory_bytes == 0 {
            rejected.push("memory_bytes must be greater than 0");
        }
        if self.fuel == 0 {
            rejected.push("fuel must be greater than 0");
        }
        if rejected.is_empty() {
            Ok(self)
        } else {
            Err(HostError::InvalidLimits(rejected.join("; ")))
        }
    }
}

/// Everything that can go wrong between the host and the component.
///
/// Loading errors ([`ComponentNotFound`](HostError::ComponentNotFound) …
/// [`HasImports`](HostError::HasImports)) mean there is no usable plugin. Call errors
/// ([`OutOfFuel`](HostError::OutOfFuel), [`MemoryLimit`](HostError::MemoryLimit),
/// [`Trap`](HostError::Trap)) concern one call only: the plugin stays usable. In a
/// [`Session`](crate::Session) they also lose the session's instance and every resource in it;
/// later calls there are [`InstanceLost`](HostError::InstanceLost) (restore from snapshots into a
/// new session) — except on a [`HostCounter`](crate::HostCounter), which has an instance of its
/// own and is rebuilt by its next call. [`Config`](HostError::Config) and
/// [`ForeignResource`](HostError::ForeignResource) are refusals: nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The component file does not exist (it is built, not checked in).
    #[error(
        "component not found at {}: build it with `{}` (or point $LLMR_COMPONENT / --component at a built llm-resilience.wasm)",
        path.display(),
        crate::BUILD_COMMAND
    )]
    ComponentNotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The component file exists but could not be read.
    #[error("reading the component {}: {source}", path.display())]
    Io {
        /// The path that was read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a valid component, or not one of the `plugin` world.
    #[error("not a usable llm-resilience component: {0}")]
    InvalidComponent(String),
    /// The component imports something; it must import nothing. Holds the import names.
    #[error("the component imports {0:?}; an llm-resilience component must import nothing")]
    HasImports(Vec<String>),
    /// A [`Limits`] value was rejected; the text lists every rejected field.
    #[error("invalid limits: {0}")]
    InvalidLimits(String),
    /// The call used up its fuel budget ([`Limits::fuel`]).
    #[error("the component ran out of fuel (budget {fuel} units)")]
    OutOfFuel {
        /// The budget that was exhausted.
        fuel: u64,
    },
    /// The component tried to grow its memory beyond [`Limits::memory_bytes`].
    #[error(
        "the component hit the memory limit: it asked for {requested_bytes} bytes, the cap is {limit_bytes}"
    )]
    MemoryLimit {
        /// The cap in force.
        limit_bytes: usize,
        /// The memory size the component asked for.
        requested_bytes: usize,
    },
    /// Any other trap or failure inside the component; the text is for people, not parsing.
    #[error("the component trapped: {0}")]
    Trap(String),
    /// The component rejected a config or a snapshot (a `create` or `restore` returned its list
    /// of problems). Nothing was created; the session is unharmed.
    #[error(transparent)]
    Config(#[from] llm_resilience::ConfigError),
    /// The [`Session`](crate::Session) this resource lives in lost its instance to an earlier
    /// trap (that call returned [`OutOfFuel`](HostError::OutOfFuel),
    /// [`MemoryLimit`](HostError::MemoryLimit) or [`Trap`](HostError::Trap)). The state of every
    /// resource in it is gone; restore each from its last snapshot into a new session.
    #[error(
        "the component instance holding this resource was lost to an earlier failure ({reason}); restore the resource from a snapshot into a new session"
    )]
    InstanceLost {
        /// The failure that lost the instance, as it was reported then.
        reason: String,
    },
    /// A resource from another [`Session`](crate::Session) was passed (a retry budget or call
    /// belongs to the session of the policy that uses it).
    #[error(
        "a resource from another session was passed; a retry policy, its budget and its calls must share one session"
    )]
    ForeignResource,
}

/// At most this many warm instances wait for calls (more only while more calls run at once).
const MAX_IDLE_INSTANCES: usize = 8;

/// A warm instance whose memory grew beyond this (a huge body went through it) is dropped after
/// its call instead of kept, so idle instances hold little memory.
/// A fresh instance already has 6.5 MiB (the exact tokenizer's BPE tables are data in it).
const RETAIN_MEMORY_BYTES: usize = 12 * 1024 * 1024;

/// Store data: the memory limiter, which also remembers whether it refused a growth, so a trap
/// that follows can be reported as [`HostError::MemoryLimit`] whatever the guest did next.
pub(crate) struct HostState {
    limits: StoreLimits,
    /// The size of the last growth refused during the current call.
    pub(crate) refused: Option<usize>,
    /// The largest linear memory size allowed so far.
    memory_bytes: usize,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let verdict = self.limits.memory_growing(current, desired, maximum);
        if matches!(verdict, Ok(true)) {
            self.memory_bytes = self.memory_bytes.max(desired);
        } else {
            self.refused = Some(desired);
        }
        verdict
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// An instance with its own store, kept between calls.
pub(crate) struct Warm {
    pub(crate) store: Store<HostState>,
    pub(crate) plugin: bindings::Plugin,
}

/// The warm instances waiting for calls. Shared with the [`Session`]s taken from it, which give
/// their instance back when they end cleanly.
pub(crate) type Pool = Arc<Mutex<Vec<Warm>>>;

/// Puts `warm` back into `pool` if it stayed small and the pool has room; drops it otherwise.
pub(crate) fn give_back(pool: &Pool, warm: Warm) {
    if warm.store.data().memory_bytes <= RETAIN_MEMORY_BYTES {
        let mut idle = lock_pool(pool);
        if idle.len() < MAX_IDLE_INSTANCES {
            idle.push(warm);
        }
    }
}

fn lock_pool(pool: &Pool) -> MutexGuard<'_, Vec<Warm>> {
    // Nothing panics while the lock is held; if something ever did, the pool is still a valid
    // list of instances.
    pool.lock().unwrap_or_else(|p| p.into_inner())
}

/// A loaded, compiled llm-resilience component, ready to be called.
///
/// The engine, the compiled component and the pre-linked instance are made once, at load.
/// Calls run on warm instances kept in a small pool:
///
/// - a fresh store and instance per call would cost about 65 µs (measured in release on this
///   project's CI machine: mapping and releasing the linear memory dominates), more than a
///   classification itself; reusing a warm instance costs only resetting its fuel;
/// - the component is pure (no state survives a call except its allocator's free lists), so
///   reuse cannot change a result — the vector tests run every case on one plugin and compare
///   with the native core. Resources are the exception, so they live in a [`Session`](crate::Session)
///   that keeps its instance out of the pool until every resource in it is dropped (destructors
///   run), and then gives it back;
/// - an instance that trapped is dropped, never reused (the next call instantiates anew), and
///   one whose memory grew past 12 MiB is dropped after its call, so idle instances stay small;
///   at most 8 wait idle.
///
/// `Plugin` is `Send + Sync`: calls from several threads run in parallel, each on its own
/// instance.
pub struct Plugin {
    engine: Engine,
    pre: bindings::PluginPre<HostState>,
    limits: Limits,
    idle: Pool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Loads the component from a file, with the default [`Limits`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Plugin, HostError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                HostError::ComponentNotFound {
                    path: path.to_path_buf(),
                }
            } else {
                HostError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Plugin::from_bytes(&bytes)
    }

    /// Loads the component from its bytes (the binary format), with the default [`Limits`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Plugin, HostError> {
        Plugin::with_limits(bytes, Limits::default())
    }

    /// Loads the component from its bytes with the given limits.
    ///
    /// Compiles it, checks that it imports nothing and that it has the `plugin` world's exports.
    pub fn with_limits(bytes: &[u8], limits: Limits) -> Result<Plugin, HostError> {
        let limits = limits.validate()?;
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        let engine =
            Engine::new(&config).map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
        let component = Component::new(&engine, bytes)
            .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
        let imports: Vec<String> = component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        if !imports.is_empty() {
            return Err(HostError::HasImports(imports));
        }
        // Nothing is added: the component gets no host functions at all.
        let linker = Linker::<HostState>::new(&engine);
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
        let pre = bindings::PluginPre::new(instance_pre)
            .map_err(|e| HostError::InvalidComponent(format!("{e:#}")))?;
        Ok(Plugin {
            engine,
            pre,
            limits,
            idle: Pool::default(),
        })
    }

    /// A new plugin that shares this one's compiled component (no recompilation) and runs
    /// under other limits, with its own pool of instances. For a host that wants a different
    /// budget per tenant or per kind of input.
    pub fn with_other_limits(&self, limits: Limits) -> Result<Plugin, HostError> {
        Ok(Plugin {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            limits: limits.validate()?,
            idle: Pool::default(),
        })
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits for the calls that follow (warm instances made under the old limits
    /// are dropped).
    pub fn set_limits(&mut self, limits: Limits) -> Result<(), HostError> {
        self.limits = limits.validate()?;
        // A new pool: sessions still running under the old limits give their instances back
        // to the old one, which goes away with them.
        self.idle = Pool::default();
        Ok(())
    }

    /// How many warm instances wait for calls (for monitoring and tests).
    pub fn idle_instances(&self) -> usize {
        self.idle_pool().len()
    }

    /// The names of the component's imports, as wasmtime sees them (empty for a loaded plugin:
    /// loading refuses any other component).
    pub fn imports(&self) -> Vec<String> {
        self.pre
            .instance_pre()
            .component()
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// Classifies one failed call through the component.
    ///
    /// Converts the core's input to the WIT types, runs the component under [`Limits`], and
    /// converts the result back, so the output equals `llm_resilience::classify(input)`.
    pub fn classify(
        &self,
        input: &llm_resilience::ClassifyInput<'_>,
    ) -> Result<llm_resilience::Classification, HostError> {
        let input = input_to_wit(input);
        self.call(|store, plugin| {
            plugin
                .llm_resilience_classify()
                .call_classify(store, &input)
        })
        .map(classification_from_wit)
    }

    /// The component's own version (its `version()` export), `major.minor.patch`.
    pub fn version(&self) -> Result<String, HostError> {
        self.call(|store, plugin| plugin.llm_resilience_classify().call_version(store))
    }

    /// Calls the component's `diagnostics.noop` on a warm instance from the pool: the cost of
    /// one stateless call (pool, fuel, call), to measure other calls against.
    pub fn noop(&self) -> Result<(), HostError> {
        self.call(|store, plugin| plugin.llm_resilience_diagnostics().call_noop(store))
    }

    /// Runs `f` on a warm instance with a full fuel budget; keeps the instance if the call
    /// succeeded, drops it otherwise.
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &bindings::Plugin) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        let idle = self.idle_pool().pop();
        let mut warm = match idle {
            Some(warm) => warm,
            None => self.instantiate()?,
        };
        let value = run(self.limits, &mut warm, f)?;
        give_back(&self.idle, warm);
        Ok(value)
    }

    fn idle_pool(&self) -> MutexGuard<'_, Vec<Warm>> {
        lock_pool(&self.idle)
    }

    /// What it takes to make instances under this plugin's limits, for a resource that keeps
    /// an instance of its own ([`HostCounter`](crate::HostCounter)).
    pub(crate) fn maker(&self) -> Maker {
        Maker {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            limits: self.limits,
            pool: Arc::clone(&self.idle),
        }
    }

    fn instantiate(&self) -> Result<Warm, HostError> {
        self.maker().instantiate()
    }
}

/// Makes instances of the plugin's component under its limits (a plugin's parts, shared).
#[derive(Clone)]
pub(crate) struct Maker {
    engine: Engine,
    pre: bindings::PluginPre<HostState>,
    pub(crate) limits: Limits,
    /// The pool warm instances come from and go back to.
    pub(crate) pool: Pool,
}

impl Maker {
    /// A warm instance from the pool, or a new one.
    pub(crate) fn take(&self) -> Result<Warm, HostError> {
        let idle = lock_pool(&self.pool).pop();
        match idle {
            Some(warm) => Ok(warm),
            None => self.instantiate(),
        }
    }

    /// A new instance with its own store.
    pub(crate) fn instantiate(&self) -> Result<Warm, HostError> {
        let state = HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            refused: None,
            memory_bytes: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state);
        store
            .set_fuel(self.limits.fuel)
            .map_err(|e| HostError::Trap(format!("{e:#}")))?;
        match self.pre.instantiate(&mut store) {
            Ok(plugin) => Ok(Warm { store, plugin }),
            Err(e) => Err(call_error(self.limits, &store, e)),
        }
    }
}

/// Runs `f` on `warm` with a full fuel budget; a failure is mapped to its typed error (the
/// caller then drops the instance: it cannot be trusted after a trap).
pub(crate) fn run<R>(
    limits: Limits,
    warm: &mut Warm,
    f: impl FnOnce(&mut Store<HostState>, &bindings::Plugin) -> wasmtime::Result<R>,
) -> Result<R, HostError> {
    warm.store.data_mut().refused = None;
    let result = match warm.store.set_fuel(limits.fuel) {
        Ok(()) => f(&mut warm.store, &warm.plugin),
        Err(e) => Err(e),
    };
    result.map_err(|e| call_error(limits, &warm.store, e))
}

/// Maps a failure inside the store to a typed error. The limiter's record comes first: a
/// refused growth may surface as a forced trap, an allocation-failure abort or anything else
/// the guest does when it cannot get memory.
pub(crate) fn call_error(
    limits: Limits,
    store: &Store<HostState>,
    error: wasmtime::Error,
) -> HostError {
    if let Some(requested_bytes) = store.data().refused {
        return HostError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
            requested_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => HostError::OutOfFuel { fuel: limits.fuel },
        _ => HostError::Trap(format!("{error:#}")),
    }
}

/// The WIT input for a core one, with only what the classifier reads
/// ([`ClassifyInput::read_body`](llm_resilience::ClassifyInput::read_body) and its siblings:
/// the first 256 KiB of the body, the headers it reads, the first 16 KiB of a transport
/// message). The rest cannot change the result, so it is never copied into the component: a
/// 1 GiB body costs a 256 KiB copy.
fn input_to_wit(input: &llm_resilience::ClassifyInput<'_>) -> wit::ClassifyInput {
    wit::ClassifyInput {
        status: input.status,
        headers: input
            .read_headers()
            .map(|(name, value)| wit::Header {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        body: input.read_body().to_vec(),
        transport: input.read_transport().map(str::to_string),
        wall_clock_ms: input.wall_clock_ms,
    }
}

fn classification_from_wit(c: wit::Classification) -> llm_resilience::Classification {
    llm_resilience::Classification {
        kind: kind_from_wit(c.kind),
        retryable: c.retryable,
        retry_after_ms: c.retry_after_ms,
        limit_tokens: c.limit_tokens,
        requested_tokens: c.requested_tokens,
        provider: c.provider,
        code: c.code,
        error_type: c.error_type,
        message: c.message,
    }
}

/// The core's kind for a WIT kind (same names, same order).
pub(crate) fn kind_from_wit(kind: wit::ErrorKind) -> core::ErrorKind {
    match kind {
        wit::ErrorKind::Auth => core::ErrorKind::Auth,
        wit::ErrorKind::QuotaExhausted => core::ErrorKind::QuotaExhausted,
        wit::ErrorKind::Moderation => core::ErrorKind::Moderation,
        wit::ErrorKind::RateLimited => core::ErrorKind::RateLimited,
        wit::ErrorKind::Timeout => core::ErrorKind::Timeout,
        wit::ErrorKind::ContextOverflow => core::ErrorKind::ContextOverflow,
        wit::ErrorKind::InvalidRequest => core::ErrorKind::InvalidRequest,
        wit::ErrorKind::NotFound => core::ErrorKind::NotFound,
        wit::ErrorKind::Overloaded => core::ErrorKind::Overloaded,
        wit::ErrorKind::Unavailable => core::ErrorKind::Unavailable,
        wit::ErrorKind::ServerError => core::ErrorKind::ServerError,
        wit::ErrorKind::Network => core::ErrorKind::Network,
        wit::ErrorKind::Unknown => core::ErrorKind::Unknown,
    }
}

/// The WIT kind for a core kind.
pub(crate) fn kind_to_wit(kind: core::ErrorKind) -> wit::ErrorKind {
    match kind {
        core::ErrorKind::Auth => wit::ErrorKind::Auth,
        core::ErrorKind::QuotaExhausted => wit::ErrorKind::QuotaExhausted,
        core::ErrorKind::Moderation => wit::ErrorKind::Moderation,
        core::ErrorKind::RateLimited => wit::ErrorKind::RateLimited,
        core::ErrorKind::Timeout => wit::ErrorKind::Timeout,
        core::ErrorKind::ContextOverflow => wit::ErrorKind::ContextOverflow,
        core::ErrorKind::InvalidRequest => wit::ErrorKind::InvalidRequest,
        core::ErrorKind::NotFound => wit::ErrorKind::NotFound,
        core::ErrorKind::Overloaded => wit::ErrorKind::Overloaded,
        core::ErrorKind::Unavailable => wit::ErrorKind::Unavailable,
        core::ErrorKind::ServerError => wit::ErrorKind::ServerError,
        core::ErrorKind::Network => wit::ErrorKind::Network,
        core::ErrorKind::Unknown => wit::ErrorKind::Unknown,
    }
}

/// The WIT classification for a core one (the retry policy's input).
pub(crate) fn classification_to_wit(c: &llm_resilience::Classification) -> wit::Classification {
    wit::Classification {
        kind: kind_to_wit(c.kind),
        retryable: c.retryable,
        retry_after_ms: c.retry_after_ms,
        limit_tokens: c.limit_tokens,
        requested_tokens: c.requested_tokens,
        provider: c.provider.clone(),
        code: c.code.clone(),
        error_type: c.error_type.clone(),
        message: c.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wit_kind_maps_to_the_core_kind_of_the_same_name() {
        // The WIT enum and the core enum list the same names in the same order; the generated
        // enum's Debug is `ErrorKind::QuotaExhausted`, so compare its kebab-case form.
        let wit_kinds = [
            wit::ErrorKind::Auth,
            wit::ErrorKind::QuotaExhausted,
            wit::ErrorKind::Moderation,
            wit::ErrorKind::RateLimited,
            wit::ErrorKind::Timeout,
            wit::ErrorKind::ContextOverflow,
            wit::ErrorKind::InvalidRequest,
            wit::ErrorKind::NotFound,
            wit::ErrorKind::Overloaded,
            wit::ErrorKind::Unavailable,
            wit::ErrorKind::ServerError,
            wit::ErrorKind::Network,
            wit::ErrorKind::Unknown,
        ];
        assert_eq!(wit_kinds.len(), core::ErrorKind::ALL.len());
        for (w, c) in wit_kinds.into_iter().zip(core::ErrorKind::ALL) {
            let debug = format!("{w:?}");
            let rust_name = debug.rsplit("::").next().unwrap_or_default();
            let wit_name: String = rust_name
                .chars()
                .flat_map(|ch| {
                    if ch.is_ascii_uppercase() {
                        vec!['-', ch.to_ascii_lowercase()]
                    } else {
                        vec![ch]
                    }
                })
                .skip(1)
                .collect();
            assert_eq!(wit_name, c.as_str());
            assert_eq!(kind_from_wit(w), c);
            assert_eq!(kind_from_wit(kind_to_wit(c)), c);
        }
    }

    #[test]
    fn zero_limits_are_rejected_with_every_reason() {
        let err = Limits {
            memory_bytes: 0,
            fuel: 0,
        }
        .validate()
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("memory_bytes"), "{text}");
        assert!(text.contains("fuel"), "{text}");
    }

    #[test]
    fn missing_component_names_the_build_command() {
        let err = Plugin::from_file("/nonexistent/llm-resilience.wasm").unwrap_err();
        assert!(
            matches!(err, HostError::ComponentNotFound { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(crate::BUILD_COMMAND), "{err}");
    }

    #[test]
    fn garbage_bytes_are_an_invalid_component() {
        let err = Plugin::from_bytes(b"not wasm").unwrap_err();
        assert!(matches!(err, HostError::InvalidComponent(_)), "{err:?}");
    }
}

//! Sessions: one pinned component instance that holds resources (breakers, limiters, retry
//! state) between calls.

use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::plugin::{HostState, Limits, Maker, Warm, bindings, give_back, run};
use crate::{HostError, Plugin};

/// One component instance, pinned, with the resources created in it.
///
/// A stateless call ([`Plugin::classify`]) borrows any warm instance from the plugin's pool
/// and gives it back. A resource cannot work that way: a breaker's state lives in the linear
/// memory of the instance that created it, and a WIT resource handle means something only in
/// that instance's store. So resources are created in a `Session`, which takes an instance out
/// of the pool for as long as it (or any resource made in it) lives:
///
/// - every handle ([`HostBreaker`](crate::HostBreaker), [`HostLimiter`](crate::HostLimiter),
///   …) keeps its session alive; when the last one is dropped (each drop runs the guest's
///   destructor), the instance goes back to the pool, clean, for other calls;
/// - calls on the resources of one session are serialised by one lock (they share a store).
///   `Session` and every handle are `Send + Sync`; for calls that should run in parallel, use
///   several sessions (a breaker each, or a [`HostBreakerSet`](crate::HostBreakerSet) per
///   session);
/// - every call runs under the plugin's [`Limits`] (fuel refilled per call, the memory cap for
///   the session's whole life — a limiter holding many keys needs room);
/// - token counters ([`Session::exact_counter`], [`Session::upper_bound_counter`]) are the
///   exception: each lives in an instance of its own (counting and trimming are the calls whose
///   cost grows with their input), so a count or trim that meets a limit costs only the
///   counter's instance, which the next call rebuilds (see [`HostCounter`](crate::HostCounter));
/// - a call on any other resource that traps (fuel, memory cap, anything else) returns that
///   typed error, and the instance is dropped with the state of **every** resource in the
///   session: the component cannot be trusted after a trap. (Those calls do bounded work: their
///   inputs are configs, keys and snapshots the core caps.) Later calls on those handles return
///   [`HostError::InstanceLost`]. Take snapshots ([`HostBreaker::snapshot`](crate::HostBreaker::snapshot),
///   …) as often as losing state would hurt, and restore them into a new session
///   ([`Session::restore_breaker`], …);
/// - a retry policy, its budget and its calls must live in one session (the WIT functions take
///   the budget and the call as borrowed handles); mixing sessions is
///   [`HostError::ForeignResource`].
///
/// ```no_run
/// use llm_resilience::breaker::Outcome;
/// use llmr_host::Plugin;
///
/// let plugin = Plugin::from_file(llmr_host::default_component_path())?;
/// let session = plugin.session()?;
/// let breaker = session.breaker("{}")?;
/// if let Ok(permit) = breaker.acquire(1_000)? {
///     // … make the call …
///     breaker.record(permit, Outcome::Success, 1_250)?;
/// }
/// let saved = breaker.snapshot()?; // JSON: `Session::restore_breaker` or the native core reads it
/// # let _ = saved;
/// # Ok::<(), llmr_host::HostError>(())
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    /// The plugin's limits and pool (where the instance goes back when the session ends
    /// cleanly), and what makes the instances of the session's counters.
    maker: Maker,
    pinned: Mutex<Pinned>,
}

enum Pinned {
    Live(Box<Warm>),
    /// The instance was dropped after this failure.
    Lost(String),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("limits", &self.inner.maker.limits)
            .field("lost", &self.lost_reason())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every handle ran its resource's destructor before letting go of the session (handles
        // hold the session), so a live instance holds nothing and can serve other calls.
        let pinned = std::mem::replace(
            self.pinned.get_mut().unwrap_or_else(|p| p.into_inner()),
            Pinned::Lost(String::new()),
        );
        if let Pinned::Live(warm) = pinned {
            give_back(&self.maker.pool, *warm);
        }
    }
}

impl Plugin {
    /// A new session: an instance of its own (from the pool of warm ones when one waits) in
    /// which to create resources. See [`Session`].
    pub fn session(&self) -> Result<Session, HostError> {
        let maker = self.maker();
        let warm = maker.take()?;
        Ok(Session {
            inner: Arc::new(Inner {
                maker,
                pinned: Mutex::new(Pinned::Live(Box::new(warm))),
            }),
        })
    }
}

impl Session {
    /// The limits each call in this session runs under (the plugin's when it was made).
    pub fn limits(&self) -> Limits {
        self.inner.maker.limits
    }

    /// What makes instances for this session's counters (each has its own).
    pub(crate) fn maker(&self) -> &Maker {
        &self.inner.maker
    }

    /// Why the session's instance was lost, if it was (see [`HostError::InstanceLost`]).
    pub fn lost_reason(&self) -> Option<String> {
        match &*self.lock() {
            Pinned::Live(_) => None,
            Pinned::Lost(reason) => Some(reason.clone()),
        }
    }

    /// Calls the component's `diagnostics.noop` in this session: the cost of one call into the
    /// pinned instance, to measure every other call against.
    pub fn noop(&self) -> Result<(), HostError> {
        self.call(|store, plugin| plugin.llm_resilience_diagnostics().call_noop(store))
    }

    /// Whether `other` is this very session (resources of both may be used together).
    pub fn same_as(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn lock(&self) -> MutexGuard<'_, Pinned> {
        // A panic while the lock is held can only come from the host's own code between two
        // calls; the pinned instance is still consistent then.
        self.inner.pinned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the pinned instance with a full fuel budget. A failure loses the instance.
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &bindings::Plugin) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        let mut pinned = self.lock();
        let warm = match &mut *pinned {
            Pinned::Live(warm) => warm,
            Pinned::Lost(reason) => {
                return Err(HostError::InstanceLost {
                    reason: reason.clone(),
                });
            }
        };
        match run(self.inner.maker.limits, warm, f) {
            Ok(value) => Ok(value),
            Err(error) => {
                // Dropping the instance frees its store and everything in it.
                *pinned = Pinned::Lost(error.to_string());
                Err(error)
            }
        }
    }

    /// Runs a `create`/`restore` export: a list of problems becomes [`HostError::Config`].
    pub(crate) fn create(
        &self,
        f: impl FnOnce(
            &mut Store<HostState>,
            &bindings::Plugin,
        ) -> wasmtime::Result<Result<ResourceAny, Vec<String>>>,
    ) -> Result<Resource, HostError> {
        match self.call(f)? {
            Ok(handle) => Ok(Resource {
                session: self.clone(),
                handle,
            }),
            Err(problems) => Err(HostError::Config(llm_resilience::ConfigError { problems })),
        }
    }

    /// Wraps a handle the component returned (not from `create`: e.g. a retry call).
    pub(crate) fn adopt(&self, handle: ResourceAny) -> Resource {
        Resource {
            session: self.clone(),
            handle,
        }
    }
}

/// An owned resource handle in a session; dropping it runs the guest's destructor.
pub(crate) struct Resource {
    pub(crate) session: Session,
    pub(crate) handle: ResourceAny,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Resource {
    /// Calls `f` with this resource's handle.
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<HostState>, &bindings::Plugin, ResourceAny) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        let handle = self.handle;
        self.session.call(|store, plugin| f(store, plugin, handle))
    }

    /// Checks that `other` lives in this resource's session.
    pub(crate) fn same_session(&self, other: &Resource) -> Result<(), HostError> {
        if self.session.same_as(&other.session) {
            Ok(())
        } else {
            Err(HostError::ForeignResource)
        }
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        let handle = self.handle;
        // A lost session has nothing left to drop; a destructor that traps loses the session
        // (reported to whoever calls it next). Neither can be reported from `drop`.
        let _ = self.session.call(|store, _| handle.resource_drop(store));
    }
}

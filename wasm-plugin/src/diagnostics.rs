//! Adapter for the `diagnostics` interface.

use crate::Plugin;
use crate::bindings::exports::llm::resilience::diagnostics::Guest;

impl Guest for Plugin {
    fn noop() {}
}

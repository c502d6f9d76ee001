//! An OpenRouter-compatible server on loopback that fails on purpose.
//!
//! The workers of `examples/` must be measured against failures that are real in shape but
//! reproducible in time: a provider outage for two seconds in the middle of a run, a 429 storm,
//! conversations that overflow a window, an account that runs dry. This crate serves the
//! OpenRouter endpoints the workers use (`/api/v1/chat/completions` as JSON and SSE,
//! `/api/v1/key`, `/api/v1/credits`, `/api/v1/models`) plus the mock's own (`/mock/jobs`,
//! `/mock/stats`, `/mock/reset`), and injects the faults a [`Scenario`] file lists. The contract
//! (scenario format, faults, jobs, endpoints) is `examples/scenarios/README.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let scenario = mock_openrouter::Scenario::from_file("examples/scenarios/provider-outage.json")?;
//! let mock = mock_openrouter::MockServer::start(scenario, "127.0.0.1:0".parse()?).await?;
//! println!("{}", mock.url());
//! let stats = mock.stats();
//! # let _ = stats;
//! mock.shutdown().await;
//! # Ok(()) }
//! ```

pub mod bodies;
pub mod rng;
pub mod scenario;
pub mod server;
pub mod workload;

pub use scenario::{Fault, FaultAction, FaultSpec, Scenario, ScenarioError};
pub use server::{MockError, MockHandle, MockServer, Stats};
pub use workload::{Jobs, generate};

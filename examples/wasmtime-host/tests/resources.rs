//! The resource API around the step vectors: config errors, key and unit errors with the core's
//! numbers, sessions and the instance pool, traps that lose a session and snapshots that bring
//! it back, resources from two sessions, and handles shared by threads.

mod common;

use llm_resilience::breaker::{Breaker, BreakerConfig, BreakerSet, KeyError, Outcome, State};
use llm_resilience::ratelimit::{RateLimitConfig, RateLimiter, Verdict};
use llm_resilience::retry::{RetryConfig, RetryPolicy};
use llm_resilience::{ConfigError, ErrorKind};
use llmr_host::{
    HostBreaker, HostBreakerSet, HostCall, HostError, HostLimiter, HostRetryBudget,
    HostRetryPolicy, Limits, Session,
};

fn config_problems(err: HostError) -> Vec<String> {
    match err {
        HostError::Config(ConfigError { problems }) => problems,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn rejected_configs_list_the_same_problems_as_the_core() {
    let plugin = common::plugin();
    let session = plugin.session().unwrap();

    let bad_breaker = r#"{"consecutive_failures": 0, "half_open_probes": 0}"#;
    let native = Breaker::new(serde_json::from_str::<BreakerConfig>(bad_breaker).unwrap())
        .unwrap_err()
        .problems;
    assert!(native.len() >= 2, "{native:?}");
    assert_eq!(
        config_problems(session.breaker(bad_breaker).unwrap_err()),
        native
    );
    let native_set = BreakerSet::new(serde_json::from_str(bad_breaker).unwrap(), 0)
        .unwrap_err()
        .problems;
    assert_eq!(
        config_problems(session.breaker_set(bad_breaker, 0).unwrap_err()),
        native_set
    );

    let bad_limiter = r#"{"limit": 0, "period_ms": 0}"#;
    let native = RateLimiter::new(serde_json::from_str::<RateLimitConfig>(bad_limiter).unwrap())
        .unwrap_err()
        .problems;
    assert_eq!(
        config_problems(session.limiter(bad_limiter).unwrap_err()),
        native
    );

    let bad_retry = r#"{"base_delay_ms": 0, "shrink_percent": 100}"#;
    let native = RetryPolicy::new(serde_json::from_str::<RetryConfig>(bad_retry).unwrap())
        .unwrap_err()
        .problems;
    assert_eq!(
        config_problems(session.retry_policy(bad_retry).unwrap_err()),
        native
    );

    // Unknown fields and broken JSON are config errors too, each one named.
    let unknown = config_problems(
        session
            .breaker(r#"{"consecutive_failure": 3}"#)
            .unwrap_err(),
    );
    assert!(unknown[0].contains("consecutive_failure"), "{unknown:?}");
    assert_eq!(
        config_problems(session.retry_budget("{").unwrap_err()).len(),
        1
    );
    // A corrupt snapshot is an error, never a trap.
    let corrupt = config_problems(session.restore_breaker(r#"{"config": 7}"#).unwrap_err());
    assert!(!corrupt.is_empty());
    assert!(session.restore_limiter("[]").is_err());

    // None of that harmed the session.
    assert_eq!(session.lost_reason(), None);
    session.noop().unwrap();
    assert!(session.breaker("{}").is_ok());
}

#[test]
fn key_and_unit_errors_are_the_cores_own() {
    let plugin = common::plugin();
    let long = "k".repeat(300);

    let config = r#"{"limit": 5, "period_ms": 1000}"#;
    let host = plugin.limiter(config).unwrap();
    let mut native = RateLimiter::new(serde_json::from_str(config).unwrap()).unwrap();
    for (key, units) in [
        ("", 1),
        (long.as_str(), 1),
        ("chat-1", 0),
        ("chat-1", 6),
        ("chat-1", 5),
    ] {
        assert_eq!(
            host.check(key, units, 0).unwrap(),
            native.check(key, units, 0),
            "{key:.10} {units}"
        );
    }
    assert_eq!(host.remaining("", 0).unwrap(), native.remaining("", 0));
    assert_eq!(
        host.block_until(&long, 10, 0).unwrap(),
        native.block_until(&long, 10, 0)
    );

    let set = plugin.breaker_set("{}", 4).unwrap();
    assert_eq!(set.acquire("", 0).unwrap(), Err(KeyError::Empty));
    assert_eq!(set.acquire(&long, 0).unwrap(), Err(KeyError::TooLong(300)));
    let permit = set.acquire("gpt-4o", 0).unwrap().unwrap().unwrap();
    assert_eq!(
        set.record(&long, permit, Outcome::Success, 1).unwrap(),
        Err(KeyError::TooLong(300))
    );
    assert_eq!(set.state("gpt-4o", 1).unwrap(), Some(State::Closed));
    assert_eq!(set.state("claude", 1).unwrap(), None);
    assert_eq!(set.keys().unwrap(), vec!["gpt-4o".to_string()]);
}

#[test]
fn a_session_holds_its_instance_until_its_last_resource_is_dropped() {
    let plugin = common::plugin();
    assert_eq!(plugin.idle_instances(), 0);
    let session = plugin.session().unwrap();
    let breaker = session.breaker("{}").unwrap();
    let limiter = session.limiter("{}").unwrap();
    drop(session);
    // The handles keep the session (and its instance) alive.
    assert_eq!(plugin.idle_instances(), 0);
    assert!(breaker.acquire(5).unwrap().is_ok());
    assert!(breaker.session().same_as(limiter.session()));
    drop(breaker);
    assert_eq!(plugin.idle_instances(), 0);
    assert!(matches!(
        limiter.check("chat", 1, 0).unwrap(),
        Ok(Verdict::Allowed { remaining: 9 })
    ));
    drop(limiter);
    // Every destructor ran: the instance is back in the pool, clean, for stateless calls.
    assert_eq!(plugin.idle_instances(), 1);
    let c = plugin
        .classify(&llm_resilience::ClassifyInput {
            status: Some(503),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(c.kind, ErrorKind::Unavailable);
    assert_eq!(plugin.idle_instances(), 1);
    // And a new session reuses it rather than instantiating.
    let session = plugin.session().unwrap();
    assert_eq!(plugin.idle_instances(), 0);
    let fresh = session.breaker("{}").unwrap();
    assert_eq!(fresh.counts(0).unwrap().generation, 0);
}

#[test]
fn a_trap_loses_every_resource_of_the_session_and_a_snapshot_restores_it() {
    // Fuel for instantiating, creating and deciding, but not for parsing megabytes of JSON.
    let plugin = common::plugin_with(Limits {
        fuel: 20_000_000,
        ..Limits::default()
    });
    let session = plugin.session().unwrap();
    let breaker = session
        .breaker(r#"{"consecutive_failures": 2, "failure_rate": null}"#)
        .unwrap();
    let limiter = session.limiter("{}").unwrap();
    let failure = Outcome::Failure {
        kind: ErrorKind::Unavailable,
        retry_after_ms: None,
    };
    for t in [10, 20] {
        let permit = breaker.acquire(t).unwrap().unwrap();
        breaker.record(permit, failure, t + 1).unwrap();
    }
    assert_eq!(breaker.state(30).unwrap(), State::Open);
    limiter.check("chat", 3, 30).unwrap().unwrap();
    let breaker_saved = breaker.snapshot().unwrap();
    let limiter_saved = limiter.snapshot().unwrap();
    let counts = breaker.counts(30).unwrap();

    // 16 MiB of whitespace inside a JSON object: valid in size, far too much work for the fuel.
    let heavy = format!("{{{}}}", " ".repeat(16 * 1024 * 1024));
    let err = session.restore_limiter(&heavy).unwrap_err();
    assert!(
        matches!(err, HostError::OutOfFuel { fuel: 20_000_000 }),
        "{err:?}"
    );

    // The instance is gone, with the breaker and the limiter in it.
    let reason = session.lost_reason().expect("the session is lost");
    assert!(reason.contains("fuel"), "{reason}");
    for err in [
        breaker.acquire(40).unwrap_err(),
        limiter.check("chat", 1, 40).unwrap_err(),
        session.noop().unwrap_err(),
        session.breaker("{}").unwrap_err(),
    ] {
        assert!(
            matches!(&err, HostError::InstanceLost { reason: r } if r == &reason),
            "{err:?}"
        );
        assert!(err.to_string().contains("snapshot"), "{err}");
    }
    drop((breaker, limiter, session));
    // A lost instance never goes back to the pool.
    assert_eq!(plugin.idle_instances(), 0);

    // The snapshots bring the state back in a new session, exactly.
    let session = plugin.session().unwrap();
    let breaker = session.restore_breaker(&breaker_saved).unwrap();
    let limiter = session.restore_limiter(&limiter_saved).unwrap();
    assert_eq!(breaker.counts(30).unwrap(), counts);
    assert_eq!(breaker.state(30).unwrap(), State::Open);
    assert_eq!(limiter.remaining("chat", 30).unwrap(), Ok(7));
}

#[test]
fn retry_resources_must_share_a_session() {
    let plugin = common::plugin();
    let a = plugin.session().unwrap();
    let b = plugin.session().unwrap();
    let policy: HostRetryPolicy = a.retry_policy("{}").unwrap();
    let budget_a: HostRetryBudget = a.retry_budget("{}").unwrap();
    let budget_b = b.retry_budget("{}").unwrap();
    assert!(matches!(
        policy.start_call(0, 1, &budget_b),
        Err(HostError::ForeignResource)
    ));
    let call: HostCall = policy.start_call(0, 1, &budget_a).unwrap();
    let failure = llm_resilience::Classification {
        kind: ErrorKind::Timeout,
        retryable: true,
        retry_after_ms: None,
        limit_tokens: None,
        requested_tokens: None,
        provider: None,
        code: None,
        error_type: None,
        message: String::new(),
    };
    assert!(matches!(
        policy.decide(&call, &failure, 10, None, &budget_b),
        Err(HostError::ForeignResource)
    ));
    let other_call = b
        .retry_policy("{}")
        .unwrap()
        .start_call(0, 1, &budget_b)
        .unwrap();
    assert!(matches!(
        policy.decide(&other_call, &failure, 10, None, &budget_a),
        Err(HostError::ForeignResource)
    ));
    // Nothing was spent by the refused calls: one deposit, no retry yet.
    assert_eq!(call.retries().unwrap(), 0);
    let native_available = {
        let mut budget = llm_resilience::retry::RetryBudget::new(Default::default()).unwrap();
        budget.deposit(0);
        budget.available(10)
    };
    assert_eq!(budget_a.available(10).unwrap(), native_available);
    assert!(policy.decide(&call, &failure, 10, None, &budget_a).is_ok());
    assert_eq!(call.retries().unwrap(), 1);
}

#[test]
fn handles_are_shared_by_threads_without_losing_an_update() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Session>();
    send_sync::<HostBreaker>();
    send_sync::<HostBreakerSet>();
    send_sync::<HostLimiter>();
    send_sync::<HostRetryPolicy>();
    send_sync::<HostRetryBudget>();
    send_sync::<HostCall>();

    let plugin = common::plugin();
    let limiter = plugin
        .limiter(r#"{"limit": 1000, "period_ms": 60000}"#)
        .unwrap();
    let breaker = plugin
        .breaker(r#"{"consecutive_failures": null, "failure_rate": {"window": {"type": "count", "calls": 1000}, "min_calls": 1000}}"#)
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert!(matches!(
                        limiter.check("chat", 1, 0).unwrap(),
                        Ok(Verdict::Allowed { .. })
                    ));
                    let permit = breaker.acquire(0).unwrap().unwrap();
                    breaker.record(permit, Outcome::Success, 0).unwrap();
                }
            });
        }
    });
    assert_eq!(limiter.remaining("chat", 0).unwrap(), Ok(200));
    assert_eq!(breaker.counts(0).unwrap().window_calls, 800);
}

//! Scenario runs against the in-process mock, ours beside naive, asserting on outcomes (never
//! on timing). `provider-outage` runs ours through the component; the others natively.

mod common;

use common::*;
use llmr_worker::engine::EngineChoice;
use llmr_worker::events::EventBody;

#[test]
fn provider_outage_ours_through_the_component_beats_naive() {
    let ours = run("provider-outage", false, component());
    let naive = run("provider-outage", true, EngineChoice::Native);
    let jobs = done(&ours.events);

    // Every job done (answered or failed for good), and ours answered more than naive.
    assert_eq!(jobs.len(), 120);
    assert_eq!(ours.lost, 0);
    let answered = |d: &[Done]| d.iter().filter(|d| d.answered).count();
    assert!(
        answered(&jobs) > answered(&done(&naive.events)),
        "ours answered {}, naive {}",
        answered(&jobs),
        answered(&done(&naive.events))
    );
    assert!(matches!(
        &ours.events[0].body,
        EventBody::RunStart { surface, policy, .. } if surface == "component" && policy == "ours"
    ));

    // Far fewer calls into the outage than naive (the breaker stops them).
    let ours_wasted = responses_with_fault(&ours.events, "outage");
    let naive_wasted = responses_with_fault(&naive.events, "outage");
    assert!(naive_wasted > 0, "naive never met the outage");
    assert!(
        ours_wasted * 2 < naive_wasted,
        "ours sent {ours_wasted} calls into the outage, naive {naive_wasted}"
    );

    // The primary's breaker opened, and closed again once the provider was back.
    let transitions: Vec<(String, String)> = ours
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Breaker { model, to, .. } if model == "openai/gpt-4o-mini" => {
                Some((to.clone(), model.clone()))
            }
            _ => None,
        })
        .collect();
    let opened = transitions.iter().position(|(to, _)| to == "open");
    let closed_after =
        opened.and_then(|i| transitions[i..].iter().position(|(to, _)| to == "closed"));
    assert!(
        opened.is_some(),
        "the breaker never opened: {transitions:?}"
    );
    assert!(
        closed_after.is_some(),
        "the breaker never closed again: {transitions:?}"
    );

    // Jobs fell back to the second model, and it answered them.
    assert!(!decisions(&ours.events, "fallback").is_empty());
    assert!(
        jobs.iter()
            .any(|d| d.answered && d.model.as_deref() == Some("anthropic/claude-3.5-haiku"))
    );
    // Naive never falls back and fails some jobs for good.
    assert!(done(&naive.events).iter().any(|d| !d.answered));
}

#[test]
fn long_conversations_ours_answers_more_long_jobs_natively() {
    let ours = run("long-conversations", false, EngineChoice::Native);
    let naive = run("long-conversations", true, EngineChoice::Native);
    assert!(matches!(
        &ours.events[0].body,
        EventBody::RunStart { surface, .. } if surface == "native"
    ));
    let long_answered = |events: &[_]| done(events).iter().filter(|d| d.long && d.answered).count();
    let (o, n) = (long_answered(&ours.events), long_answered(&naive.events));
    assert!(o > n, "ours answered {o} long jobs, naive {n}");

    // Ours trims to the window before sending: either nothing overflowed, or a shrink led to
    // an answer.
    let overflows = ours
        .events
        .iter()
        .filter(|e| {
            matches!(&e.body, EventBody::Response { kind: Some(k), .. } if k == "context-overflow")
        })
        .count();
    let shrunk_then_answered = done(&ours.events)
        .iter()
        .filter(|d| d.shrinks > 0 && d.answered)
        .count();
    assert!(
        overflows == 0 || shrunk_then_answered > 0,
        "{overflows} overflows and no shrink answered"
    );
    // Naive met overflows (its 10 → 5 message cut is no token budget).
    assert!(
        done(&naive.events)
            .iter()
            .any(|d| d.kind.as_deref() == Some("context-overflow"))
    );
}

#[test]
fn credits_run_out_alerts_once_and_lowers_max_tokens() {
    let ours = run("credits-run-out", false, EngineChoice::Native);
    // Each alert raised at most once per crossing: never twice in a row without a clear.
    let mut raised: std::collections::HashMap<String, bool> = Default::default();
    let mut raised_count = 0;
    for e in &ours.events {
        if let EventBody::Alert { alert, state, .. } = &e.body {
            let active = raised.entry(alert.clone()).or_insert(false);
            match state.as_str() {
                "raised" => {
                    assert!(!*active, "{alert} raised again while active");
                    *active = true;
                    raised_count += 1;
                }
                "cleared" => *active = false,
                other => panic!("unexpected alert state {other}"),
            }
        }
    }
    assert!(raised_count > 0, "no alert raised as the credit ran out");
    assert!(raised.contains_key("balance-critical") || raised.contains_key("balance-warning"));

    // A 402 "can only afford" lowered max_tokens, and the request after it used the new value.
    let lowered = decisions(&ours.events, "lower-max-tokens");
    assert!(!lowered.is_empty(), "no 402 lowered max_tokens");
    for d in &lowered {
        let EventBody::Decision {
            job,
            target_tokens: Some(t),
            ..
        } = &d.body
        else {
            panic!("lower-max-tokens without a target: {d:?}");
        };
        assert!(*t < 512);
        let next = ours.events.iter().find(|e| {
            e.t_ms >= d.t_ms
                && matches!(&e.body, EventBody::Request { job: j, attempt, .. } if j == job && *attempt > 1)
        });
        match next.map(|e| &e.body) {
            Some(EventBody::Request { max_tokens, .. }) => assert_eq!(
                max_tokens, t,
                "the retry of {job} did not use max_tokens {t}"
            ),
            // No retry: the account was dry by then, so the job held (and its hold timed out),
            // or the account's hold window had already passed and it failed at once.
            _ => assert!(
                ours.events.iter().any(|e| e.t_ms >= d.t_ms
                    && matches!(&e.body, EventBody::Decision { job: j, decision, reason, .. }
                        if j == job && (decision == "hold-for-credit"
                            || (decision == "give-up"
                                && reason.as_deref()
                                    == Some("credit did not return within credit_hold_ms"))))),
                "{job} lowered max_tokens, then neither retried, held nor gave up on credit"
            ),
        }
    }
    assert_eq!(ours.lost, 0);

    // The credit hold: once the account is dry, jobs hold instead of sending into the 402.
    let holds = decisions(&ours.events, "hold-for-credit");
    assert!(!holds.is_empty(), "no job held for credit");
    let held: std::collections::BTreeSet<&str> = holds
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Decision { job, .. } => Some(job.as_str()),
            _ => None,
        })
        .collect();
    let answered_after_hold = done(&ours.events)
        .iter()
        .filter(|d| d.answered && held.contains(d.job.as_str()))
        .count();
    assert!(
        answered_after_hold > 0,
        "no job that held was answered after the top-up"
    );
    // No stream of 402s while dry. The scenario runs dry twice (before and after the top-up);
    // each time, at most a pool's worth of requests meets a 402 that lowering max_tokens can
    // still cure, then at most a pool's worth already in flight when the account went dry.
    let quota_402s = ours
        .events
        .iter()
        .filter(|e| {
            matches!(&e.body, EventBody::Response { kind: Some(k), .. } if k == "quota-exhausted")
        })
        .count();
    let concurrency = policy().concurrency;
    assert!(
        quota_402s <= 4 * concurrency,
        "{quota_402s} quota-exhausted responses > 4 × concurrency {concurrency}"
    );
    // A hold is not a give-up, and every job ends answered or failed.
    let (answered, failed, persisted, lost) = run_end(&ours.events);
    assert_eq!((persisted, lost), (0, 0));
    assert_eq!(answered + failed, done(&ours.events).len() as u64);
}

// Unit tests of the breaker, limiter and retry handles: typed results, config errors, invalid
// keys, snapshots across a new plugin instance, resource cleanup (close, dispose, GC), traps.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import * as llmr from '../index.js';
import { watchedPlugin } from './helpers.js';

const ONE_FAILURE_TRIPS = { consecutive_failures: 1, failure_rate: null };
const plugin = new llmr.Plugin();

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

/** Collects garbage and lets the finalizers that it queued run. */
async function collect() {
  for (let i = 0; i < 3; i += 1) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function trip(breaker, nowMs, kind = 'unavailable') {
  const a = breaker.acquire(nowMs);
  assert.ok(a.admitted);
  breaker.record(a.permit, { outcome: 'failure', kind }, nowMs);
}

// ---- typed results ------------------------------------------------------------------------

test('breaker results are tagged plain objects with numbers', () => {
  const b = new llmr.Breaker(ONE_FAILURE_TRIPS, { plugin });
  const a = b.acquire(0);
  assert.deepEqual(a, { admitted: true, permit: { generation: 0, id: 0, admittedMs: 0, probe: false } });
  assert.ok(Object.isFrozen(a.permit));
  // A classification is a failure; its retry hint lengthens the open period.
  const failure = plugin.classify({ status: 429, headers: { 'retry-after': '120' }, body: '{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}' });
  assert.deepEqual(b.record(a.permit, failure, 10), { recorded: 'counted', transition: { from: 'closed', to: 'open' } });
  assert.deepEqual(b.acquire(10n), { admitted: false, state: 'open', retryInMs: 120_000 });
  assert.equal(b.state(10), 'open');
  const counts = b.counts(10);
  assert.equal(counts.state, 'open');
  assert.deepEqual([counts.timesOpened, counts.rejected, counts.generation], [1, 1, 1]);
  assert.deepEqual(b.record(a.permit, 'success', 11), { recorded: 'stale', transition: null });
  assert.deepEqual(b.forceOpen(12), { from: 'open', to: 'forced-open' });
  assert.deepEqual(b.acquire(13), { admitted: false, state: 'forced-open', retryInMs: null });
  assert.deepEqual(b.reset(14), { from: 'forced-open', to: 'closed' });
  assert.equal(b.reset(15), null);
  assert.deepEqual(b.disable(16), { from: 'closed', to: 'disabled' });
  assert.deepEqual([...llmr.State], ['closed', 'open', 'half-open', 'forced-open', 'disabled']);
  b.close();
});

test('ignored and uncounted outcomes do not trip', () => {
  const b = new llmr.Breaker(ONE_FAILURE_TRIPS, { plugin });
  for (const outcome of ['ignored', { outcome: 'ignored' }, { outcome: 'failure', kind: 'context-overflow' }, { kind: 'moderation', retryable: false }]) {
    const a = b.acquire(0);
    assert.deepEqual(b.record(a.permit, outcome, 1), { recorded: 'counted', transition: null });
  }
  assert.equal(b.state(2), 'closed');
  b.close();
});

test('limiter verdicts are tagged', () => {
  const l = new llmr.RateLimiter({ limit: 2, period_ms: 1000 }, { plugin });
  assert.deepEqual(l.check('s', 1, 0), { verdict: 'allowed', allowed: true, remaining: 1 });
  assert.deepEqual(l.check('s', 1, 0), { verdict: 'allowed', allowed: true, remaining: 0 });
  assert.deepEqual(l.check('s', 1, 0), { verdict: 'denied', allowed: false, retryInMs: 500 });
  assert.equal(l.size, 1);
  assert.equal(l.len(), 1);
  l.blockUntil('t', 5000, 0);
  assert.deepEqual(l.check('t', 1, 100), { verdict: 'denied', allowed: false, retryInMs: 4900 });
  assert.equal(l.remaining('s', 1000), 2);
  l.settle('s', 2, 1, 1000);
  assert.equal(l.remaining('s', 1000), 2);
  l.close();
});

test('retry decisions are tagged', () => {
  const policy = new llmr.RetryPolicy({ jitter: 'none' }, { plugin });
  const budget = new llmr.RetryBudget({}, { plugin });
  const call = policy.startCall(0, 7, budget);
  assert.equal(call.policy, policy);
  assert.equal(call.budget, budget);
  assert.deepEqual(call.decide(plugin.classify({ status: 529 }), 0), { decision: 'retry', afterMs: 500, attempt: 2 });
  assert.equal(call.retries, 1);
  const overflow = plugin.classify({
    status: 400,
    body: '{"error":{"message":"This model\'s maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","code":"context_length_exceeded"}}',
  });
  assert.equal(overflow.kind, 'context-overflow');
  const shrink = policy.decide(call, overflow, 10, 9000);
  assert.equal(shrink.decision, 'shrink-context');
  assert.ok(shrink.targetTokens < 8192 && shrink.attempt === 3);
  // classifyExact's bigints are accepted too.
  assert.deepEqual(call.decide(plugin.classifyExact({ status: 401 }), 20n), { decision: 'give-up', reason: { code: 'permanent', kind: 'auth' } });
  assert.ok(budget.available(20) >= 0);
  for (const r of [call, policy, budget]) r.close();
});

test('the same seed gives the same jitter in any plugin', () => {
  const delays = (p, seed) => {
    const policy = new llmr.RetryPolicy({ jitter: 'full', deadline_ms: null }, { plugin: p });
    const budget = new llmr.RetryBudget({}, { plugin: p });
    const call = policy.startCall(0, seed, budget);
    const out = [0, 1, 2].map(() => call.decide(p.classify({ status: 503 }), 0).afterMs);
    for (const r of [call, policy, budget]) r.close();
    return out;
  };
  assert.deepEqual(delays(plugin, 42), delays(new llmr.Plugin(), 42));
});

// ---- config errors --------------------------------------------------------------------------

test('every config problem is listed', () => {
  assert.throws(
    () => new llmr.Breaker({ consecutive_failures: 0, half_open_probes: 0 }, { plugin }),
    (err) => err instanceof llmr.ConfigError && err instanceof RangeError && err.problems.length === 2 &&
      err.problems.some((p) => p.includes('consecutive_failures')) && err.problems.some((p) => p.includes('half_open_probes')),
  );
});

test('refused configs and snapshots are config errors, not traps', () => {
  const cases = [
    [() => new llmr.Breaker({ bogus: 1 }, { plugin }), 'bogus'],
    [() => new llmr.BreakerSet({}, 0, { plugin }), 'max_keys'],
    [() => new llmr.RateLimiter({ limit: 0 }, { plugin }), 'limit'],
    [() => new llmr.RetryPolicy({ base_delay_ms: 0 }, { plugin }), 'base_delay_ms'],
    [() => new llmr.RetryBudget({ retry_percent: 5000 }, { plugin }), 'retry_percent'],
    [() => llmr.Breaker.restore('{not json', { plugin }), 'snapshot'],
    [() => llmr.Breaker.restore({}, { plugin }), 'config'],
    [() => llmr.BreakerSet.restore('[]', { plugin }), 'snapshot'],
    [() => llmr.RateLimiter.restore('{"config": 5}', { plugin }), 'snapshot'],
  ];
  const before = plugin.liveResources;
  for (const [make, needle] of cases) {
    assert.throws(make, (err) => err instanceof llmr.ConfigError && err.problems.some((p) => p.includes(needle)), needle);
  }
  assert.equal(plugin.liveResources, before);
  const b = new llmr.Breaker({}, { plugin });
  assert.equal(b.state(0), 'closed');
  b.close();
});

test('configs are plain objects of JSON values', () => {
  for (const config of ['{}', [['limit', 1]], new Map([['limit', 1]]), { limit: Number.NaN }, 5]) {
    assert.throws(() => new llmr.RateLimiter(config, { plugin }), TypeError);
  }
  assert.throws(() => new llmr.Breaker({}, { plugin: {} }), TypeError);
});

// ---- keys and limit errors ------------------------------------------------------------------

test('breaker-set keys', () => {
  const s = new llmr.BreakerSet(ONE_FAILURE_TRIPS, 2, { plugin });
  for (const [bad, code] of [['', 'empty-key'], ['k'.repeat(257), 'key-too-long'], ['é'.repeat(129), 'key-too-long']]) {
    assert.throws(() => s.acquire(bad, 0), (err) => err instanceof llmr.InvalidKeyError && err.code === code && err.key === bad && !(err instanceof llmr.LimitError));
    assert.throws(() => s.record(bad, { generation: 0, id: 0, admittedMs: 0, probe: false }, 'success', 0), llmr.InvalidKeyError);
  }
  assert.ok(s.acquire('k'.repeat(256), 0).admitted);
  const a = s.acquire('openai/gpt-4o', 1);
  assert.deepEqual(s.record('openai/gpt-4o', a.permit, { outcome: 'failure', kind: 'timeout' }, 2), { recorded: 'counted', transition: { from: 'closed', to: 'open' } });
  assert.equal(s.state('openai/gpt-4o', 3), 'open');
  assert.equal(s.state('never-seen', 3), null);
  assert.deepEqual(s.keys(), [...s.keys()].sort());
  assert.equal(s.keys().length, 2);
  assert.throws(() => s.acquire(42, 0), TypeError);
  s.close();
});

test('limiter errors carry codes', () => {
  const l = new llmr.RateLimiter({ limit: 5, period_ms: 1000 }, { plugin });
  assert.throws(() => l.check('s', 0, 0), (err) => err instanceof llmr.LimitError && err.code === 'zero-units' && !(err instanceof llmr.InvalidKeyError));
  assert.throws(() => l.check('s', 6, 0), (err) => err instanceof llmr.LimitError && err.code === 'exceeds-burst');
  for (const call of [(k) => l.check(k, 1, 0), (k) => l.remaining(k, 0), (k) => l.settle(k, 1, 1, 0), (k) => l.blockUntil(k, 5, 0)]) {
    assert.throws(() => call(''), (err) => err instanceof llmr.LimiterKeyError && err instanceof llmr.InvalidKeyError && err instanceof llmr.LimitError && err.code === 'empty-key');
    assert.throws(() => call('x'.repeat(300)), (err) => err instanceof llmr.LimitError && err.code === 'key-too-long');
  }
  assert.equal(l.len(), 0);
  l.close();
});

test('bad arguments never reach the component', () => {
  const l = new llmr.RateLimiter({}, { plugin });
  const cases = [
    [['s', 1, -1], RangeError], [['s', 1, 2n ** 64n], RangeError], [['s', 1, 1.5], TypeError],
    [['s', 1, 2 ** 60], TypeError], [['s', -1, 0], RangeError], [['s', 2 ** 32, 0], RangeError],
    [['s', '1', 0], TypeError], [[null, 1, 0], TypeError], [['s', 1, '5'], TypeError],
    [['s', 1, NaN], TypeError], [['s', 0.5, 0], TypeError], [['s', 1, -1n], RangeError],
  ];
  for (const [args, error] of cases) {
    assert.throws(() => l.check(...args), (err) => err instanceof error && err instanceof llmr.ArgumentError, JSON.stringify(args, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)));
  }
  // Bigints are integers too, for u32 arguments as for u64 ones.
  assert.deepEqual(l.check('s', 1n, 0n), { verdict: 'allowed', allowed: true, remaining: 9 });
  assert.deepEqual(l.check('s', 1, 0), { verdict: 'allowed', allowed: true, remaining: 8 });
  l.close();
  const b = new llmr.Breaker({}, { plugin });
  const a = b.acquire(0);
  assert.throws(() => b.record(a.permit, 'fine', 1), TypeError);
  assert.throws(() => b.record(null, 'success', 1), TypeError);
  assert.throws(() => b.record(a.permit, { outcome: 'failure', kind: 'no-such-kind' }, 1), RangeError);
  assert.deepEqual(b.record(a.permit, 'success', 1), { recorded: 'counted', transition: null });
  b.close();
});

// ---- snapshots across a restart -------------------------------------------------------------

test('an open breaker stays open in a new plugin', () => {
  const b = new llmr.Breaker(ONE_FAILURE_TRIPS, { plugin });
  trip(b, 1000);
  const snapshot = b.snapshot();
  const counts = b.counts(2000);
  b.close();
  const again = llmr.Breaker.restore(snapshot, { plugin: new llmr.Plugin() });
  assert.deepEqual(again.counts(2000), counts);
  assert.deepEqual(again.acquire(2000), { admitted: false, state: 'open', retryInMs: 59_000 });
  assert.equal(again.state(61_000), 'half-open');
  const third = llmr.Breaker.restore(JSON.parse(snapshot), { plugin: new llmr.Plugin() });
  assert.deepEqual(third.counts(2000), counts);
  again.close();
  third.close();
});

test('a breaker set and a limiter survive a restart', () => {
  const s = new llmr.BreakerSet(ONE_FAILURE_TRIPS, 8, { plugin });
  const a = s.acquire('anthropic/claude', 0);
  s.record('anthropic/claude', a.permit, { outcome: 'failure', kind: 'overloaded' }, 0);
  assert.ok(s.acquire('openai/gpt-4o', 0).admitted);
  const snapshot = s.snapshot();
  s.close();
  const again = llmr.BreakerSet.restore(snapshot, { plugin: new llmr.Plugin() });
  assert.deepEqual(JSON.parse(again.snapshot()), JSON.parse(snapshot));
  assert.deepEqual(again.keys(), ['anthropic/claude', 'openai/gpt-4o']);
  assert.deepEqual(again.acquire('anthropic/claude', 10), { admitted: false, state: 'open', retryInMs: 59_990 });
  again.close();

  const l = new llmr.RateLimiter({ limit: 3, period_ms: 3000 }, { plugin });
  for (let i = 0; i < 3; i += 1) l.check('6281234567890@s.whatsapp.net', 1, 0);
  const limiterSnapshot = l.snapshot();
  l.close();
  const restored = llmr.RateLimiter.restore(limiterSnapshot, { plugin: new llmr.Plugin() });
  assert.equal(restored.len(), 1);
  assert.deepEqual(restored.check('6281234567890@s.whatsapp.net', 1, 0), { verdict: 'denied', allowed: false, retryInMs: 1000 });
  assert.deepEqual(restored.check('6281234567890@s.whatsapp.net', 1, 1000), { verdict: 'allowed', allowed: true, remaining: 0 });
  restored.close();
});

// ---- resource lifetime ----------------------------------------------------------------------

test('close releases the handle, is idempotent, and dispose is close', () => {
  const p = new llmr.Plugin();
  const b = new llmr.Breaker({}, { plugin: p });
  const s = new llmr.BreakerSet({}, 4, { plugin: p });
  assert.equal(p.liveResources, 2);
  assert.equal(b.closed, false);
  b.close();
  b.close();
  assert.equal(b.closed, true);
  assert.equal(p.liveResources, 1);
  assert.throws(() => b.acquire(0), llmr.ResourceClosedError);
  s[Symbol.dispose ?? Symbol.for('dispose')]();
  assert.equal(s.closed, true);
  assert.equal(p.liveResources, 0);
  // Closing a budget a policy needs makes the policy's call fail cleanly, not trap.
  const policy = new llmr.RetryPolicy({}, { plugin: p });
  const budget = new llmr.RetryBudget({}, { plugin: p });
  budget.close();
  assert.throws(() => policy.startCall(0, 1, budget), llmr.ResourceClosedError);
  assert.ok(policy.startCall(0, 1, new llmr.RetryBudget({}, { plugin: p })) instanceof llmr.RetryCall);
});

test('garbage-collected handles are released', async () => {
  const p = new llmr.Plugin();
  (() => {
    new llmr.Breaker({}, { plugin: p });
    new llmr.RateLimiter({}, { plugin: p });
  })();
  assert.equal(p.liveResources, 2);
  await collect();
  assert.equal(p.liveResources, 0);
});

async function churn(mode) {
  const watch = watchedPlugin();
  const p = watch.plugin;
  new llmr.Breaker({}, { plugin: p }).close(); // the breaker instance exists: watch its memory
  const start = watch.memory.buffer.byteLength;
  const kept = [];
  for (let i = 0; i < 20_000; i += 1) {
    const b = new llmr.Breaker({}, { plugin: p });
    if (mode === 'keep') kept.push(b);
    else if (mode === 'close') b.close();
    if (mode === 'gc' && i % 2000 === 1999) await collect();
  }
  if (mode === 'gc') await collect();
  assert.equal(p.liveResources, kept.length);
  return watch.memory.buffer.byteLength - start;
}

test('released handles free the component memory (close and GC), kept ones do not', async () => {
  // The test can fail: 20 000 kept breakers grow the memory by megabytes, so releases that
  // did not reach the component would too.
  const kept = await churn('keep');
  assert.ok(kept >= 2 << 20, `20 000 kept breakers grew the memory by only ${kept} bytes`);
  const closed = await churn('close');
  assert.ok(closed <= 256 << 10, `closed breakers grew the memory by ${closed} bytes`);
  const collected = await churn('gc');
  assert.ok(collected <= 1 << 20, `collected breakers grew the memory by ${collected} bytes`);
});

test('a trap loses only the handles of its instance, and a snapshot brings them back', () => {
  const watch = watchedPlugin();
  const p = watch.plugin;
  const b = new llmr.Breaker(ONE_FAILURE_TRIPS, { plugin: p });
  trip(b, 0);
  const snapshot = b.snapshot();
  const set = new llmr.BreakerSet(ONE_FAILURE_TRIPS, 8, { plugin: p });
  const l = new llmr.RateLimiter({}, { plugin: p });
  assert.equal(l.check('s', 3, 0).remaining, 7);
  assert.equal(p.liveResources, 3);
  const before = watch.instances; // classify, breaker, ratelimit
  assert.equal(before, 3);
  // A classify trap costs nothing but the functions instance (it holds no handle).
  watch.armed = true;
  assert.throws(() => p.classify({ status: 500 }), (err) => err instanceof llmr.PluginTrap && /functions instance was replaced/.test(err.message));
  assert.deepEqual(b.acquire(1), { admitted: false, state: 'open', retryInMs: 59_999 });
  assert.equal(l.remaining('s', 0), 7);
  assert.equal(p.classify({ status: 500 }).kind, 'server-error');
  assert.equal(watch.instances, before + 1, 'the functions instance was rebuilt');
  // A trap in the breaker instance loses the breakers, not the limiter.
  watch.armed = '#[method]breaker.acquire';
  assert.throws(() => b.acquire(2), llmr.PluginTrap);
  for (let i = 0; i < 2; i += 1) {
    assert.throws(() => b.acquire(1), (err) => err instanceof llmr.ResourceLostError && err instanceof llmr.PluginError && /breaker instance/.test(err.message));
    assert.throws(() => set.acquire('m', 1), llmr.ResourceLostError);
  }
  assert.equal(l.remaining('s', 0), 7);
  assert.equal(p.liveResources, 1);
  b.close(); // closing a lost handle is allowed and does nothing
  set.close();
  assert.equal(p.liveResources, 1);
  assert.equal(watch.instances, before + 1, 'lost handles made no new instance');
  const again = llmr.Breaker.restore(snapshot, { plugin: p });
  assert.equal(watch.instances, before + 2, 'a new breaker made a fresh breaker instance');
  assert.deepEqual(again.acquire(1), { admitted: false, state: 'open', retryInMs: 59_999 });
  again.close();
  l.close();
});

test('handles of different plugins do not mix', () => {
  const policy = new llmr.RetryPolicy({}, { plugin });
  const budget = new llmr.RetryBudget({}, { plugin: new llmr.Plugin() });
  assert.throws(() => policy.startCall(0, 1, budget), /another Plugin/);
  assert.throws(() => new llmr.RetryCall(), TypeError);
  assert.throws(() => policy.startCall(0, 1, {}), TypeError);
  policy.close();
  budget.close();
});

test('handles made without a plugin use the default one', () => {
  const before = llmr.getDefaultPlugin().liveResources;
  const b = new llmr.Breaker();
  assert.equal(b.plugin, llmr.getDefaultPlugin());
  assert.equal(llmr.getDefaultPlugin().liveResources, before + 1);
  b.close();
  assert.equal(llmr.getDefaultPlugin().liveResources, before);
});

// Issue 9, findings 2, 3 and 7 on the JS host: a bad argument never reaches the component (so it
// can never cost a handle), a trap costs only the handles of its capability's instance, and two
// different keys never share one bucket.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as llmr from '../index.js';
import { checkers, lowerCamel, parseWit, upperCamel } from '../wit.js';
import { watchedPlugin } from './helpers.js';

const ONE_FAILURE_TRIPS = { consecutive_failures: 1, failure_rate: null };
const INPUT = { system: 'You are a helpful support agent.', history: [], latest: 'Halo kak, paket saya belum sampai.' };

/** A plugin with state worth keeping in three capabilities: an open breaker, a limiter bucket, a calibration. */
function withState() {
  const watch = watchedPlugin();
  const p = watch.plugin;
  const breaker = new llmr.Breaker(ONE_FAILURE_TRIPS, { plugin: p });
  const a = breaker.acquire(0);
  breaker.record(a.permit, { outcome: 'failure', kind: 'unavailable' }, 0);
  const limiter = new llmr.RateLimiter({}, { plugin: p });
  assert.equal(limiter.check('chat-1', 4, 0).remaining, 6);
  const calibration = new llmr.Calibration({}, { plugin: p });
  calibration.observe('openai/gpt-4o', 1000, 1100);
  const ratio = calibration.ratio('openai/gpt-4o');
  const counter = llmr.TokenCounter.upperBound({ plugin: p });
  const policy = new llmr.RetryPolicy({}, { plugin: p });
  /** Asserts every piece of state is still there. */
  const intact = () => {
    assert.deepEqual(breaker.acquire(1), { admitted: false, state: 'open', retryInMs: 59_999 });
    assert.equal(limiter.remaining('chat-1', 0), 6);
    assert.equal(calibration.ratio('openai/gpt-4o'), ratio);
    assert.equal(policy.startCall(0, 1, new llmr.RetryBudget({}, { plugin: p })).retries, 0);
  };
  intact();
  return { watch, p, breaker, limiter, calibration, counter, policy, intact };
}

// ---- finding 2: one bad value wipes all state -------------------------------------------------

test('a bad budget value is a ConfigError naming the field, before the component is entered', () => {
  const s = withState();
  const instances = s.watch.instances;
  const bad = [-1, 1.5, '8000', 2n ** 64n, 2 ** 64, NaN, Infinity, -1n, true, {}];
  for (const v of bad) {
    for (const field of ['contextWindow', 'context_window', 'reservedOutputTokens', 'safetyMarginTokens']) {
      const check = (err) => {
        assert.ok(err instanceof llmr.ConfigError, `${field}=${String(v)}: ${err}`);
        assert.equal(err.problems.length, 1);
        assert.match(err.problems[0], /^(context_window|reserved_output_tokens|safety_margin_tokens) must be an integer in 0\.\.18446744073709551615 \(got /);
        return true;
      };
      assert.throws(() => llmr.trim({ [field]: v }, INPUT, s.counter), check);
      assert.throws(() => llmr.limitTokens({ [field]: v }, { plugin: s.p }), check);
    }
    for (const field of ['maxHistoryMessages', 'maxDocumentChars', 'maxMessageChars', 'minDocumentChars']) {
      if (typeof v === 'bigint' && v > 0n) continue;
      assert.throws(() => llmr.trim({ [field]: v === 2 ** 64 ? 2 ** 32 : v }, INPUT, s.counter), (err) => err instanceof llmr.ConfigError &&
        /must be an integer in 0\.\.4294967295/.test(err.problems[0]));
    }
  }
  // Every problem at once, by the core's snake_case names.
  assert.throws(() => llmr.trim({ contextWindow: -1, maxDocumentChars: 2 ** 32 }, INPUT, s.counter), (err) =>
    err instanceof llmr.ConfigError && err.problems.length === 2 && /^context_window/.test(err.problems[0]) && /^max_document_chars/.test(err.problems[1]));
  // nextBudget: the same check on the current budget.
  const overflow = { kind: 'context-overflow', retryable: true, limitTokens: 1000, requestedTokens: 1200, message: '' };
  assert.throws(() => llmr.nextBudget(overflow, { contextWindow: '8000' }, 1200, s.policy), llmr.ConfigError);
  assert.throws(() => llmr.nextBudget(overflow, {}, -5, s.policy), (err) => err instanceof llmr.ArgumentError && err.argument === 'requestTokens');
  // Nothing trapped: no instance was replaced, every handle kept its state, the counter works.
  assert.equal(s.watch.instances, instances);
  s.intact();
  assert.ok(llmr.trim({ contextWindow: 8000n }, INPUT, s.counter).report.tokensAfter > 0);
  assert.equal(llmr.limitTokens({ contextWindow: 8000, reservedOutputTokens: 1000, safetyMarginTokens: 0 }, { plugin: s.p }), 7000);
});

test('every u32 and u64 argument takes safe integers and bigints and refuses the rest, typed', () => {
  const s = withState();
  const instances = s.watch.instances;
  const u64 = [[-1, RangeError], [2n ** 64n, RangeError], [-1n, RangeError], [1.5, TypeError], [NaN, TypeError],
    [2 ** 53, TypeError], ['5', TypeError], [null, TypeError], [undefined, TypeError]];
  for (const [v, type] of u64) {
    const typed = (name) => (err) => err instanceof type && err instanceof llmr.ArgumentError && err.argument === name &&
      err.code === 'invalid-argument' && (type === TypeError || err.limit === '0..18446744073709551615');
    assert.throws(() => s.breaker.acquire(v), typed('nowMs'));
    assert.throws(() => s.limiter.check('chat-1', 1, v), typed('nowMs'));
    assert.throws(() => s.calibration.adjust('openai/gpt-4o', v), typed('ourCount'));
    assert.throws(() => s.policy.startCall(0, v, new llmr.RetryBudget({}, { plugin: s.p })), typed('seed'));
  }
  for (const [v, type] of [[-1, RangeError], [2 ** 32, RangeError], [2n ** 32n, RangeError], [0.5, TypeError], ['1', TypeError]]) {
    assert.throws(() => s.limiter.check('chat-1', v, 0), (err) => err instanceof type && err instanceof llmr.ArgumentError &&
      err.argument === 'units' && (type === TypeError || err.limit === '0..4294967295'));
  }
  assert.equal(s.breaker.acquire(2n ** 64n - 1n).admitted, true, 'the largest u64 is a valid time');
  assert.equal(s.watch.instances, instances);
  assert.equal(s.limiter.remaining('chat-1', 0), 6);
  assert.equal(s.calibration.ratio('openai/gpt-4o') > 0, true);
});

// ---- finding 7: lone surrogates ---------------------------------------------------------------

test('lone surrogates are refused (invalid-utf8), so two different keys never share a bucket', () => {
  const s = withState();
  const instances = s.watch.instances;
  const set = new llmr.BreakerSet(ONE_FAILURE_TRIPS, 8, { plugin: s.p });
  const invalid = (name) => (err) => err instanceof llmr.ArgumentError && err instanceof RangeError && err.code === 'invalid-utf8' && err.argument === name;
  for (const key of ['\uD800', '\uD801', 'chat-\uDC00', 'a\uD83D']) {
    assert.throws(() => s.limiter.check(key, 1, 0), invalid('key'));
    assert.throws(() => s.limiter.remaining(key, 0), invalid('key'));
    assert.throws(() => set.acquire(key, 0), invalid('key'));
  }
  // Before the fix, '\uD800' and '\uD801' both became U+FFFD: the second check found the first's
  // bucket. A well-formed pair is one character, distinct from U+FFFD.
  assert.equal(s.limiter.check('\uD83D\uDE00', 10, 0).remaining, 0);
  assert.equal(s.limiter.check('\uFFFD', 1, 0).remaining, 9);
  assert.throws(() => s.counter.countText('x\uDFFF'), invalid('text'));
  // Caught by the generic WIT checks (the path into the trim-input record).
  assert.throws(() => llmr.trim({}, { ...INPUT, latest: 'ok \uD800' }, s.counter), invalid('input.latest.content'));
  assert.throws(() => llmr.trim({}, { ...INPUT, history: [{ role: 'user', content: 'a\uDBFF' }] }, s.counter), invalid('content'));
  assert.throws(() => s.p.classify({ headers: { 'x-request-id': '\uDC00' } }), (err) => err instanceof llmr.ArgumentError && err.code === 'invalid-utf8');
  assert.throws(() => s.calibration.ratio('\uD800'), invalid('model'));
  assert.equal(s.watch.instances, instances);
  s.intact();
  set.close();
});

// ---- finding 3: a trap costs only its instance ------------------------------------------------

test('a trap while trimming costs only the tokens instance; breakers, limiters, calibrations keep their state', () => {
  const s = withState();
  const instances = s.watch.instances;
  s.watch.armed = '/context@0.1.0#trim';
  assert.throws(() => llmr.trim({}, INPUT, s.counter), (err) => err instanceof llmr.PluginTrap &&
    err.cause instanceof WebAssembly.RuntimeError && /tokens instance was replaced/.test(err.message));
  // The others live on with their state.
  s.intact();
  // The trapped counter is lost, every time, never a wrong answer …
  for (let i = 0; i < 2; i += 1) {
    assert.throws(() => s.counter.countText('hi'), (err) => err instanceof llmr.ResourceLostError && /tokens/.test(err.message));
    assert.throws(() => llmr.trim({}, INPUT, s.counter), llmr.ResourceLostError);
  }
  s.counter.close();
  // … and a new one works, in a fresh tokens instance.
  const counter = llmr.TokenCounter.upperBound({ plugin: s.p });
  assert.equal(s.watch.instances, instances + 1);
  assert.ok(llmr.trim({}, INPUT, counter).report.tokensAfter > 0);
  assert.ok(counter.countText('Halo kak') > 0);
  s.intact();
});

test('a trap while counting tokens costs only the tokens instance', () => {
  const s = withState();
  s.watch.armed = '#[method]counter.count-text';
  assert.throws(() => s.counter.countText('x'.repeat(1000)), llmr.PluginTrap);
  s.intact();
  assert.throws(() => s.counter.countMessages([{ role: 'user', content: 'hi' }]), llmr.ResourceLostError);
  assert.ok(llmr.TokenCounter.upperBound({ plugin: s.p }).countText('hi') > 0);
});

test('a trap in the limiter loses the limiters only', () => {
  const s = withState();
  s.watch.armed = '#[method]limiter.check';
  assert.throws(() => s.limiter.check('chat-1', 1, 0), llmr.PluginTrap);
  assert.throws(() => s.limiter.remaining('chat-1', 0), llmr.ResourceLostError);
  assert.deepEqual(s.breaker.acquire(1), { admitted: false, state: 'open', retryInMs: 59_999 });
  assert.ok(llmr.trim({}, INPUT, s.counter).report.tokensAfter > 0);
  assert.equal(new llmr.RateLimiter({}, { plugin: s.p }).check('chat-1', 1, 0).remaining, 9);
});

// ---- the table of checks covers the component ---------------------------------------------

test('the WIT checks cover every function the transpiled component exports', async () => {
  const wit = parseWit(readFileSync(new URL('../gen/llm-resilience.wit', import.meta.url), 'utf8'));
  const checks = checkers(wit);
  const gen = await import('../gen/llm-resilience.js');
  const modules = new Map();
  const root = gen.instantiate((name) => {
    if (!modules.has(name)) modules.set(name, new WebAssembly.Module(readFileSync(new URL(`../gen/${name}`, import.meta.url))));
    return modules.get(name);
  }, {});
  let functions = 0;
  for (const [key, iface] of Object.entries(root)) {
    const name = key.replace(/^llm:resilience\//, '').replace(/@.*$/, '');
    assert.ok(checks[name], `interface ${name} has checks`);
    for (const [f, v] of Object.entries(iface)) {
      if (typeof v !== 'function') continue;
      if (/^[A-Z]/.test(f)) {
        for (const s of Object.getOwnPropertyNames(v).filter((n) => typeof v[n] === 'function')) {
          assert.ok(checks[name].statics[f]?.[s], `${name}.${f}.${s}`);
          functions += 1;
        }
        for (const m of Object.getOwnPropertyNames(v.prototype).filter((n) => n !== 'constructor' && typeof v.prototype[n] === 'function')) {
          if (typeof m === 'symbol') continue;
          assert.ok(checks[name].methods[f]?.[m], `${name}.${f}#${m}`);
          functions += 1;
        }
      } else {
        assert.ok(checks[name].free[f], `${name}.${f}`);
        functions += 1;
      }
    }
  }
  // And the other way round: every WIT function is exported under the name the checks use.
  for (const [name, iface] of Object.entries(wit)) {
    const js = root[`llm:resilience/${name}@0.1.0`];
    for (const f of Object.keys(iface.funcs)) assert.equal(typeof js[lowerCamel(f)], 'function', `${name}.${f}`);
    for (const [r, res] of Object.entries(iface.resources)) {
      for (const f of Object.keys(res.statics)) assert.equal(typeof js[upperCamel(r)][lowerCamel(f)], 'function', `${r}.${f}`);
      for (const f of Object.keys(res.methods)) assert.equal(typeof js[upperCamel(r)].prototype[lowerCamel(f)], 'function', `${r}#${f}`);
    }
  }
  assert.ok(functions >= 60, `${functions} functions checked`);
});

test('the checks refuse what jco would wrap or encode lossily', () => {
  const checks = checkers(parseWit(readFileSync(new URL('../gen/llm-resilience.wit', import.meta.url), 'utf8')));
  const any = () => true;
  const budget = { contextWindow: 8000n, reservedOutputTokens: 0n, safetyMarginTokens: 0n, minDocumentChars: 100 };
  const fails = (fn, args, pattern) => assert.throws(() => fn(args, any), (err) => err instanceof llmr.ArgumentError && pattern.test(err.message));
  fails(checks.context.free.limitTokens, [{ ...budget, contextWindow: -1n }], /^limitTokens: budget\.contextWindow must be a u64/);
  fails(checks.context.free.limitTokens, [{ ...budget, minDocumentChars: 100n }], /budget\.minDocumentChars must be a u32 \(a number\)/);
  fails(checks.context.free.limitTokens, [{ ...budget, maxHistoryMessages: -1 }], /budget\.maxHistoryMessages must be a u32/);
  fails(checks.ratelimit.methods.Limiter.check, ['\uD800', 1, 0n], /^Limiter\.check: key must be valid Unicode/);
  fails(checks.breaker.methods.Breaker.record, [{ generation: 0n, id: 0n, admittedMs: 0n, probe: 'yes' }, { tag: 'success' }, 0n], /permit\.probe must be a boolean/);
  fails(checks.breaker.methods.Breaker.record, [{ generation: 0n, id: 0n, admittedMs: 0n, probe: false }, { tag: 'maybe' }, 0n], /outcome must be \{ tag, val \}/);
  fails(checks.tokens.methods.Counter.countMessages, [[{ role: 'robot', content: '', toolCalls: [] }], []], /messages\[0\]\.role must be one of system, user, assistant, tool/);
  assert.throws(() => checks.context.free.trim([budget, { system: '', documents: [], history: [], latest: { role: 'user', content: '', toolCalls: [] }, tools: [] }, {}], () => false),
    (err) => err instanceof llmr.ArgumentError && /counter must be a counter handle/.test(err.message));
  checks.context.free.limitTokens([budget], any);
});

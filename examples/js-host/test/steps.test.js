// Every step table of tests/vectors/{breaker,ratelimit,retry}.json, run through the component.
// Each file's `description` gives its format; core/tests/step_vectors.rs is the reference runner,
// and every op is interpreted the same way here. `snapshot_restore` restores into a *new* Plugin
// (a fresh component instance), so the vectors also prove that state survives a restart.
// $LLMR_VECTORS_DIR points the tests at another directory of vector files.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import * as llmr from '../index.js';

const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const VECTORS_DIR = process.env.LLMR_VECTORS_DIR || join(REPO_ROOT, 'tests', 'vectors');
const CAPABILITIES = ['breaker', 'ratelimit', 'retry'];
/** The names under which a vector file may say this surface cannot express a case. */
const SURFACES = ['js'];

/** Every case of the three files; a missing, unreadable or empty file is one failing case. */
function loadCases() {
  const cases = [];
  for (const capability of CAPABILITIES) {
    const path = join(VECTORS_DIR, `${capability}.json`);
    let doc;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
      if (!Array.isArray(doc.cases)) throw new Error("'cases' is not a list");
      if (doc.cases.length === 0) throw new Error('the file holds no cases');
    } catch (err) {
      cases.push({ capability, id: `${capability}:load`, loadError: `${path}: ${err.message}` });
      continue;
    }
    const seen = new Map();
    doc.cases.forEach((c, i) => {
      let name = c && typeof c.name === 'string' && c.name ? c.name : `case${i}`;
      seen.set(name, (seen.get(name) ?? 0) + 1);
      if (seen.get(name) > 1) name = `${name}#${seen.get(name)}`;
      const skip = c && c.skip && typeof c.skip === 'object' ? SURFACES.find((s) => s in c.skip) : undefined;
      cases.push({ capability, id: `${capability}:${name}`, case: c, skipReason: skip ? String(c.skip[skip]) : undefined });
    });
  }
  return cases;
}

/**
 * `expect` matches `got` when every field `expect` names has the same value in `got`
 * (recursively for objects; a missing field is null); anything else must be equal, as the
 * core's runner says.
 */
function matches(expect, got) {
  if (expect !== null && typeof expect === 'object' && !Array.isArray(expect)) {
    if (got === null || typeof got !== 'object' || Array.isArray(got)) return false;
    return Object.entries(expect).every(([k, v]) => matches(v, got[k] ?? null));
  }
  return isDeepStrictEqual(expect, got);
}

function check(i, step, got) {
  const expect = step.expect ?? null;
  if (!matches(expect, got)) {
    assert.fail(`step ${i} (${step.op} at ${step.now_ms ?? 0} ms): expected ${JSON.stringify(expect)}, got ${JSON.stringify(got)}`);
  }
}

const now = (step) => step.now_ms ?? 0;

// ---- breaker --------------------------------------------------------------------------------

const toSnake = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v]));

function admissionJson(a) {
  return a.admitted ? { admitted: true, probe: a.permit.probe } : { admitted: false, state: a.state, retry_in_ms: a.retryInMs };
}

function outcomeOf(spec) {
  if (spec.outcome === 'failure') return { outcome: 'failure', kind: spec.kind, retryAfterMs: spec.retry_after_ms ?? null };
  return { outcome: spec.outcome };
}

function runBreaker(plugin, c) {
  const isSet = c.max_keys !== undefined && c.max_keys !== null;
  let b = isSet ? new llmr.BreakerSet(c.config ?? {}, c.max_keys, { plugin }) : new llmr.Breaker(c.config ?? {}, { plugin });
  const permits = new Map();
  try {
    (c.steps ?? []).forEach((step, i) => {
      const t = now(step);
      const key = step.key ?? '';
      let got;
      switch (step.op) {
        case 'acquire': {
          const a = isSet ? b.acquire(key, t) : b.acquire(t);
          if (a.admitted && step.permit) permits.set(step.permit, a.permit);
          got = admissionJson(a);
          break;
        }
        case 'record': {
          const permit = permits.get(step.permit);
          assert.ok(permit, `step ${i}: unknown permit ${step.permit}`);
          const outcome = outcomeOf(step.outcome ?? {});
          got = isSet ? b.record(key, permit, outcome, t) : b.record(permit, outcome, t);
          break;
        }
        case 'state':
          got = isSet ? b.state(key, t) : b.state(t);
          break;
        case 'counts':
          assert.ok(!isSet, `step ${i}: counts needs a single breaker`);
          got = toSnake(b.counts(t));
          break;
        case 'force_open':
        case 'disable':
        case 'reset':
          assert.ok(!isSet, `step ${i}: switches need a single breaker`);
          got = { force_open: () => b.forceOpen(t), disable: () => b.disable(t), reset: () => b.reset(t) }[step.op]();
          break;
        case 'snapshot_restore': {
          const snapshot = b.snapshot();
          b.close();
          const fresh = { plugin: new llmr.Plugin() };
          b = isSet ? llmr.BreakerSet.restore(snapshot, fresh) : llmr.Breaker.restore(snapshot, fresh);
          return;
        }
        case 'keys':
          assert.ok(isSet, `step ${i}: keys needs a set`);
          got = b.keys();
          break;
        default:
          assert.fail(`step ${i}: unknown op ${step.op}`);
      }
      check(i, step, got);
    });
  } finally {
    b.close();
  }
}

// ---- ratelimit ------------------------------------------------------------------------------

function runRatelimit(plugin, c) {
  let l = new llmr.RateLimiter(c.config ?? {}, { plugin });
  try {
    (c.steps ?? []).forEach((step, i) => {
      const t = now(step);
      const key = step.key ?? '';
      let got;
      switch (step.op) {
        case 'check':
          try {
            const v = l.check(key, step.units ?? 0, t);
            got = v.allowed ? { verdict: 'allowed', remaining: v.remaining } : { verdict: 'denied', retry_in_ms: v.retryInMs };
          } catch (err) {
            if (!(err instanceof llmr.LimitError)) throw err;
            got = { error: err.code };
          }
          break;
        case 'settle':
          l.settle(key, step.reserved ?? 0, step.actual ?? 0, t);
          return;
        case 'block_until':
          l.blockUntil(key, step.until_ms ?? 0, t);
          return;
        case 'remaining':
          got = l.remaining(key, t);
          break;
        case 'len':
          got = l.len();
          break;
        case 'snapshot_restore': {
          const snapshot = l.snapshot();
          l.close();
          l = llmr.RateLimiter.restore(snapshot, { plugin: new llmr.Plugin() });
          return;
        }
        default:
          assert.fail(`step ${i}: unknown op ${step.op}`);
      }
      check(i, step, got);
    });
  } finally {
    l.close();
  }
}

// ---- retry ----------------------------------------------------------------------------------

function reasonJson(r) {
  const { code, ...rest } = r;
  return { reason: code, ...toSnake(rest) };
}

function decisionJson(d) {
  if (d.decision === 'give-up') return { decision: 'give-up', reason: reasonJson(d.reason) };
  return toSnake(d);
}

function runRetry(plugin, c) {
  const policy = new llmr.RetryPolicy(c.config ?? {}, { plugin });
  const budget = new llmr.RetryBudget(c.budget ?? {}, { plugin });
  const calls = new Map();
  try {
    (c.steps ?? []).forEach((step, i) => {
      const t = now(step);
      let got;
      switch (step.op) {
        case 'start_call':
          calls.set(step.call, policy.startCall(t, step.seed ?? 0, budget));
          return;
        case 'deposit':
          budget.deposit(t);
          return;
        case 'budget_available':
          got = budget.available(t);
          break;
        case 'decide': {
          const call = calls.get(step.call);
          assert.ok(call, `step ${i}: decide on an unknown call`);
          const f = step.failure;
          const failure = {
            kind: f.kind,
            retryable: Boolean(f.retryable),
            retryAfterMs: f.retry_after_ms ?? null,
            limitTokens: f.limit_tokens ?? null,
            requestedTokens: f.requested_tokens ?? null,
            provider: null,
            code: null,
            errorType: null,
            message: '',
          };
          got = decisionJson(policy.decide(call, failure, t, step.request_tokens ?? null));
          const between = step.expect?.after_ms_between;
          if (Array.isArray(between) && between.length === 2) {
            const inside = Number.isInteger(got.after_ms) && between[0] <= got.after_ms && got.after_ms <= between[1];
            got.after_ms_between = inside ? between : got.after_ms;
          }
          break;
        }
        default:
          assert.fail(`step ${i}: unknown op ${step.op}`);
      }
      check(i, step, got);
    });
  } finally {
    for (const call of calls.values()) call.close();
    policy.close();
    budget.close();
  }
}

const RUNNERS = { breaker: runBreaker, ratelimit: runRatelimit, retry: runRetry };
const CASES = loadCases();
const counts = Object.fromEntries(CAPABILITIES.map((c) => [c, { passed: 0, failed: 0, skipped: 0 }]));

for (const capability of CAPABILITIES) {
  test(`the ${capability} vectors are loaded`, () => {
    assert.ok(
      CASES.some((c) => c.capability === capability && !c.loadError),
      `${join(VECTORS_DIR, `${capability}.json`)} holds no cases`,
    );
  });
}

for (const vector of CASES) {
  test(`vector ${vector.id}`, (t) => {
    const tally = counts[vector.capability];
    if (vector.skipReason !== undefined) {
      tally.skipped += 1;
      t.skip(`the vector file says JS cannot express this case: ${vector.skipReason}`);
      return;
    }
    try {
      if (vector.loadError) assert.fail(`cannot load vector file: ${vector.loadError}`);
      // A plugin per case: a failing case cannot leave handles behind for the next one.
      const plugin = new llmr.Plugin();
      RUNNERS[vector.capability](plugin, vector.case);
      assert.equal(plugin.liveResources, 0, 'every handle the case created was closed');
      tally.passed += 1;
    } catch (err) {
      tally.failed += 1;
      throw err;
    }
  });
}

after(() => {
  for (const capability of CAPABILITIES) {
    const { passed, failed, skipped } = counts[capability];
    console.log(`[js] ${capability} vectors: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  }
});

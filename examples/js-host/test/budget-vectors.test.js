// Every case of tests/vectors/context.json and credits.json, run through the component.
// core/tests/context_vectors.rs and core/tests/credits_vectors.rs are the reference runners;
// every case is interpreted the same way here. Context cases count with the upper-bound counter
// (the file's description says so); credit steps compare numbers within a relative 1e-9, and a
// `snapshot_restore` restores into a *new* Plugin (a fresh component instance).
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
/** The names under which a vector file may say this surface cannot express a case. */
const SURFACES = ['js'];

/** Every case of the file's lists; a missing, unreadable or empty file is one failing case. */
function loadCases(capability, lists) {
  const path = join(VECTORS_DIR, `${capability}.json`);
  let doc;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
    if (doc.capability !== capability) throw new Error(`capability is ${doc.capability}`);
    for (const list of lists) {
      if (!Array.isArray(doc[list]) || doc[list].length === 0) throw new Error(`'${list}' is missing or empty`);
    }
  } catch (err) {
    return [{ id: `${capability}:load`, loadError: `${path}: ${err.message}` }];
  }
  const cases = [];
  const seen = new Map();
  for (const list of lists) {
    doc[list].forEach((c, i) => {
      let name = c && typeof c.name === 'string' && c.name ? c.name : `${list}${i}`;
      seen.set(name, (seen.get(name) ?? 0) + 1);
      if (seen.get(name) > 1) name = `${name}#${seen.get(name)}`;
      const skip = c && c.skip && typeof c.skip === 'object' ? SURFACES.find((s) => s in c.skip) : undefined;
      cases.push({ id: `${capability}:${name}`, list, case: c, skipReason: skip ? String(c.skip[skip]) : undefined });
    });
  }
  return cases;
}

/** `expect` matches `got` when every field it names matches (recursively); other values must be equal. */
function matches(expect, got) {
  if (expect !== null && typeof expect === 'object' && !Array.isArray(expect)) {
    if (got === null || typeof got !== 'object' || Array.isArray(got)) return false;
    return Object.entries(expect).every(([k, v]) => matches(v, got[k] ?? null));
  }
  return isDeepStrictEqual(expect, got);
}

// ---- context: results as the core's JSON ----------------------------------------------------

function messageJson(m) {
  const out = { role: m.role, content: m.content };
  if (m.name !== null) out.name = m.name;
  if (m.toolCalls.length) out.tool_calls = m.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments }));
  if (m.toolCallId !== null) out.tool_call_id = m.toolCallId;
  return out;
}

function fateJson(f) {
  if (f.fate === 'truncated') return { fate: f.fate, chars_before: f.charsBefore, chars_after: f.charsAfter };
  if (f.fate === 'dropped') return { fate: f.fate, reason: f.reason };
  return { fate: f.fate };
}

function trimmedJson(t) {
  const r = t.report;
  return {
    messages: t.messages.map(messageJson),
    report: {
      tokens_before: r.tokensBefore,
      tokens_after: r.tokensAfter,
      limit_tokens: r.limitTokens,
      documents: r.documents.map(fateJson),
      history: r.history.map(fateJson),
    },
  };
}

function expectOne(c, ok, error) {
  assert.ok(('expect' in c) !== ('expect_error' in c), 'a case needs exactly one of expect and expect_error');
  const got = error === null ? { ok } : { error };
  if ('expect' in c) {
    if (error !== null || !matches(c.expect, ok)) assert.fail(`expected ${JSON.stringify(c.expect)}, got ${JSON.stringify(got)}`);
  } else if (error === null || !matches(c.expect_error, error)) {
    assert.fail(`expected error ${JSON.stringify(c.expect_error)}, got ${JSON.stringify(got)}`);
  }
}

function runTrim(counter, c) {
  let ok = null;
  let error = null;
  try {
    ok = trimmedJson(llmr.trim(c.budget, c.input, counter));
  } catch (err) {
    if (!(err instanceof llmr.ContextError)) throw err;
    error = err.toJSON();
  }
  expectOne(c, ok, error);
}

function runNextBudget(plugin, c) {
  const f = c.failure;
  const failure = {
    kind: f.kind,
    retryable: Boolean(f.retryable),
    retryAfterMs: f.retry_after_ms ?? null,
    limitTokens: f.limit_tokens ?? null,
    requestedTokens: f.requested_tokens ?? null,
    provider: f.provider ?? null,
    code: f.code ?? null,
    errorType: f.error_type ?? null,
    message: '',
  };
  const policy = new llmr.RetryPolicy(c.retry ?? {}, { plugin });
  let ok = null;
  let error = null;
  try {
    const b = llmr.nextBudget(failure, c.current, c.request_tokens ?? null, policy);
    ok = { limit_tokens: llmr.limitTokens(b, { plugin }), context_window: b.contextWindow };
  } catch (err) {
    if (!(err instanceof llmr.ContextError)) throw err;
    error = err.toJSON();
  } finally {
    policy.close();
  }
  expectOne(c, ok, error);
}

// ---- credits --------------------------------------------------------------------------------

const snake = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`), v]));

/** Null when `got` matches `expect` as core/tests/credits_vectors.rs says; else why. */
function creditsMatch(expect, got, path = '') {
  if (typeof expect === 'number' && typeof got === 'number') {
    return Math.abs(expect - got) <= 1e-9 * Math.max(Math.abs(expect), 1) ? null : `${path}: expected ${expect}, got ${got}`;
  }
  if (expect !== null && typeof expect === 'object' && !Array.isArray(expect) && got !== null && typeof got === 'object' && !Array.isArray(got)) {
    const message = typeof got.message === 'string' ? got.message : '';
    for (const [k, v] of Object.entries(expect)) {
      if (k === 'message_contains') {
        for (const s of v) if (!message.includes(s)) return `${path}: message ${JSON.stringify(message)} lacks ${JSON.stringify(s)}`;
      } else if (k === 'message_excludes') {
        for (const s of v) if (message.includes(s)) return `${path}: message ${JSON.stringify(message)} contains ${JSON.stringify(s)}`;
      } else {
        const why = creditsMatch(v, got[k] ?? null, `${path}.${k}`);
        if (why) return why;
      }
    }
    return null;
  }
  if (Array.isArray(expect) && Array.isArray(got)) {
    if (expect.length !== got.length) return `${path}: expected ${expect.length} items, got ${got.length}: ${JSON.stringify(got)}`;
    for (let i = 0; i < expect.length; i += 1) {
      const why = creditsMatch(expect[i], got[i], `${path}[${i}]`);
      if (why) return why;
    }
    return null;
  }
  return isDeepStrictEqual(expect, got) ? null : `${path}: expected ${JSON.stringify(expect)}, got ${JSON.stringify(got)}`;
}

function runCredits(c) {
  const plugin = new llmr.Plugin();
  let monitor = new llmr.CreditMonitor(c.config ?? {}, { plugin });
  try {
    c.steps.forEach((step, i) => {
      let got;
      switch (step.op) {
        case 'observe': {
          const key = step.key == null ? null : llmr.parseKey(JSON.stringify(step.key), { plugin: monitor.plugin });
          const credits = step.credits == null ? null : llmr.parseCredits(JSON.stringify(step.credits), { plugin: monitor.plugin });
          const events = monitor.observe({ key, credits }, step.now_ms, step.wall_clock_ms ?? null);
          got = { alerts: events.map(snake), status: snake(monitor.status()) };
          break;
        }
        case 'snapshot_restore': {
          const snapshot = monitor.snapshot();
          monitor.close();
          monitor = llmr.CreditMonitor.restore(snapshot, { plugin: new llmr.Plugin() });
          return;
        }
        case 'parse_key':
          try {
            got = snake(llmr.parseKey(step.body ?? '', { plugin }));
          } catch (err) {
            if (!(err instanceof llmr.CreditsError)) throw err;
            got = err.toJSON();
          }
          break;
        case 'parse_credits':
          try {
            got = snake(llmr.parseCredits(step.body ?? '', { plugin }));
          } catch (err) {
            if (!(err instanceof llmr.CreditsError)) throw err;
            got = err.toJSON();
          }
          break;
        case 'afford': {
          const a = llmr.suggestMaxTokens(step.text ?? '', { plugin });
          got = a === null ? null : snake(a);
          break;
        }
        case 'new':
          try {
            new llmr.CreditMonitor(step.config ?? {}, { plugin }).close();
            got = { ok: true };
          } catch (err) {
            if (!(err instanceof llmr.ConfigError)) throw err;
            got = { error: 'config', problems: err.problems.length };
          }
          break;
        default:
          assert.fail(`step ${i}: unknown op ${step.op}`);
      }
      const why = creditsMatch(step.expect ?? null, got);
      if (why) assert.fail(`step ${i} (${step.op}): ${why}`);
    });
  } finally {
    monitor.close();
  }
  assert.equal(plugin.liveResources, 0);
}

// ---- the tests ------------------------------------------------------------------------------

const FILES = {
  context: loadCases('context', ['cases', 'next_budget']),
  credits: loadCases('credits', ['cases']),
};
const counts = { context: { passed: 0, failed: 0, skipped: 0 }, credits: { passed: 0, failed: 0, skipped: 0 } };
let plugin;
let counter;

for (const [family, cases] of Object.entries(FILES)) {
  test(`the ${family} vectors are loaded`, () => {
    assert.ok(cases.some((c) => !c.loadError), cases[0]?.loadError ?? 'no cases');
  });
  for (const vector of cases) {
    test(`vector ${vector.id}`, (t) => {
      if (vector.skipReason !== undefined) {
        counts[family].skipped += 1;
        t.skip(`the vector file says JS cannot express this case: ${vector.skipReason}`);
        return;
      }
      try {
        if (vector.loadError) assert.fail(`cannot load vector file: ${vector.loadError}`);
        if (family === 'credits') {
          runCredits(vector.case);
        } else {
          plugin ??= new llmr.Plugin();
          counter ??= llmr.TokenCounter.upperBound({ plugin });
          if (vector.list === 'next_budget') runNextBudget(plugin, vector.case);
          else runTrim(counter, vector.case);
        }
        counts[family].passed += 1;
      } catch (err) {
        counts[family].failed += 1;
        throw err;
      }
    });
  }
}

after(() => {
  counter?.close();
  for (const [family, c] of Object.entries(counts)) {
    const skipped = c.skipped ? `, ${c.skipped} skipped` : '';
    console.log(`[js] ${family} vectors: ${c.passed} passed, ${c.failed} failed${skipped}`);
  }
});

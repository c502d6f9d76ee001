// Every case of every tests/vectors/classify*.json file, run through the component.
// $LLMR_VECTORS_DIR points the tests at another directory of vector files.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Plugin } from '../index.js';

const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const VECTORS_DIR = process.env.LLMR_VECTORS_DIR || join(REPO_ROOT, 'tests', 'vectors');
/** The names under which a vector file may say this surface cannot express a case. */
const SURFACES = ['js'];

const INPUT_KEYS = new Set(['status', 'headers', 'body', 'transport', 'wall_clock_ms']);
const EXACT = {
  kind: 'kind',
  retryable: 'retryable',
  retry_after_ms: 'retryAfterMs',
  limit_tokens: 'limitTokens',
  requested_tokens: 'requestedTokens',
  provider: 'provider',
  code: 'code',
  error_type: 'errorType',
  message: 'message',
};
const U64_KEYS = new Set(['retry_after_ms', 'limit_tokens', 'requested_tokens']);
const EXPECT_KEYS = new Set([...Object.keys(EXACT), 'message_contains', 'message_excludes']);

function vectorFiles() {
  let names;
  try {
    names = readdirSync(VECTORS_DIR);
  } catch {
    return [];
  }
  return names.filter((n) => /^classify.*\.json$/.test(n)).sort().map((n) => join(VECTORS_DIR, n));
}

/** Every case of every file; a file that cannot be read becomes one failing case. */
function loadCases() {
  const cases = [];
  for (const path of vectorFiles()) {
    const file = path.slice(VECTORS_DIR.length + 1).replace(/\.json$/, '');
    let doc;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
      if (!Array.isArray(doc.cases)) throw new Error("'cases' is not a list");
    } catch (err) {
      cases.push({ id: `${file}:load`, loadError: `${path}: ${err.message}` });
      continue;
    }
    const seen = new Map();
    doc.cases.forEach((c, i) => {
      let name = c && typeof c.name === 'string' && c.name ? c.name : `case${i}`;
      seen.set(name, (seen.get(name) ?? 0) + 1);
      if (seen.get(name) > 1) name = `${name}#${seen.get(name)}`;
      const skip = c && c.skip && typeof c.skip === 'object' ? SURFACES.find((s) => s in c.skip) : undefined;
      cases.push({ id: `${file}:${name}`, case: c, skipReason: skip ? String(c.skip[skip]) : undefined });
    });
  }
  return cases;
}

/** A u64 (bigint) against a JSON number: exact up to 2**53, as close as JSON allows above. */
function sameU64(got, want) {
  if (want === null) return got === null;
  return got !== null && typeof want === 'number' && Number(got) === want;
}

/** Classifies a case's input; returns the result and every mismatch against `expect`. */
function runCase(plugin, c) {
  const input = c.input ?? {};
  const expect = c.expect;
  assert.ok(expect && typeof expect === 'object', "the case has no 'expect' object");
  const problems = [];
  const unknownInput = Object.keys(input).filter((k) => !INPUT_KEYS.has(k));
  if (unknownInput.length) problems.push(`unknown input keys ${unknownInput}`);
  const unknownExpect = Object.keys(expect).filter((k) => !EXPECT_KEYS.has(k));
  if (unknownExpect.length) problems.push(`unknown expect keys ${unknownExpect}`);
  for (const key of ['kind', 'retryable']) if (!(key in expect)) problems.push(`expect lacks the required ${key}`);
  const got = plugin.classifyExact({
    status: input.status,
    headers: input.headers,
    body: input.body ?? '',
    transport: input.transport,
    wallClockMs: input.wall_clock_ms,
  });
  for (const [key, field] of Object.entries(EXACT)) {
    if (!(key in expect)) continue;
    const ok = U64_KEYS.has(key) ? sameU64(got[field], expect[key]) : got[field] === expect[key];
    if (!ok) problems.push(`${key}: expected ${JSON.stringify(expect[key])}, got ${String(got[field])}`);
  }
  for (const needle of expect.message_contains ?? []) {
    if (!got.message.includes(needle)) problems.push(`message should contain ${JSON.stringify(needle)}: ${JSON.stringify(got.message)}`);
  }
  for (const needle of expect.message_excludes ?? []) {
    if (got.message.includes(needle)) problems.push(`message must not contain ${JSON.stringify(needle)}: ${JSON.stringify(got.message)}`);
  }
  return { got, problems };
}

const CASES = loadCases();
const counts = { passed: 0, failed: 0, skipped: 0 };
let plugin;

test('the classify vectors are loaded', () => {
  assert.ok(vectorFiles().length > 0, `no classify*.json in ${VECTORS_DIR}`);
  assert.ok(CASES.length > 0, `the classify*.json files in ${VECTORS_DIR} hold no cases`);
});

for (const vector of CASES) {
  test(`vector ${vector.id}`, (t) => {
    if (vector.skipReason !== undefined) {
      counts.skipped += 1;
      t.skip(`the vector file says JS cannot express this case: ${vector.skipReason}`);
      return;
    }
    try {
      if (vector.loadError) assert.fail(`cannot load vector file: ${vector.loadError}`);
      plugin ??= new Plugin();
      const { got, problems } = runCase(plugin, vector.case);
      assert.deepEqual(problems, [], `${vector.id}: ${problems.join('; ')}\n got: ${JSON.stringify(got, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
      counts.passed += 1;
    } catch (err) {
      counts.failed += 1;
      throw err;
    }
  });
}

after(() => {
  const skipped = counts.skipped ? `, ${counts.skipped} skipped` : '';
  console.log(`[js] classify vectors: ${counts.passed} passed, ${counts.failed} failed${skipped}`);
});

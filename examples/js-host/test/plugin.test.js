// Unit tests of the JS host: argument conversion, u64 conversion, traps, the CLI.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as llmr from '../index.js';

const HOST_DIR = fileURLToPath(new URL('..', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const OPENAI_429 = JSON.stringify({
  error: {
    message:
      'Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, ' +
      'Used 29990, Requested 20. Please try again in 6ms.',
    type: 'tokens',
    param: null,
    code: 'rate_limit_exceeded',
  },
});
const HEADERS = { 'retry-after-ms': '6', 'x-ratelimit-remaining-tokens': '0', 'content-type': 'application/json' };

const plugin = new llmr.Plugin();

test('version() is the workspace version', () => {
  const cargo = readFileSync(new URL('Cargo.toml', `file://${REPO_ROOT}/`), 'utf8');
  const workspaceVersion = /\[workspace\.package\][^[]*?\nversion\s*=\s*"([^"]+)"/.exec(cargo)[1];
  assert.match(plugin.version(), /^\d+\.\d+\.\d+$/);
  assert.equal(plugin.version(), workspaceVersion);
  assert.equal(llmr.version(), plugin.version());
});

test('ErrorKind lists the 13 kinds of the component, in order', () => {
  const dts = readFileSync(new URL('../gen/interfaces/llm-resilience-classify.d.ts', import.meta.url), 'utf8');
  const generated = /export type ErrorKind = ([^;]+);/.exec(dts)[1].split('|').map((s) => s.trim().replace(/'/g, ''));
  assert.deepEqual([...llmr.ErrorKind], generated);
  assert.equal(llmr.ErrorKind.length, 13);
  assert.ok(Object.isFrozen(llmr.ErrorKind));
});

test('the transpiled component needs no imports (no WASI shim)', () => {
  const js = readFileSync(new URL('../gen/llm-resilience.js', import.meta.url), 'utf8');
  assert.doesNotMatch(js, /^import /m);
  assert.doesNotMatch(js, /preview2-shim/);
});

test('a classification is typed: numbers for u64, null for absent', () => {
  const c = plugin.classify({ status: 429, headers: HEADERS, body: OPENAI_429 });
  assert.deepEqual(Object.keys(c), [
    'kind', 'retryable', 'retryAfterMs', 'limitTokens', 'requestedTokens', 'provider', 'code', 'errorType', 'message',
  ]);
  assert.ok(llmr.ErrorKind.includes(c.kind));
  assert.equal(typeof c.retryable, 'boolean');
  assert.equal(typeof c.message, 'string');
  for (const f of ['retryAfterMs', 'limitTokens', 'requestedTokens']) {
    assert.ok(c[f] === null || Number.isSafeInteger(c[f]), `${f} = ${c[f]}`);
  }
  for (const f of ['provider', 'code', 'errorType']) assert.ok(c[f] === null || typeof c[f] === 'string');
  const exact = plugin.classifyExact({ status: 429, headers: HEADERS, body: OPENAI_429 });
  for (const f of ['retryAfterMs', 'limitTokens', 'requestedTokens']) {
    assert.ok(exact[f] === null || typeof exact[f] === 'bigint');
    assert.equal(exact[f] === null ? null : Number(exact[f]), c[f]);
  }
});

test('a string body and its UTF-8 bytes classify alike', () => {
  const bytes = new TextEncoder().encode(OPENAI_429);
  const fromString = plugin.classify({ status: 429, headers: HEADERS, body: OPENAI_429 });
  assert.deepEqual(plugin.classify({ status: 429, headers: HEADERS, body: bytes }), fromString);
  assert.deepEqual(plugin.classify({ status: 429, headers: HEADERS, body: Buffer.from(OPENAI_429) }), fromString);
  assert.deepEqual(plugin.classify({ status: 429, headers: HEADERS, body: bytes.buffer }), fromString);
  const text = '{"error":{"message":"Kuota habis 🙏 — coba lagi","code":"insufficient_quota"}}';
  assert.deepEqual(plugin.classify({ status: 429, body: text }), plugin.classify({ status: 429, body: new TextEncoder().encode(text) }));
  assert.ok(llmr.ErrorKind.includes(plugin.classify({ status: 500, body: new Uint8Array([0xff, 0xfe, 0, 0xc3]) }).kind));
});

test('a header object, pairs, a Map and a Headers classify alike', () => {
  const fromObject = plugin.classify({ status: 429, headers: HEADERS, body: OPENAI_429 });
  const pairs = Object.entries(HEADERS);
  assert.deepEqual(plugin.classify({ status: 429, headers: pairs, body: OPENAI_429 }), fromObject);
  assert.deepEqual(plugin.classify({ status: 429, headers: pairs.map(([name, value]) => ({ name, value })), body: OPENAI_429 }), fromObject);
  assert.deepEqual(plugin.classify({ status: 429, headers: new Map(pairs), body: OPENAI_429 }), fromObject);
  assert.deepEqual(plugin.classify({ status: 429, headers: new Headers(HEADERS), body: OPENAI_429 }), fromObject);
});

test('no input at all is a classification', () => {
  const c = plugin.classify();
  assert.ok(llmr.ErrorKind.includes(c.kind));
  assert.deepEqual(plugin.classify({ status: null, headers: null, body: null, transport: null, wallClockMs: null }), c);
});

test('the module-level classify uses the default plugin', () => {
  const input = { status: 429, headers: HEADERS, body: OPENAI_429, wallClockMs: 1_700_000_000_000 };
  assert.deepEqual(llmr.classify(input), plugin.classify(input));
  assert.deepEqual(llmr.classify({ ...input, wallClockMs: 1_700_000_000_000n }), plugin.classify(input));
  assert.equal(llmr.getDefaultPlugin(), llmr.getDefaultPlugin());
  const transport = 'connect ECONNREFUSED 127.0.0.1:443';
  assert.deepEqual(llmr.classify({ transport }), plugin.classify({ transport }));
});

test('a 16 MiB body is survived, and only its first 256 KiB matter', () => {
  const big = new Uint8Array(16 * 1024 * 1024).fill(0x78);
  big.set(new TextEncoder().encode('{"error":{"message":"'));
  const start = performance.now();
  let result;
  try {
    result = plugin.classify({ status: 500, body: big });
  } catch (err) {
    assert.ok(err instanceof llmr.PluginError, `untyped error ${err}`);
    result = err;
  }
  assert.ok(performance.now() - start < 10_000);
  if (!(result instanceof llmr.PluginError)) {
    assert.deepEqual(result, plugin.classify({ status: 500, body: big.subarray(0, llmr.MAX_BODY_BYTES) }));
    // The same 16 MiB as a string: the same bytes, so the same classification.
    assert.deepEqual(plugin.classify({ status: 500, body: new TextDecoder().decode(big) }), result);
  }
  // And the plugin still works.
  assert.deepEqual(
    plugin.classify({ status: 429, headers: HEADERS, body: OPENAI_429 }),
    new llmr.Plugin().classify({ status: 429, headers: HEADERS, body: OPENAI_429 }),
  );
});

test('a string body is cut at the byte limit exactly, even inside a character', () => {
  const max = llmr.MAX_BODY_BYTES;
  // 'é' is 2 bytes, so the cut falls inside one; after the 'x', a surrogate pair straddles the
  // first MAX_BODY_BYTES UTF-16 units.
  for (const text of ['é'.repeat(max), '😀'.repeat(max / 2 + 1), `x${'😀'.repeat(max / 2)}`, 'x'.repeat(max + 10)]) {
    const bytes = new TextEncoder().encode(text);
    assert.deepEqual(plugin.classify({ body: text }), plugin.classify({ body: bytes.subarray(0, llmr.MAX_BODY_BYTES) }));
  }
});

// A genuine wasm trap: (module (func (export "t") unreachable)).
const TRAP_MODULE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, 116, 0, 0, 10, 5, 1, 3, 0, 0, 11,
]);

test('a trap is a thrown PluginTrap, and the next call runs in a fresh instance', () => {
  const trap = new WebAssembly.Instance(new WebAssembly.Module(TRAP_MODULE)).exports.t;
  let instances = 0;
  let armed = true;
  // jco's instantiateCore hook: the first classify call in the component's core module traps.
  const trapping = new llmr.Plugin({
    instantiateCore(module, imports) {
      const core = new WebAssembly.Instance(module, imports);
      const name = 'llm:resilience/classify@0.1.0#classify';
      // The component holds several core modules (the plugin and jco's shims): count the
      // plugin's instances only.
      if (!(name in core.exports)) return core;
      instances += 1;
      const exports = { ...core.exports };
      const real = exports[name];
      exports[name] = (...args) => {
        if (armed) {
          armed = false;
          trap();
        }
        return real(...args);
      };
      return { exports };
    },
  });
  assert.throws(
    () => trapping.classify({ status: 429, body: OPENAI_429 }),
    (err) => err instanceof llmr.PluginTrap && err instanceof llmr.PluginError && err.cause instanceof WebAssembly.RuntimeError,
  );
  assert.equal(instances, 1);
  const after = trapping.classify({ status: 429, headers: HEADERS, body: OPENAI_429 });
  assert.equal(instances, 2);
  assert.deepEqual(after, plugin.classify({ status: 429, headers: HEADERS, body: OPENAI_429 }));
  assert.equal(trapping.version(), plugin.version());
});

test('bad arguments are rejected before the call', () => {
  const cases = [
    [{ status: 70000 }, RangeError],
    [{ status: -1 }, RangeError],
    [{ status: '429' }, TypeError],
    [{ status: 4.5 }, TypeError],
    [{ headers: 'retry-after: 1' }, TypeError],
    [{ headers: [['only-a-name']] }, TypeError],
    [{ headers: { 'retry-after': 1 } }, TypeError],
    [{ body: 42 }, TypeError],
    [{ transport: 42 }, TypeError],
    [{ wallClockMs: -5 }, RangeError],
    [{ wallClockMs: 2n ** 64n }, RangeError],
    [{ wallClockMs: 1.5 }, TypeError],
  ];
  for (const [input, error] of cases) {
    // Typed: an ArgumentError naming the argument, and the TypeError / RangeError it always was.
    assert.throws(() => plugin.classify(input), (err) => err instanceof error && err instanceof llmr.ArgumentError && err.code === 'invalid-argument' && typeof err.argument === 'string', String(Object.entries(input)));
  }
  assert.throws(() => plugin.classify({ wallClockMs: -5 }), (err) => err.argument === 'wallClockMs' &&
    err.limit === '0..18446744073709551615' && /wallClockMs must be a u64 .* in 0\.\.18446744073709551615, not -5/.test(err.message));
  assert.throws(() => plugin.classify('429'), TypeError);
  assert.ok(llmr.ErrorKind.includes(plugin.classify({ status: 503 }).kind));
});

test('cli.js prints one snake_case classification per JSON line', () => {
  const inputs = [
    { status: 429, headers: { 'retry-after': '2' }, body: '{"error":{"message":"slow down"}}' },
    { status: 503, headers: [['content-type', 'text/html']], body: '<title>503</title>' },
    { transport: 'read tcp 10.0.0.1:443: connection reset by peer', wall_clock_ms: 1_700_000_000_000 },
    {},
  ];
  const out = execFileSync('node', ['cli.js'], { cwd: HOST_DIR, input: inputs.map((i) => `${JSON.stringify(i)}\n`).join('') });
  const lines = out.toString().trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, inputs.length);
  inputs.forEach((i, n) => {
    const c = plugin.classify({ status: i.status, headers: i.headers, body: i.body, transport: i.transport, wallClockMs: i.wall_clock_ms });
    assert.deepEqual(lines[n], {
      kind: c.kind,
      retryable: c.retryable,
      retry_after_ms: c.retryAfterMs,
      limit_tokens: c.limitTokens,
      requested_tokens: c.requestedTokens,
      provider: c.provider,
      code: c.code,
      error_type: c.errorType,
      message: c.message,
    });
  });
  const bad = spawnSync('node', ['cli.js'], { cwd: HOST_DIR, input: 'not json\n{"status": 500}\n' });
  assert.equal(bad.status, 1);
  const badLines = bad.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
  assert.ok('error' in badLines[0]);
  assert.ok(llmr.ErrorKind.includes(badLines[1].kind));
});

// Unit tests of the tokens, context and credits wrappers, and the redaction check (issue 4):
// real-shaped FAKE keys fed into every input that can reach an error, an alert, a report or a
// message; no output may contain them. (A trimmed request's messages are the caller's own texts,
// sent on unchanged: the test checks they are passed through, and nothing else carries a key.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as llmr from '../index.js';

const plugin = new llmr.Plugin();
const exact = llmr.TokenCounter.exact('o200k-base', { plugin });

test('exact and upper-bound counters', () => {
  assert.equal(exact.encoding, 'o200k-base');
  assert.equal(exact.countText('hello world'), 2);
  const upper = llmr.TokenCounter.upperBound({ plugin });
  assert.equal(upper.encoding, null);
  const text = 'Halo kak 👨‍👩‍👧‍👦🇮🇩 pesanan saya belum sampai';
  assert.ok(upper.countText(text) >= exact.countText(text));
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: text }];
  assert.ok(upper.countMessages(messages) >= exact.countMessages(messages));
  upper.close();
  assert.equal(llmr.encodingForModel('openai/gpt-4', { plugin }), 'cl100k-base');
  const api = { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] };
  const ours = { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'f', arguments: '{}' }] };
  assert.equal(exact.countMessages([api]), exact.countMessages([ours]));
  assert.throws(() => exact.countText('a'.repeat(4 * 1024 * 1024 + 1)), (e) => e instanceof llmr.TokenError && e.code === 'too-large');
  assert.throws(() => exact.countMessages([{ role: 'robot', content: 'x' }]), RangeError);
  assert.throws(() => new llmr.TokenCounter(), TypeError);
});

test('trim keeps the system prompt and the latest message, within budget', () => {
  const history = Array.from({ length: 40 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `message ${i} 🙏🏽 `.repeat(20) }));
  const out = llmr.trim(
    { contextWindow: 2000, reservedOutputTokens: 500, safetyMarginTokens: 100 },
    { system: 'Be brief.', documents: ['Refunds take 3 days. '.repeat(50)], history, latest: 'Where is my order?' },
    exact,
  );
  assert.equal(out.messages[0].content, 'Be brief.');
  assert.equal(out.messages.at(-1).content, 'Where is my order?');
  assert.ok(out.report.tokensAfter <= out.report.limitTokens);
  assert.equal(out.report.limitTokens, 1400);
  assert.equal(out.report.tokensAfter, exact.countMessages(out.messages));
  assert.equal(out.report.history.length, 40);
  assert.ok(out.report.history.some((f) => f.fate === 'dropped' && f.reason === 'budget'));
  assert.throws(() => llmr.trim({ contextWindow: 600, reservedOutputTokens: 500, safetyMarginTokens: 0 }, { system: 'x '.repeat(500), latest: 'hi' }, exact),
    (e) => e instanceof llmr.DoesNotFitError && e.limitTokens === 100 && e.requiredTokens > 100);
  assert.throws(() => llmr.trim({}, { system: 's', latest: { role: 'assistant', content: 'hi' } }, exact),
    (e) => e instanceof llmr.LatestNotUserError && e.role === 'assistant');
  assert.throws(() => llmr.trim({ contextWindow: 0 }, { system: 's', latest: 'hi' }, exact), llmr.ConfigError);
  assert.ok(llmr.defaultBudget({ plugin }).contextWindow > 0);
});

test('nextBudget agrees with the retry decision', () => {
  const failure = plugin.classify({ status: 400, body: JSON.stringify({ error: { message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens.", code: 'context_length_exceeded' } }) });
  const policy = new llmr.RetryPolicy({}, { plugin });
  const budget = new llmr.RetryBudget({}, { plugin });
  const nb = llmr.nextBudget(failure, { contextWindow: 128000 }, 121000, policy);
  const call = policy.startCall(0, 1, budget);
  const d = call.decide(failure, 0, 121000);
  assert.equal(d.decision, 'shrink-context');
  assert.equal(llmr.limitTokens(nb, { plugin }), d.targetTokens);
  assert.throws(() => llmr.nextBudget(plugin.classify({ status: 429 }), {}, 1000, policy), (e) => e instanceof llmr.NotOverflowError && e.kind === 'rate-limited');
  for (const r of [call, budget, policy]) r.close();
});

test('credit monitor: alerts once, snapshot, close', () => {
  const p = new llmr.Plugin();
  const monitor = new llmr.CreditMonitor({ runway_hours: null, daily_spend_usd: null }, { plugin: p });
  assert.equal(p.liveResources, 1);
  assert.deepEqual(monitor.observe({ credits: { totalCredits: 20, totalUsage: 14 } }, 0), []);
  const events = monitor.observe({ credits: '{"data":{"total_credits":20,"total_usage":15.1}}' }, 3_600_000);
  assert.deepEqual(events.map((e) => [e.alert, e.state]), [['balance-warning', 'fired']]);
  assert.deepEqual(monitor.status().active, ['balance-warning']);
  const snapshot = monitor.snapshot();
  monitor.close();
  assert.equal(p.liveResources, 0);
  assert.throws(() => monitor.status(), llmr.ResourceClosedError);
  const again = llmr.CreditMonitor.restore(snapshot, { plugin: new llmr.Plugin() });
  assert.deepEqual(again.observe({ credits: { totalCredits: 20, totalUsage: 15.2 } }, 7_200_000), []);
  again.close();
  assert.throws(() => new llmr.CreditMonitor({ warning_balance_usd: -1 }, { plugin: p }), llmr.ConfigError);
  assert.throws(() => llmr.parseCredits('{"data":{"total_credits":5}}', { plugin: p }), (e) => e instanceof llmr.CreditsError && e.code === 'missing-field');
  assert.deepEqual(llmr.suggestMaxTokens('You requested up to 4000 tokens, but can only afford 1200.', { plugin: p }), { requestedTokens: 4000, affordableTokens: 1200, suggestedMaxTokens: 1140 });
  const cal = new llmr.Calibration({}, { plugin: p });
  assert.ok(cal.observe('anthropic/claude-3.5-sonnet', 1000, 1100) !== null);
  assert.equal(cal.size, 1);
  llmr.Calibration.restore(cal.snapshot(), { plugin: p }).close();
  cal.close();
});

// ---- redaction --------------------------------------------------------------------------------

const FAKE_KEYS = [
  'sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef',
  'sk-ant-api03-FAKE_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzAA',
  'sk-proj-FAKEabc123DEF456ghi789JKL012mno345PQR678stu901VWX234yzA567BCD890efg_hij-KLM',
  'AIzaSyFAKE0123456789abcdefghijklmnopq',
];
const BEARER_SECRET = 'FAKEtokenFAKEtokenFAKEtoken0123456789';
const SECRETS = [...FAKE_KEYS, BEARER_SECRET];
const CARRIERS = [...FAKE_KEYS, `Bearer ${BEARER_SECRET}`, `Authorization: Bearer ${BEARER_SECRET}`];

function outcome(fn) {
  try {
    return fn();
  } catch (err) {
    return err;
  }
}

function textOf(value) {
  if (value instanceof Error) return [value.message, value.stack, JSON.stringify(value), JSON.stringify({ ...value })].join('\n');
  return JSON.stringify(value) ?? String(value);
}

function assertClean(what, outputs) {
  const text = outputs.map(textOf).join('\n');
  for (const s of SECRETS) assert.ok(!text.includes(s), `${what}: an output contains ${s.slice(0, 16)}…:\n${text.slice(0, 2000)}`);
}

for (const secret of CARRIERS) {
  test(`no output carries a key: ${secret.slice(0, 12)}…`, () => {
    const q = JSON.stringify(secret).slice(1, -1);
    const outputs = [];
    const bodies = [
      JSON.stringify({ data: { label: secret, usage: 1 } }),
      JSON.stringify({ data: { label: `key ${secret} of the bot` } }),
      JSON.stringify({ error: { code: 401, message: `No auth credentials found: ${secret}` } }),
      JSON.stringify({ data: { usage: secret } }),
      JSON.stringify({ data: { total_credits: secret, total_usage: 1 } }),
      JSON.stringify({ data: { limit_reset: secret } }),
      `{"data": {"label": "${q}"`,
      secret,
      JSON.stringify({ data: { [secret]: 1, total_credits: 2, total_usage: 1 } }),
    ];
    for (const body of bodies) {
      outputs.push(outcome(() => llmr.parseKey(body, { plugin })));
      outputs.push(outcome(() => llmr.parseCredits(body, { plugin })));
      outputs.push(outcome(() => llmr.suggestMaxTokens(body, { plugin })));
    }
    outputs.push(outcome(() => llmr.suggestMaxTokens(`${secret} You requested up to 4000 tokens, but can only afford 1200.`, { plugin })));
    // Alerts and status.
    const monitor = new llmr.CreditMonitor({}, { plugin });
    [7.5, 0.4, 10].forEach((remaining, hour) => {
      const body = JSON.stringify({ data: { label: secret, limit: 10, limit_remaining: remaining, usage: 40 + hour, usage_daily: 2 + hour } });
      outputs.push(...monitor.observe({ key: body }, hour * 3_600_000, 1_795_813_200_000));
      outputs.push(...monitor.observe({ key: { label: secret, limit: 10, limitRemaining: remaining } }, hour * 3_600_000 + 1));
      outputs.push(monitor.status());
    });
    assert.ok(outputs.some((o) => o && o.alert), 'no alert was raised');
    outputs.push(outcome(() => monitor.observe({ key: secret }, 10 ** 8)));
    outputs.push(outcome(() => monitor.observe({ credits: JSON.stringify({ error: { message: secret } }) }, 10 ** 8)));
    monitor.close();
    outputs.push(outcome(() => new llmr.CreditMonitor({ runway_hours: -1 }, { plugin })));
    outputs.push(outcome(() => llmr.CreditMonitor.restore(secret, { plugin })));
    // Trimming: reports and errors.
    const counter = llmr.TokenCounter.upperBound({ plugin });
    const history = [
      { role: 'user', content: `my key is ${secret}`, name: 'cust' },
      { role: 'assistant', content: '', toolCalls: [{ id: 'c1', name: 'lookup', arguments: JSON.stringify({ k: secret }) }] },
      { role: 'tool', content: `result ${secret}`, toolCallId: 'c1' },
      { role: 'assistant', content: `Noted ${secret} `.repeat(40) },
    ];
    const tools = [{ name: 'lookup', description: `uses ${secret}`, parameters: { default: secret } }];
    const sent = [];
    let doesNotFit = false;
    for (const window of [100_000, 1200, 700, 300, 150]) {
      const r = outcome(() => llmr.trim({ contextWindow: window, reservedOutputTokens: 100, safetyMarginTokens: 0, maxMessageChars: 50, minDocumentChars: 10 },
        { system: secret, documents: [`doc ${secret} `.repeat(30), secret], history, latest: `latest ${secret}`, tools }, counter));
      if (r instanceof Error) {
        doesNotFit ||= r instanceof llmr.DoesNotFitError;
        outputs.push(r);
      } else {
        outputs.push(r.report);
        sent.push(...r.messages.map((m) => m.content));
      }
    }
    assert.ok(doesNotFit);
    outputs.push(outcome(() => llmr.trim({}, { system: secret, latest: { role: 'assistant', content: secret } }, counter)));
    outputs.push(outcome(() => llmr.trim({ contextWindow: 0 }, { system: secret, latest: secret }, counter)));
    outputs.push(outcome(() => llmr.trim({ [secret]: 1 }, { system: secret, latest: secret }, counter)));
    outputs.push(outcome(() => llmr.trim({}, { system: secret, history: [{ role: secret, content: secret }], latest: secret }, counter)));
    outputs.push(outcome(() => counter.countText(secret)));
    counter.close();
    const policy = new llmr.RetryPolicy({}, { plugin });
    const failure = { kind: 'context-overflow', retryable: false, limitTokens: 1000, requestedTokens: 1200, provider: secret, code: secret, errorType: secret, message: secret };
    outputs.push(outcome(() => llmr.nextBudget(failure, {}, 1100, policy)));
    outputs.push(outcome(() => llmr.nextBudget({ ...failure, kind: 'auth' }, {}, 1100, policy)));
    policy.close();
    const cal = new llmr.Calibration({}, { plugin });
    outputs.push(cal.observe(secret, 1000, 1100), cal.ratio(secret), cal.adjust(secret, 1000));
    cal.close();
    outputs.push(outcome(() => llmr.Calibration.restore(secret, { plugin })));
    assertClean('tokens / context / credits', outputs);
    // The messages to send are the caller's texts, unchanged or cut: never rewritten.
    assert.ok(sent.includes(secret));
  });
}

// serde's messages quote a config's offending value or field name; the component redacts them
// (wasm-plugin/src/config.rs).
for (const secret of CARRIERS) test(`config and snapshot errors never carry a key: ${secret.slice(0, 12)}…`, () => {
  const outputs = [];
  for (const config of [{ warning_balance_usd: secret }, { [secret]: 1 }]) {
    outputs.push(outcome(() => new llmr.CreditMonitor(config, { plugin })));
    outputs.push(outcome(() => new llmr.Calibration(config, { plugin })));
  }
  for (const snapshot of [JSON.stringify({ config: secret }), JSON.stringify({ [secret]: secret })]) {
    outputs.push(outcome(() => llmr.CreditMonitor.restore(snapshot, { plugin })));
    outputs.push(outcome(() => llmr.Calibration.restore(snapshot, { plugin })));
  }
  assert.ok(outputs.every((o) => o instanceof llmr.ConfigError));
  assertClean('config and snapshot errors', outputs);
});

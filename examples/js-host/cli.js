#!/usr/bin/env node
// `node cli.js`: classify failed calls given as JSON lines, like every surface of the demo.
//
// Reads one JSON object per line on stdin (a vector's `input`: status, headers as an object or
// pairs, body as text, transport, wall_clock_ms) and prints one classification per line with
// snake_case fields and exact integers. A line that cannot be classified prints {"error": …}
// and makes the exit status 1.

import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Plugin, PluginError } from './index.js';

const FIELDS = [
  ['kind', 'kind'],
  ['retryable', 'retryable'],
  ['retry_after_ms', 'retryAfterMs'],
  ['limit_tokens', 'limitTokens'],
  ['requested_tokens', 'requestedTokens'],
  ['provider', 'provider'],
  ['code', 'code'],
  ['error_type', 'errorType'],
  ['message', 'message'],
];

/** Serializes a classification with snake_case keys; bigints are written as exact integers. */
export function toJsonLine(c) {
  const parts = FIELDS.map(([key, field]) => {
    const v = c[field];
    return `${JSON.stringify(key)}:${typeof v === 'bigint' ? v.toString() : JSON.stringify(v)}`;
  });
  return `{${parts.join(',')}}`;
}

/** Classifies one input line (JSON) and returns the output line. */
export function classifyLine(plugin, line) {
  const input = JSON.parse(line);
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TypeError('each line must be a JSON object');
  }
  return toJsonLine(
    plugin.classifyExact({
      status: input.status,
      headers: input.headers,
      body: input.body,
      transport: input.transport,
      wallClockMs: input.wall_clock_ms,
    }),
  );
}

async function main() {
  let plugin;
  try {
    plugin = new Plugin();
  } catch (err) {
    process.stderr.write(`cli.js: ${err.message}\n`);
    return 2;
  }
  if (process.argv.includes('--version')) {
    process.stdout.write(`${plugin.version()}\n`);
    return 0;
  }
  let status = 0;
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (!line.trim()) continue;
    let out;
    try {
      out = classifyLine(plugin, line);
    } catch (err) {
      if (!(err instanceof SyntaxError || err instanceof TypeError || err instanceof RangeError || err instanceof PluginError)) {
        throw err;
      }
      out = JSON.stringify({ error: `${err.name}: ${err.message}` });
      status = 1;
    }
    process.stdout.write(`${out}\n`);
  }
  return status;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  process.exitCode = await main();
}

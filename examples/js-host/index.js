// llm-resilience for JavaScript: the component transpiled by jco (`npm run build` writes gen/),
// behind a typed API. The component imports nothing, so no WASI shim is loaded: it cannot touch
// files, network, clock or environment. This module only converts values; every decision is
// made in the component.

import { readFileSync } from 'node:fs';

/** The error kinds, in the WIT's order: a closed set with one catch-all (`unknown`). */
export const ErrorKind = Object.freeze([
  'auth',
  'quota-exhausted',
  'moderation',
  'rate-limited',
  'timeout',
  'context-overflow',
  'invalid-request',
  'not-found',
  'overloaded',
  'unavailable',
  'server-error',
  'network',
  'unknown',
]);

/**
 * The component reads only this many bytes of a body (`classify-input.body` in the WIT), so only
 * these are sent: the result is the same, and a huge body is never copied into the component.
 */
export const MAX_BODY_BYTES = 256 * 1024;

const U16_MAX = 0xffff;
const U64_MAX = (1n << 64n) - 1n;
const KINDS = new Set(ErrorKind);

/** Base class of every error that comes from the component or its loading. */
export class PluginError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The transpiled component (gen/) is missing or cannot be instantiated. */
export class PluginLoadError extends PluginError {}

/**
 * The component trapped during a call. The instance is then replaced, so the next call works.
 * `cause` is the original `WebAssembly.RuntimeError` (or `RangeError` for a stack overflow).
 */
export class PluginTrap extends PluginError {}

let generated;
let generatedError;
try {
  generated = await import('./gen/llm-resilience.js');
} catch (err) {
  generatedError = err;
}

const coreModules = new Map();

function getCoreModule(name) {
  let module = coreModules.get(name);
  if (!module) {
    module = new WebAssembly.Module(readFileSync(new URL(`./gen/${name}`, import.meta.url)));
    coreModules.set(name, module);
  }
  return module;
}

/**
 * One instance of the component. Calls are synchronous; a trap makes the next call start from a
 * fresh instance.
 */
export class Plugin {
  #instantiateCore;
  #exports = null;

  /**
   * @param {object} [options]
   * @param {Function} [options.instantiateCore] jco's hook `(module, imports) => instance`, for
   *   embedders that compile or wrap the core module themselves.
   */
  constructor(options = {}) {
    if (!generated) {
      throw new PluginLoadError(
        'the transpiled component is missing: run `npm run build` (after `cargo run -p xtask -- component`)',
        { cause: generatedError },
      );
    }
    this.#instantiateCore = options.instantiateCore;
    this.#instantiate();
  }

  #instantiate() {
    let root;
    try {
      root = this.#instantiateCore
        ? generated.instantiate(getCoreModule, {}, this.#instantiateCore)
        : generated.instantiate(getCoreModule, {});
    } catch (err) {
      throw new PluginLoadError(`cannot instantiate the component: ${err.message}`, { cause: err });
    }
    const iface = root['llm:resilience/classify@0.1.0'] ?? root.classify;
    if (!iface || typeof iface.classify !== 'function' || typeof iface.version !== 'function') {
      throw new PluginLoadError('the component does not export llm:resilience/classify@0.1.0');
    }
    this.#exports = iface;
  }

  #call(name, arg) {
    if (!this.#exports) this.#instantiate();
    try {
      return this.#exports[name](arg);
    } catch (err) {
      // A trap leaves the instance unusable; drop it so the next call gets a fresh one.
      this.#exports = null;
      if (err instanceof WebAssembly.RuntimeError || err instanceof RangeError) {
        throw new PluginTrap(`${name}: the component trapped (${err.message})`, { cause: err });
      }
      throw new PluginError(`${name}: the component call failed (${err.message})`, { cause: err });
    }
  }

  /**
   * Classifies one failed call. u64 fields are numbers; see `classifyExact` for bigints.
   * @param {import('./index.js').ClassifyInput} [input]
   * @returns {import('./index.js').Classification}
   */
  classify(input = {}) {
    const raw = this.classifyExact(input);
    return {
      ...raw,
      retryAfterMs: toNumber(raw.retryAfterMs),
      limitTokens: toNumber(raw.limitTokens),
      requestedTokens: toNumber(raw.requestedTokens),
    };
  }

  /** Like `classify`, with the u64 fields as exact bigints. */
  classifyExact(input = {}) {
    const raw = this.#call('classify', toWitInput(input));
    return fromWitClassification(raw);
  }

  /** The version of the library inside the component, `major.minor.patch`. */
  version() {
    const v = this.#call('version');
    if (typeof v !== 'string') throw new PluginError(`version() returned ${String(v)}`);
    return v;
  }
}

let defaultPlugin = null;

/** The shared plugin behind the module-level `classify` and `version`, created on first use. */
export function getDefaultPlugin() {
  defaultPlugin ??= new Plugin();
  return defaultPlugin;
}

/** Classifies one failed call with the shared plugin. */
export function classify(input = {}) {
  return getDefaultPlugin().classify(input);
}

/** Like `classify`, with the u64 fields as exact bigints. */
export function classifyExact(input = {}) {
  return getDefaultPlugin().classifyExact(input);
}

/** The version of the library inside the component. */
export function version() {
  return getDefaultPlugin().version();
}

// ---- conversions --------------------------------------------------------------------------

/**
 * A u64 as a number. Values above Number.MAX_SAFE_INTEGER (a wait of 285,000 years, a context
 * of 9 quadrillion tokens) saturate there instead of silently losing digits.
 */
function toNumber(value) {
  if (value === null) return null;
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

function toWitInput(input) {
  if (input === null || typeof input !== 'object') {
    throw new TypeError('classify expects an object { status, headers, body, transport, wallClockMs }');
  }
  const { status, headers, body, transport, wallClockMs } = input;
  return {
    status: toStatus(status),
    headers: toHeaders(headers),
    body: toBody(body),
    transport: toOptionalString('transport', transport),
    wallClockMs: toWallClock(wallClockMs),
  };
}

function toStatus(status) {
  if (status === null || status === undefined) return undefined;
  if (typeof status !== 'number' || !Number.isInteger(status)) {
    throw new TypeError(`status must be an integer, not ${typeof status}`);
  }
  if (status < 0 || status > U16_MAX) throw new RangeError(`status must be in 0..65535, not ${status}`);
  return status;
}

function toWallClock(ms) {
  if (ms === null || ms === undefined) return undefined;
  let big;
  if (typeof ms === 'bigint') big = ms;
  else if (typeof ms === 'number' && Number.isSafeInteger(ms)) big = BigInt(ms);
  else throw new TypeError('wallClockMs must be a safe integer or a bigint');
  if (big < 0n || big > U64_MAX) throw new RangeError(`wallClockMs must be in 0..2**64-1, not ${big}`);
  return big;
}

function toOptionalString(what, value) {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string, not ${typeof value}`);
  return value;
}

function header(name, value) {
  if (typeof name !== 'string') throw new TypeError(`a header name must be a string, not ${typeof name}`);
  if (typeof value !== 'string') {
    throw new TypeError(`the value of header ${name} must be a string, not ${typeof value}`);
  }
  return { name, value };
}

function pushHeader(out, name, value) {
  // Node's IncomingMessage#headers holds arrays for repeated headers (set-cookie).
  if (Array.isArray(value)) for (const v of value) out.push(header(name, v));
  else out.push(header(name, value));
}

function toHeaders(headers) {
  if (headers === null || headers === undefined) return [];
  if (typeof headers !== 'object') throw new TypeError('headers must be an object, a Map, a Headers or pairs');
  const out = [];
  if (typeof headers[Symbol.iterator] === 'function') {
    // Arrays of [name, value] or {name, value}, Map, fetch's Headers.
    for (const entry of headers) {
      if (Array.isArray(entry) && entry.length === 2) pushHeader(out, entry[0], entry[1]);
      else if (entry && typeof entry === 'object' && 'name' in entry) pushHeader(out, entry.name, entry.value);
      else throw new TypeError('each header must be a [name, value] pair or a { name, value } object');
    }
  } else {
    for (const [name, value] of Object.entries(headers)) {
      if (value !== undefined) pushHeader(out, name, value);
    }
  }
  return out;
}

const encoder = new TextEncoder();

function toBody(body) {
  if (body === null || body === undefined) return new Uint8Array(0);
  if (typeof body === 'string') {
    // Encode only what can be read: MAX_BODY_BYTES UTF-16 units make at least that many UTF-8
    // bytes; never split a surrogate pair, so the bytes sent are a prefix of the whole body's.
    let end = Math.min(body.length, MAX_BODY_BYTES);
    if (end < body.length && isHighSurrogate(body.charCodeAt(end - 1))) end += 1;
    return encoder.encode(body.slice(0, end)).subarray(0, MAX_BODY_BYTES);
  }
  if (body instanceof Uint8Array) return body.subarray(0, MAX_BODY_BYTES);
  if (ArrayBuffer.isView(body)) {
    return new Uint8Array(body.buffer, body.byteOffset, Math.min(body.byteLength, MAX_BODY_BYTES));
  }
  if (body instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && body instanceof SharedArrayBuffer)) {
    return new Uint8Array(body, 0, Math.min(body.byteLength, MAX_BODY_BYTES));
  }
  throw new TypeError('body must be a string, a Uint8Array (or other ArrayBuffer view) or an ArrayBuffer');
}

function isHighSurrogate(code) {
  return code >= 0xd800 && code <= 0xdbff;
}

function optionalU64(value, field) {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'bigint') throw new PluginError(`classification field ${field} is ${typeof value}, not bigint`);
  return value;
}

function optionalString(value, field) {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new PluginError(`classification field ${field} is ${typeof value}, not string`);
  return value;
}

function fromWitClassification(raw) {
  if (!KINDS.has(raw.kind)) throw new PluginError(`unknown error kind ${String(raw.kind)}`);
  return {
    kind: raw.kind,
    retryable: Boolean(raw.retryable),
    retryAfterMs: optionalU64(raw.retryAfterMs, 'retryAfterMs'),
    limitTokens: optionalU64(raw.limitTokens, 'limitTokens'),
    requestedTokens: optionalU64(raw.requestedTokens, 'requestedTokens'),
    provider: optionalString(raw.provider, 'provider'),
    code: optionalString(raw.code, 'code'),
    errorType: optionalString(raw.errorType, 'errorType'),
    message: String(raw.message),
  };
}

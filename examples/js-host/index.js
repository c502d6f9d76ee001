// llm-resilience for JavaScript: the component transpiled by jco (`npm run build` writes gen/),
// behind a typed API. The component imports nothing, so no WASI shim is loaded: it cannot touch
// files, network, clock or environment. This module only converts values; every decision is
// made in the component.

import { readFileSync } from 'node:fs';
import { ArgumentError, ArgumentRangeError, ArgumentTypeError, checkers, parseWit, toInteger, toString, upperCamel } from './wit.js';

export { ArgumentError, ArgumentRangeError, ArgumentTypeError };

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

const KINDS = new Set(ErrorKind);
const encoder = new TextEncoder();

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

/**
 * A breaker, limiter or retry handle belonged to an instance that trapped. A trap ends the
 * instance and every resource in it; the plugin continues in a fresh one. Restore the state
 * from a snapshot taken before.
 */
export class ResourceLostError extends PluginError {}

/** The handle was closed (`close()` or `using`) and cannot be used. */
export class ResourceClosedError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'ResourceClosedError';
  }
}

/** The component refused a config or a snapshot; `problems` lists every problem it found. */
export class ConfigError extends RangeError {
  constructor(what, problems) {
    super(`invalid ${what}: ${problems.join('; ')}`);
    this.name = 'ConfigError';
    /** @type {string[]} */
    this.problems = [...problems];
  }
}

/** A key was refused: `code` is `empty-key` or `key-too-long` (over 256 bytes of UTF-8). */
export class InvalidKeyError extends RangeError {
  constructor(code, key) {
    const shown = key.length <= 40 ? key : `${key.slice(0, 40)}…`;
    super(`${code}: ${JSON.stringify(shown)} (${encoder.encode(key).length} bytes)`);
    this.name = new.target.name;
    this.code = code;
    this.key = key;
  }
}

/**
 * A rate-limit check that cannot be answered: `code` is `zero-units`, `exceeds-burst`, or for a
 * bad key `empty-key` / `key-too-long` (then the error is a `LimiterKeyError`, which is also an
 * `InvalidKeyError`).
 */
export class LimitError extends RangeError {
  constructor(code, message) {
    super(message ?? code);
    this.name = 'LimitError';
    this.code = code;
  }

  static [Symbol.hasInstance](value) {
    return Function.prototype[Symbol.hasInstance].call(this, value) ||
      (this === LimitError && value instanceof LimiterKeyError);
  }
}

/** A limiter refused a key: an `InvalidKeyError` that is also `instanceof LimitError`. */
export class LimiterKeyError extends InvalidKeyError {}

let generated;
let generatedError;
let witChecks;
try {
  generated = await import('./gen/llm-resilience.js');
  // The WIT that `npm run build` extracted from the component (`jco wit`): the parameter types
  // every argument is checked against before the component is entered.
  witChecks = checkers(parseWit(readFileSync(new URL('./gen/llm-resilience.wit', import.meta.url), 'utf8')));
} catch (err) {
  generated = undefined;
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

/** Symbol-keyed methods the resource classes use; not exported, so not public API. */
const INVOKE = Symbol('llmr.invoke');
const ADOPT = Symbol('llmr.adopt');
const RELEASE = Symbol('llmr.release');

const disposeSymbol = Symbol.dispose ?? Symbol.for('dispose');

/** jco throws the `err` of a `result` as a ComponentError carrying it in `payload`. */
function isResultError(err) {
  return err instanceof Error && err.constructor?.name === 'ComponentError' && 'payload' in err;
}

/** The JS object of WIT interface `name` in a jco root. */
function ifaceOf(root, name) {
  return root[`llm:resilience/${name}@0.1.0`] ?? root[name];
}

/**
 * Puts the WIT argument checks in front of every export of a fresh jco root: free functions,
 * static functions and methods of every resource class. The classes are this instance's own
 * (jco defines them inside `instantiate`), so patching them touches no other instance.
 */
function guard(root) {
  const isResource = (value, owner, resource) => {
    const cls = ifaceOf(root, owner)?.[upperCamel(resource)];
    return typeof cls === 'function' && value instanceof cls;
  };
  const wrap = (fn, check) => function checked(...args) {
    check(args, isResource);
    return fn.apply(this, args);
  };
  const out = {};
  for (const [name, checks] of Object.entries(witChecks)) {
    const iface = ifaceOf(root, name);
    if (!iface) continue;
    const guarded = { ...iface };
    for (const [f, check] of Object.entries(checks.free)) {
      if (typeof iface[f] === 'function') guarded[f] = wrap(iface[f], check);
    }
    for (const [cls, statics] of Object.entries(checks.statics)) {
      const C = iface[cls];
      if (typeof C !== 'function') continue;
      for (const [f, check] of Object.entries(statics)) if (typeof C[f] === 'function') C[f] = wrap(C[f], check);
      for (const [f, check] of Object.entries(checks.methods[cls])) {
        if (typeof C.prototype[f] === 'function') C.prototype[f] = wrap(C.prototype[f], check);
      }
    }
    out[name] = guarded;
  }
  return out;
}

/**
 * The component instances of a plugin: one per kind of handle, so that a trap in one (a runaway
 * tokenization, a bug) costs only the handles living there; the breakers, limiters, retry
 * objects, calibrations and credit monitors in the others keep their state. `functions` runs
 * the calls that hold no handle (classify, version, encodingForModel, defaultBudget,
 * limitTokens, parseKey, parseCredits, suggestMaxTokens): a trap there costs nothing but the
 * call. Calls that take a handle run where it lives: `trim` in its counter's instance
 * (`tokens`), `nextBudget` in its policy's (`retry`). Each instance is made on first use.
 */
export const CAPABILITIES = Object.freeze(['functions', 'breaker', 'ratelimit', 'retry', 'tokens', 'calibration', 'credits']);

/**
 * One llm-resilience plugin: one component instance per capability (see `CAPABILITIES`), each
 * made on first use. Calls are synchronous; a trap replaces only the instance it happened in,
 * and makes the next call of that capability start from a fresh one. Handles created with
 * `{ plugin }` live in their capability's instance: a trap there loses them (using one then
 * throws `ResourceLostError`), and nothing else.
 */
export class Plugin {
  #instantiateCore;
  /** The live instance of each capability: `{ slot, root, ifaces, alive, live, tracked }`. */
  #instances = new Map();
  #created = 0;
  /** Raw resources of instances that trapped: kept so that they are never finalized into them. */
  #graveyard = [];
  #registry = new FinalizationRegistry(({ instance, ref }) => {
    if (instance.alive) {
      instance.live -= 1;
      instance.tracked.delete(ref);
    }
  });

  /**
   * @param {object} [options]
   * @param {Function} [options.instantiateCore] jco's hook `(module, imports) => instance`, for
   *   embedders that compile or wrap the core module themselves (called once per instance).
   */
  constructor(options = {}) {
    if (!generated) {
      throw new PluginLoadError(
        'the transpiled component is missing or incomplete: run `npm run build` (after `cargo run -p xtask -- component`)',
        { cause: generatedError },
      );
    }
    this.#instantiateCore = options.instantiateCore;
    // The functions instance is made now, so that a component that cannot load fails here.
    this.#instance('functions');
  }

  #instance(slot) {
    const current = this.#instances.get(slot);
    if (current) return current;
    let root;
    try {
      root = this.#instantiateCore
        ? generated.instantiate(getCoreModule, {}, this.#instantiateCore)
        : generated.instantiate(getCoreModule, {});
    } catch (err) {
      throw new PluginLoadError(`cannot instantiate the component: ${err.message}`, { cause: err });
    }
    const iface = ifaceOf(root, 'classify');
    if (!iface || typeof iface.classify !== 'function' || typeof iface.version !== 'function') {
      throw new PluginLoadError('the component does not export llm:resilience/classify@0.1.0');
    }
    this.#created += 1;
    const instance = { slot, id: this.#created, ifaces: guard(root), alive: true, live: 0, tracked: new Set() };
    this.#instances.set(slot, instance);
    return instance;
  }

  #poison(instance) {
    // Keep the trapped instance's live resources reachable: were they collected, jco would run
    // their destructors inside the broken instance (from a finalizer, where a throw is fatal).
    for (const ref of instance.tracked) {
      const raw = ref.deref();
      if (raw) this.#graveyard.push(raw);
    }
    instance.tracked = new Set();
    instance.alive = false;
    instance.live = 0;
    if (this.#instances.get(instance.slot) === instance) this.#instances.delete(instance.slot);
  }

  /** Resource handles created in the live instances and not yet released (closed or collected). */
  get liveResources() {
    let n = 0;
    for (const instance of this.#instances.values()) n += instance.live;
    return n;
  }

  /**
   * Calls `fn(iface)` on interface `name` of `epoch` (a handle's instance), or with `epoch`
   * null of the current instance of capability `slot` (default `name`; made if needed).
   * Returns `{ value, epoch }`, or `{ error, epoch }` with a `result`'s err payload. An
   * `ArgumentError` (from the WIT checks, before the component is entered) leaves the instance
   * as it was; anything else thrown from inside ends it.
   */
  [INVOKE](epoch, name, what, fn, slot = name) {
    if (epoch !== null && !epoch.alive) {
      throw new ResourceLostError(
        `${what}: the handle was lost when its component instance trapped (the ${epoch.slot} instance was replaced); restore it from a snapshot`,
      );
    }
    const instance = epoch ?? this.#instance(slot);
    const iface = instance.ifaces[name];
    if (!iface) throw new PluginLoadError(`the component does not export llm:resilience/${name}@0.1.0`);
    try {
      return { value: fn(iface), epoch: instance };
    } catch (err) {
      if (isResultError(err)) return { error: err.payload, epoch: instance };
      if (err instanceof ArgumentError) throw err;
      // A trap leaves the instance unusable; drop it so the next call gets a fresh one.
      this.#poison(instance);
      if (err instanceof WebAssembly.RuntimeError || err instanceof RangeError) {
        throw new PluginTrap(`${what}: the component trapped (${err.message}); the ${instance.slot} instance was replaced`, { cause: err });
      }
      throw new PluginError(`${what}: the component call failed (${err.message})`, { cause: err });
    }
  }

  /** Counts a new raw resource of instance `epoch`; returns its tracking token. */
  [ADOPT](wrapper, raw, epoch) {
    const ref = new WeakRef(raw);
    if (epoch.alive) {
      epoch.live += 1;
      epoch.tracked.add(ref);
      this.#registry.register(wrapper, { instance: epoch, ref }, wrapper);
    }
    return ref;
  }

  /** Drops a raw resource now (close); nothing to do if its instance trapped. */
  [RELEASE](wrapper, raw, epoch, ref) {
    this.#registry.unregister(wrapper);
    if (!epoch.alive) return;
    epoch.tracked.delete(ref);
    epoch.live -= 1;
    try {
      raw[disposeSymbol]();
    } catch (err) {
      this.#poison(epoch);
      throw new PluginTrap(`close: the component trapped (${err.message})`, { cause: err });
    }
  }

  #call(name, arg) {
    return this[INVOKE](null, 'classify', name, (iface) => iface[name](arg), 'functions').value;
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
    throw argumentError('input', 'classify expects an object { status, headers, body, transport, wallClockMs }');
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

/** An ArgumentError (a TypeError, or with `Kind` a RangeError) with a message of its own. */
function argumentError(argument, message, Kind = ArgumentTypeError) {
  return new Kind({ argument, expected: message, message });
}

function toStatus(status) {
  if (status === null || status === undefined) return undefined;
  return toInteger('status', 'u16', status);
}

function toWallClock(ms) {
  if (ms === null || ms === undefined) return undefined;
  return toInteger('wallClockMs', 'u64', ms);
}

function toOptionalString(what, value) {
  if (value === null || value === undefined) return undefined;
  return toString(what, value);
}

function header(name, value) {
  toString('header name', name);
  return { name, value: toString(`the value of header ${isWellFormedName(name)}`, value) };
}

function isWellFormedName(name) {
  return name.length <= 64 ? name : `${name.slice(0, 64)}…`;
}

function pushHeader(out, name, value) {
  // Node's IncomingMessage#headers holds arrays for repeated headers (set-cookie).
  if (Array.isArray(value)) for (const v of value) out.push(header(name, v));
  else out.push(header(name, value));
}

function toHeaders(headers) {
  if (headers === null || headers === undefined) return [];
  if (typeof headers !== 'object') throw argumentError('headers', 'headers must be an object, a Map, a Headers or pairs');
  const out = [];
  if (typeof headers[Symbol.iterator] === 'function') {
    // Arrays of [name, value] or {name, value}, Map, fetch's Headers.
    for (const entry of headers) {
      if (Array.isArray(entry) && entry.length === 2) pushHeader(out, entry[0], entry[1]);
      else if (entry && typeof entry === 'object' && 'name' in entry) pushHeader(out, entry.name, entry.value);
      else throw argumentError('headers', 'each header must be a [name, value] pair or a { name, value } object');
    }
  } else {
    for (const [name, value] of Object.entries(headers)) {
      if (value !== undefined) pushHeader(out, name, value);
    }
  }
  return out;
}


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
  throw argumentError('body', 'body must be a string, a Uint8Array (or other ArrayBuffer view) or an ArrayBuffer');
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

// ---- breakers, rate limits, retries -------------------------------------------------------

/** A breaker's states, in the WIT's order. */
export const State = Object.freeze(['closed', 'open', 'half-open', 'forced-open', 'disabled']);
/** The answers of a rate-limit check. */
export const Verdict = Object.freeze(['allowed', 'denied']);
/** Why a call gave up, in the WIT's order. */
export const GiveUpCode = Object.freeze([
  'permanent',
  'attempts-exhausted',
  'budget-exhausted',
  'wait-too-long',
  'deadline',
  'cannot-shrink',
]);

const STATES = new Set(State);
const KEY_CODES = new Set(['empty-key', 'key-too-long']);
const LIMIT_MESSAGES = {
  'zero-units': 'zero units were asked for',
  'exceeds-burst': 'more units than the burst: no wait would ever allow them',
};
/** The exact WIT permit behind a permit object, so `record` gets back exactly what was issued. */
const EXACT_PERMIT = Symbol('llmr.exactPermit');

/**
 * The base of every handle on a WIT resource. Release it with `close()` (or `using`, where
 * supported); a handle that is only dropped is released when the garbage collector finalizes it.
 */
class Resource {
  #plugin;
  #raw;
  #epoch;
  #ref;

  constructor(plugin, raw, epoch) {
    this.#plugin = plugin;
    this.#raw = raw;
    this.#epoch = epoch;
    this.#ref = plugin[ADOPT](this, raw, epoch);
  }

  /** The plugin whose component instance holds this resource. */
  get plugin() {
    return this.#plugin;
  }

  /** Whether `close()` was called. */
  get closed() {
    return this.#raw === null;
  }

  /** Releases the resource in the component now. Idempotent. */
  close() {
    const raw = this.#raw;
    if (raw === null) return;
    this.#raw = null;
    this.#plugin[RELEASE](this, raw, this.#epoch, this.#ref);
  }

  [disposeSymbol]() {
    this.close();
  }

  /** The raw jco resource, checked open. */
  _raw() {
    if (this.#raw === null) throw new ResourceClosedError(`this ${this.constructor.name} is closed`);
    return this.#raw;
  }

  /** The epoch of the instance the resource lives in. */
  _epoch() {
    return this.#epoch;
  }

  /** Calls `fn(raw)` in this resource's instance: `{ value }` or `{ error }`. */
  _invoke(name, what, fn) {
    const raw = this._raw();
    return this.#plugin[INVOKE](this.#epoch, name, `${this.constructor.name}.${what}`, () => fn(raw));
  }

  /** Another resource's raw handle, checked to live in the same instance. */
  _peer(other, what) {
    if (other.plugin !== this.#plugin) throw argumentError(`${what}`, `${what} belongs to another Plugin`);
    const raw = other._raw();
    if (other._epoch() !== this.#epoch) {
      throw new ResourceLostError(`${what} and this ${this.constructor.name} come from different component instances (one was lost in a trap)`);
    }
    return raw;
  }
}

function pluginOf(options) {
  if (options === null || typeof options !== 'object') throw argumentError('options', 'options must be an object { plugin }');
  const { plugin } = options;
  if (plugin === undefined || plugin === null) return getDefaultPlugin();
  if (!(plugin instanceof Plugin)) throw argumentError('options.plugin', 'options.plugin must be a Plugin');
  return plugin;
}

/** Creates a raw resource: `fn(iface)` may throw a `result` err (the problems). */
function create(plugin, name, what, fn, slot = name) {
  const { value, error, epoch } = plugin[INVOKE](null, name, what, fn, slot);
  if (error !== undefined) {
    if (Array.isArray(error)) throw new ConfigError(what, error.map(String));
    throw new PluginError(`${what}: unexpected error ${String(error)}`);
  }
  return [plugin, value, epoch];
}

function configJson(what, config) {
  if (config === undefined || config === null) return '{}';
  if (typeof config !== 'object' || Array.isArray(config) || config instanceof Map) {
    throw argumentError(`${what}`, `${what} must be a plain object (or undefined), not ${Array.isArray(config) ? 'an array' : typeof config}`);
  }
  let json;
  try {
    json = JSON.stringify(config, (_, v) => {
      if (typeof v === 'number' && !Number.isFinite(v)) throw argumentError('config', `${v} is not a JSON number`);
      return typeof v === 'bigint' ? JSON.rawJSON?.(v.toString()) ?? Number(v) : v;
    });
  } catch (err) {
    throw argumentError(`${what}`, `${what} is not JSON-serialisable: ${err.message}`);
  }
  return json;
}

function snapshotJson(snapshot) {
  if (typeof snapshot === 'string') return snapshot;
  if (snapshot !== null && typeof snapshot === 'object' && !Array.isArray(snapshot)) return JSON.stringify(snapshot);
  throw argumentError('snapshot', 'a snapshot is the string snapshot() returned, or that string parsed');
}

/** A u64 argument as a bigint: a safe integer or a bigint in 0..2**64-1, else an ArgumentError. */
function toU64(what, value) {
  return toInteger(what, 'u64', value);
}

function toOptionalU64(what, value) {
  return value === null || value === undefined ? undefined : toU64(what, value);
}

/** A u32 argument as a number: an integer (number or bigint) in 0..2**32-1, else an ArgumentError. */
function toU32(what, value) {
  return toInteger(what, 'u32', value);
}

/**
 * A key as the component gets it: a string with a UTF-8 encoding. A lone surrogate has none;
 * encoding it lossily (as U+FFFD) would make different keys share one breaker or bucket, so it
 * is refused (`ArgumentError`, code `invalid-utf8`).
 */
function toKey(key) {
  return toString('key', key);
}

function toKind(kind) {
  if (!KINDS.has(kind)) throw argumentError('kind', `unknown error kind ${String(kind)}`, ArgumentRangeError);
  return kind;
}

function state(raw) {
  if (!STATES.has(raw)) throw new PluginError(`unknown breaker state ${String(raw)}`);
  return raw;
}

function transition(raw) {
  return raw === undefined || raw === null ? null : { from: state(raw.from), to: state(raw.to) };
}

function admission(raw) {
  if (raw.tag === 'admitted') {
    const p = raw.val;
    const permit = { generation: toNumber(p.generation), id: toNumber(p.id), admittedMs: toNumber(p.admittedMs), probe: Boolean(p.probe) };
    Object.defineProperty(permit, EXACT_PERMIT, { value: p });
    return { admitted: true, permit: Object.freeze(permit) };
  }
  if (raw.tag === 'rejected') {
    return { admitted: false, state: state(raw.val.state), retryInMs: toNumber(raw.val.retryInMs ?? null) };
  }
  throw new PluginError(`unknown admission ${String(raw.tag)}`);
}

function recorded(raw) {
  if (raw.tag === 'counted') return { recorded: 'counted', transition: transition(raw.val) };
  if (raw.tag === 'stale') return { recorded: 'stale', transition: null };
  throw new PluginError(`unknown recorded ${String(raw.tag)}`);
}

function toPermit(permit) {
  if (permit === null || typeof permit !== 'object') throw argumentError('permit', 'permit must be the permit acquire() returned');
  if (permit[EXACT_PERMIT]) return permit[EXACT_PERMIT];
  return {
    generation: toU64('permit.generation', permit.generation),
    id: toU64('permit.id', permit.id),
    admittedMs: toU64('permit.admittedMs', permit.admittedMs),
    probe: Boolean(permit.probe),
  };
}

/** An outcome: 'success' | 'ignored' | { outcome, kind, retryAfterMs } | a classification. */
function toOutcome(outcome) {
  if (outcome === 'success' || outcome?.outcome === 'success') return { tag: 'success' };
  if (outcome === 'ignored' || outcome?.outcome === 'ignored') return { tag: 'ignored' };
  if (outcome && typeof outcome === 'object' && (outcome.outcome === 'failure' || (outcome.outcome === undefined && 'kind' in outcome))) {
    return { tag: 'failure', val: { kind: toKind(outcome.kind), retryAfterMs: toOptionalU64('retryAfterMs', outcome.retryAfterMs) } };
  }
  throw argumentError('outcome', "outcome must be 'success', 'ignored', { outcome: 'failure', kind, retryAfterMs } or a classification");
}

function keyResult(key, result) {
  if (result.error !== undefined) {
    if (KEY_CODES.has(result.error)) throw new InvalidKeyError(result.error, key);
    throw new PluginError(`unexpected key error ${String(result.error)}`);
  }
  return result.value;
}

function limitResult(key, result) {
  if (result.error !== undefined) {
    const code = String(result.error);
    if (KEY_CODES.has(code)) throw new LimiterKeyError(code, key);
    throw new LimitError(code, `${code}: ${LIMIT_MESSAGES[code] ?? 'refused'}`);
  }
  return result.value;
}

function snapshotText(raw) {
  if (typeof raw !== 'string') throw new PluginError(`snapshot() returned ${typeof raw}, not a string`);
  return raw;
}

/** One circuit breaker. `new Breaker(config?, { plugin? })`; throws ConfigError. */
export class Breaker extends Resource {
  constructor(config = {}, options = {}) {
    if (config === ADOPT) {
      super(...options);
      return;
    }
    const json = configJson('config', config);
    super(...create(pluginOf(options), 'breaker', 'breaker config', (i) => i.Breaker.create(json)));
  }

  /** A breaker from a snapshot (of this or another plugin, before a restart). */
  static restore(snapshot, options = {}) {
    const json = snapshotJson(snapshot);
    return new Breaker(ADOPT, create(pluginOf(options), 'breaker', 'breaker snapshot', (i) => i.Breaker.restore(json)));
  }

  /** Asks to make a call at `nowMs`. */
  acquire(nowMs) {
    const now = toU64('nowMs', nowMs);
    return admission(this._invoke('breaker', 'acquire', (b) => b.acquire(now)).value);
  }

  /** Records how the call admitted by `permit` ended. */
  record(permit, outcome, nowMs) {
    const args = [toPermit(permit), toOutcome(outcome), toU64('nowMs', nowMs)];
    return recorded(this._invoke('breaker', 'record', (b) => b.record(...args)).value);
  }

  /** The state at `nowMs`. */
  state(nowMs) {
    const now = toU64('nowMs', nowMs);
    return state(this._invoke('breaker', 'state', (b) => b.state(now)).value);
  }

  /** The counts at `nowMs`. */
  counts(nowMs) {
    const now = toU64('nowMs', nowMs);
    const c = this._invoke('breaker', 'counts', (b) => b.counts(now)).value;
    return {
      state: state(c.state),
      windowCalls: toNumber(c.windowCalls),
      windowFailures: toNumber(c.windowFailures),
      windowSlow: toNumber(c.windowSlow),
      consecutiveFailures: c.consecutiveFailures,
      probesInFlight: c.probesInFlight,
      probeSuccesses: c.probeSuccesses,
      timesOpened: toNumber(c.timesOpened),
      rejected: toNumber(c.rejected),
      generation: toNumber(c.generation),
    };
  }

  /** Rejects every call until `reset`. */
  forceOpen(nowMs) {
    const now = toU64('nowMs', nowMs);
    return transition(this._invoke('breaker', 'forceOpen', (b) => b.forceOpen(now)).value);
  }

  /** Admits every call and counts nothing until `reset`. */
  disable(nowMs) {
    const now = toU64('nowMs', nowMs);
    return transition(this._invoke('breaker', 'disable', (b) => b.disable(now)).value);
  }

  /** Back to closed with empty counts. */
  reset(nowMs) {
    const now = toU64('nowMs', nowMs);
    return transition(this._invoke('breaker', 'reset', (b) => b.reset(now)).value);
  }

  /** The whole state as JSON text, for `Breaker.restore` after a restart. */
  snapshot() {
    return snapshotText(this._invoke('breaker', 'snapshot', (b) => b.snapshot()).value);
  }
}

/** One breaker per key (model or provider), at most `maxKeys`. */
export class BreakerSet extends Resource {
  constructor(config = {}, maxKeys = 1024, options = {}) {
    if (config === ADOPT) {
      super(...maxKeys);
      return;
    }
    const json = configJson('config', config);
    const max = toU32('maxKeys', maxKeys);
    super(...create(pluginOf(options), 'breaker', 'breaker-set config', (i) => i.BreakerSet.create(json, max)));
  }

  /** A set from a snapshot. */
  static restore(snapshot, options = {}) {
    const json = snapshotJson(snapshot);
    return new BreakerSet(ADOPT, create(pluginOf(options), 'breaker', 'breaker-set snapshot', (i) => i.BreakerSet.restore(json)));
  }

  /** Asks to make a call for `key`; throws InvalidKeyError. */
  acquire(key, nowMs) {
    const args = [toKey(key), toU64('nowMs', nowMs)];
    return admission(keyResult(key, this._invoke('breaker', 'acquire', (s) => s.acquire(...args))));
  }

  /** Records the outcome of a call for `key` (an evicted key's result is stale). */
  record(key, permit, outcome, nowMs) {
    const args = [toKey(key), toPermit(permit), toOutcome(outcome), toU64('nowMs', nowMs)];
    return recorded(keyResult(key, this._invoke('breaker', 'record', (s) => s.record(...args))));
  }

  /** The state of `key`'s breaker; null if the key is not held. */
  state(key, nowMs) {
    const args = [toKey(key), toU64('nowMs', nowMs)];
    const raw = this._invoke('breaker', 'state', (s) => s.state(...args)).value;
    return raw === undefined || raw === null ? null : state(raw);
  }

  /** The keys held, sorted. */
  keys() {
    return [...this._invoke('breaker', 'keys', (s) => s.keys()).value];
  }

  /** The whole state as JSON text. */
  snapshot() {
    return snapshotText(this._invoke('breaker', 'snapshot', (s) => s.snapshot()).value);
  }
}

/** A keyed GCRA rate limiter. `new RateLimiter(config?, { plugin? })`; throws ConfigError. */
export class RateLimiter extends Resource {
  constructor(config = {}, options = {}) {
    if (config === ADOPT) {
      super(...options);
      return;
    }
    const json = configJson('config', config);
    super(...create(pluginOf(options), 'ratelimit', 'rate-limit config', (i) => i.Limiter.create(json)));
  }

  /** A limiter from a snapshot. */
  static restore(snapshot, options = {}) {
    const json = snapshotJson(snapshot);
    return new RateLimiter(ADOPT, create(pluginOf(options), 'ratelimit', 'rate-limit snapshot', (i) => i.Limiter.restore(json)));
  }

  /** Asks to spend `units` for `key` at `nowMs`: `{ verdict: 'allowed', allowed: true, remaining }` or `{ verdict: 'denied', allowed: false, retryInMs }`. */
  check(key, units, nowMs) {
    const args = [toKey(key), toU32('units', units), toU64('nowMs', nowMs)];
    const v = limitResult(key, this._invoke('ratelimit', 'check', (l) => l.check(...args)));
    if (v.tag === 'allowed') return { verdict: 'allowed', allowed: true, remaining: v.val.remaining };
    if (v.tag === 'denied') return { verdict: 'denied', allowed: false, retryInMs: toNumber(v.val.retryInMs) };
    throw new PluginError(`unknown verdict ${String(v.tag)}`);
  }

  /** Settles a reservation: `reserved` units were allowed, the call cost `actual`. */
  settle(key, reserved, actual, nowMs) {
    const args = [toKey(key), toU32('reserved', reserved), toU32('actual', actual), toU64('nowMs', nowMs)];
    limitResult(key, this._invoke('ratelimit', 'settle', (l) => l.settle(...args)));
  }

  /** Denies `key` until `untilMs` (a provider's 429 hint); never shortens a wait. */
  blockUntil(key, untilMs, nowMs) {
    const args = [toKey(key), toU64('untilMs', untilMs), toU64('nowMs', nowMs)];
    limitResult(key, this._invoke('ratelimit', 'blockUntil', (l) => l.blockUntil(...args)));
  }

  /** Units `key` could spend now without waiting. */
  remaining(key, nowMs) {
    const args = [toKey(key), toU64('nowMs', nowMs)];
    return limitResult(key, this._invoke('ratelimit', 'remaining', (l) => l.remaining(...args)));
  }

  /** Keys held. */
  len() {
    return this._invoke('ratelimit', 'len', (l) => l.len()).value;
  }

  /** Keys held (as `len()`). */
  get size() {
    return this.len();
  }

  /** The whole state as JSON text. */
  snapshot() {
    return snapshotText(this._invoke('ratelimit', 'snapshot', (l) => l.snapshot()).value);
  }
}

/** A service-wide retry budget. `new RetryBudget(config?, { plugin? })`; throws ConfigError. */
export class RetryBudget extends Resource {
  constructor(config = {}, options = {}) {
    const json = configJson('config', config);
    super(...create(pluginOf(options), 'retry', 'retry budget config', (i) => i.Budget.create(json)));
  }

  /** Records one original request (`startCall` does this too). */
  deposit(nowMs) {
    const now = toU64('nowMs', nowMs);
    this._invoke('retry', 'deposit', (b) => b.deposit(now));
  }

  /** Retries the budget would allow now. */
  available(nowMs) {
    const now = toU64('nowMs', nowMs);
    return toNumber(this._invoke('retry', 'available', (b) => b.available(now)).value);
  }
}

/** A validated retry policy. `new RetryPolicy(config?, { plugin? })`; throws ConfigError. */
export class RetryPolicy extends Resource {
  constructor(config = {}, options = {}) {
    const json = configJson('config', config);
    super(...create(pluginOf(options), 'retry', 'retry config', (i) => i.Policy.create(json)));
  }

  /** Starts a call at `nowMs`; `seed` makes its jitter reproducible; deposits into `budget`. */
  startCall(nowMs, seed, budget) {
    if (!(budget instanceof RetryBudget)) throw argumentError('budget', 'budget must be a RetryBudget');
    const args = [toU64('nowMs', nowMs), toU64('seed', seed), this._peer(budget, 'the budget')];
    const { value, epoch } = this._invoke('retry', 'startCall', (p) => p.startCall(...args));
    return new RetryCall(ADOPT, [this.plugin, value, epoch], this, budget);
  }

  /** Decides what to do about a failed attempt of `call` (budget: the call's by default). */
  decide(call, failure, nowMs, requestTokens = null, budget = null) {
    if (!(call instanceof RetryCall)) throw argumentError('call', 'call must be a RetryCall');
    const b = budget ?? call.budget;
    if (!(b instanceof RetryBudget)) throw argumentError('budget', 'budget must be a RetryBudget');
    const args = [
      this._peer(call, 'the call'),
      toWitClassification(failure),
      toU64('nowMs', nowMs),
      toOptionalU64('requestTokens', requestTokens),
      this._peer(b, 'the budget'),
    ];
    return decision(this._invoke('retry', 'decide', (p) => p.decide(...args)).value);
  }
}

/** The state of one call across its attempts; from `RetryPolicy#startCall`. */
export class RetryCall extends Resource {
  #policy;
  #budget;

  constructor(token, parts, policy, budget) {
    if (token !== ADOPT) throw argumentError('token', 'a RetryCall comes from RetryPolicy#startCall(nowMs, seed, budget)');
    super(...parts);
    this.#policy = policy;
    this.#budget = budget;
  }

  /** The policy the call started under. */
  get policy() {
    return this.#policy;
  }

  /** The budget the call deposited into. */
  get budget() {
    return this.#budget;
  }

  /** Retries decided so far. */
  get retries() {
    return this._invoke('retry', 'retries', (c) => c.retries()).value;
  }

  /** `policy.decide(this, …)` with this call's budget. */
  decide(failure, nowMs, requestTokens = null) {
    return this.#policy.decide(this, failure, nowMs, requestTokens);
  }
}

function toWitClassification(c) {
  if (c === null || typeof c !== 'object') throw argumentError('failure', 'failure must be a classification');
  const optionalString = toOptionalString;
  return {
    kind: toKind(c.kind),
    retryable: Boolean(c.retryable),
    retryAfterMs: toOptionalU64('retryAfterMs', c.retryAfterMs),
    limitTokens: toOptionalU64('limitTokens', c.limitTokens),
    requestedTokens: toOptionalU64('requestedTokens', c.requestedTokens),
    provider: optionalString('provider', c.provider),
    code: optionalString('code', c.code),
    errorType: optionalString('errorType', c.errorType),
    message: c.message === undefined || c.message === null ? '' : String(c.message),
  };
}

function giveUpReason(raw) {
  switch (raw.tag) {
    case 'permanent':
      return { code: 'permanent', kind: toKind(raw.val) };
    case 'attempts-exhausted':
      return { code: 'attempts-exhausted', kind: toKind(raw.val.kind), retries: raw.val.retries };
    case 'budget-exhausted':
      return { code: 'budget-exhausted' };
    case 'wait-too-long':
      return { code: 'wait-too-long', waitMs: toNumber(raw.val.waitMs), ceilingMs: toNumber(raw.val.ceilingMs) };
    case 'deadline':
      return { code: 'deadline', retryAtMs: toNumber(raw.val.retryAtMs), deadlineAtMs: toNumber(raw.val.deadlineAtMs) };
    case 'cannot-shrink':
      return { code: 'cannot-shrink' };
    default:
      throw new PluginError(`unknown give-up reason ${String(raw.tag)}`);
  }
}

function decision(raw) {
  switch (raw.tag) {
    case 'retry':
      return { decision: 'retry', afterMs: toNumber(raw.val.afterMs), attempt: raw.val.attempt };
    case 'shrink-context':
      return {
        decision: 'shrink-context',
        targetTokens: toNumber(raw.val.targetTokens),
        afterMs: toNumber(raw.val.afterMs),
        attempt: raw.val.attempt,
      };
    case 'give-up':
      return { decision: 'give-up', reason: giveUpReason(raw.val) };
    default:
      throw new PluginError(`unknown decision ${String(raw.tag)}`);
  }
}

// ---- tokens, context trimming, credits ----------------------------------------------------

/** Who wrote a message, in the WIT's order. */
export const Role = Object.freeze(['system', 'user', 'assistant', 'tool']);
/** OpenAI's byte-pair encodings the exact counter knows. */
export const Encoding = Object.freeze(['o200k-base', 'cl100k-base']);
/** Why a document or history message was not sent, in the WIT's order. */
export const DropReason = Object.freeze([
  'budget',
  'max-messages',
  'orphan-tool-result',
  'unanswered-tool-call',
  'before-first-user-turn',
]);
/** Which credit alert, in the order events are emitted. */
export const AlertKind = Object.freeze(['balance-critical', 'balance-warning', 'runway', 'daily-spend']);
/** Whether an alert started or ended. */
export const AlertState = Object.freeze(['fired', 'resolved']);
/** When a key's spending limit resets. */
export const LimitReset = Object.freeze(['daily', 'weekly', 'monthly', 'other']);

const ROLES = new Set(Role);
const ENCODINGS = new Set(Encoding);
const DROP_REASONS = new Set(DropReason);
const ALERT_KINDS = new Set(AlertKind);
const ALERT_STATES = new Set(AlertState);
const LIMIT_RESETS = new Set(LimitReset);

/** A count that cannot be made: the text is longer than the 4 MiB tokenized. `code` is `too-large`, `bytes` its length. */
export class TokenError extends RangeError {
  constructor(bytes) {
    super(`too-large: ${bytes} bytes of text, over the 4 MiB that are tokenized`);
    this.name = 'TokenError';
    this.code = 'too-large';
    this.bytes = bytes;
  }
}

/**
 * Trimming (or computing the next budget) failed; `code` is the WIT's case name and the
 * subclass says why. A rejected budget is a `ConfigError` instead.
 */
export class ContextError extends RangeError {
  constructor(code, message) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }

  /** The error as the core's JSON (`{ error: code, …fields }`, snake_case). */
  toJSON() {
    return { error: this.code };
  }
}

/** The system prompt, the latest message and the tools alone exceed the budget. */
export class DoesNotFitError extends ContextError {
  constructor(requiredTokens, limitTokens) {
    super('does-not-fit', `the system prompt and the latest message alone take ${requiredTokens} tokens, over the budget of ${limitTokens}`);
    this.requiredTokens = requiredTokens;
    this.limitTokens = limitTokens;
  }

  toJSON() {
    return { error: this.code, required_tokens: this.requiredTokens, limit_tokens: this.limitTokens };
  }
}

/** The latest message does not have the user role (`role`: the one it has). */
export class LatestNotUserError extends ContextError {
  constructor(role) {
    super('latest-not-user', `the latest message must have the user role (got ${role})`);
    this.role = role;
  }

  toJSON() {
    return { error: this.code, role: this.role };
  }
}

/** The counter refused a text (`detail`: its error). */
export class ContextTokensError extends ContextError {
  constructor(detail) {
    super('tokens', `token counting failed: ${detail}`);
    this.detail = detail;
  }

  toJSON() {
    return { error: this.code, message: this.detail };
  }
}

/** `nextBudget` was given a failure that is not a context overflow (`kind`: its kind). */
export class NotOverflowError extends ContextError {
  constructor(kind) {
    super('not-overflow', `not a context overflow (got ${kind})`);
    this.kind = kind;
  }

  toJSON() {
    return { error: this.code, kind: this.kind };
  }
}

/** `nextBudget`: no size to shrink from, or the target leaves no room. */
export class CannotShrinkError extends ContextError {
  constructor() {
    super('cannot-shrink', 'cannot compute a smaller budget from this failure');
  }
}

/**
 * A `/key` or `/credits` body that cannot be used. `code`: `too-large`, `invalid-json`, `api`,
 * `missing-field`, `invalid-field`, `out-of-range`; `details`: the case's fields as the core's
 * JSON names them. Messages name fields and JSON types, never values; an API message is redacted.
 */
export class CreditsError extends RangeError {
  constructor(code, details, message) {
    super(message);
    this.name = 'CreditsError';
    this.code = code;
    this.details = { ...details };
  }

  /** The error as the core's JSON (`{ error: code, …details }`). */
  toJSON() {
    return { error: this.code, ...this.details };
  }
}

/** Calls free function(s) of interface `name` in the plugin's current instance. */
function callFree(plugin, name, what, fn) {
  return plugin[INVOKE](null, name, what, fn, 'functions');
}

function toText(what, value) {
  return toString(what, value);
}

function toOptionalText(what, value) {
  return value === null || value === undefined ? undefined : toText(what, value);
}

function toRole(value) {
  // The value is not echoed: a misplaced argument can be anything, a key included.
  if (!ROLES.has(value)) throw argumentError('role', 'unknown role: a role is system, user, assistant or tool', ArgumentRangeError);
  return value;
}

function toEncoding(value) {
  if (!ENCODINGS.has(value)) throw argumentError('encoding', 'unknown encoding: o200k-base or cl100k-base', ArgumentRangeError);
  return value;
}

function fromEncoding(raw) {
  if (!ENCODINGS.has(raw)) throw new PluginError(`unknown encoding ${String(raw)}`);
  return raw;
}

function toToolCall(call) {
  if (call === null || typeof call !== 'object') throw argumentError('toolCall', 'a tool call must be an object { id, name, arguments }');
  const src = call.function && typeof call.function === 'object' ? call.function : call;
  return {
    id: toText('tool call id', call.id),
    name: toText('tool call name', src.name),
    arguments: toText('tool call arguments', src.arguments ?? ''),
  };
}

/**
 * A message as the WIT record: `{ role, content, name, toolCalls, toolCallId }`; snake_case
 * (`tool_calls`, `tool_call_id`) and the chat API's `{ id, function: { name, arguments } }`
 * tool calls work too.
 */
function toMessage(message) {
  if (typeof message === 'string') return { role: 'user', content: message, name: undefined, toolCalls: [], toolCallId: undefined };
  if (message === null || typeof message !== 'object') throw argumentError('message', 'a message must be an object { role, content, … }');
  const calls = message.toolCalls ?? message.tool_calls ?? [];
  if (!Array.isArray(calls)) throw argumentError('toolCalls', 'toolCalls must be an array');
  return {
    role: toRole(message.role),
    content: message.content === null || message.content === undefined ? '' : toText('content', message.content),
    name: toOptionalText('name', message.name),
    toolCalls: calls.map(toToolCall),
    toolCallId: toOptionalText('toolCallId', message.toolCallId ?? message.tool_call_id),
  };
}

function toMessages(messages) {
  if (!Array.isArray(messages)) throw argumentError('messages', 'messages must be an array');
  return messages.map(toMessage);
}

function toTools(tools) {
  if (tools === null || tools === undefined) return [];
  if (!Array.isArray(tools)) throw argumentError('tools', 'tools must be an array');
  return tools.map((t) => {
    if (t === null || typeof t !== 'object') throw argumentError('tool', 'a tool must be an object { name, description, parameters }');
    const parameters = t.parameters && typeof t.parameters === 'object' ? JSON.stringify(t.parameters) : t.parameters ?? '';
    return { name: toText('tool name', t.name), description: toText('tool description', t.description ?? ''), parameters: toText('tool parameters', parameters) };
  });
}

function fromMessage(raw) {
  if (!ROLES.has(raw.role)) throw new PluginError(`unknown role ${String(raw.role)}`);
  return {
    role: raw.role,
    content: String(raw.content),
    name: raw.name ?? null,
    toolCalls: raw.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments })),
    toolCallId: raw.toolCallId ?? null,
  };
}

/** The ok value of a `result<u64, token-error>` call. */
function countResult(result) {
  if (result.error !== undefined) {
    const e = result.error;
    if (e?.tag === 'too-large') throw new TokenError(toNumber(e.val));
    throw new PluginError(`unexpected token error ${String(e?.tag ?? e)}`);
  }
  return toNumber(result.value);
}

/** The encoding an OpenAI model id uses (with or without an `openai/` prefix). */
export function encodingForModel(model, options = {}) {
  const m = toText('model', model);
  return fromEncoding(callFree(pluginOf(options), 'tokens', 'encodingForModel', (i) => i.encodingForModel(m)).value);
}

/**
 * A token counter: `TokenCounter.exact(encoding?, { plugin? })` (OpenAI's count; decodes the
 * tables, about 0.2 s: create one and keep it) or `TokenCounter.upperBound({ plugin? })` (never
 * fewer tokens than either encoding; cheap).
 */
export class TokenCounter extends Resource {
  constructor(token, parts) {
    if (token !== ADOPT) throw argumentError('token', 'use TokenCounter.exact(encoding) or TokenCounter.upperBound()');
    super(...parts);
  }

  /** An exact counter for `encoding` (default `o200k-base`) with OpenAI's chat overhead. */
  static exact(encoding = 'o200k-base', options = {}) {
    const enc = toEncoding(encoding);
    const plugin = pluginOf(options);
    const { value, error, epoch } = plugin[INVOKE](null, 'tokens', 'TokenCounter.exact', (i) => i.Counter.exact(enc));
    if (error !== undefined) throw new ConfigError('exact token counter', [String(error)]);
    return new TokenCounter(ADOPT, [plugin, value, epoch]);
  }

  /** A counter that never counts fewer tokens than o200k-base or cl100k-base would. */
  static upperBound(options = {}) {
    const plugin = pluginOf(options);
    const { value, epoch } = plugin[INVOKE](null, 'tokens', 'TokenCounter.upperBound', (i) => i.Counter.upperBound());
    return new TokenCounter(ADOPT, [plugin, value, epoch]);
  }

  /** The encoding of an exact counter; null for the upper bound. */
  get encoding() {
    const raw = this._invoke('tokens', 'encoding', (c) => c.encoding()).value;
    return raw === undefined || raw === null ? null : fromEncoding(raw);
  }

  /** Tokens in `text`; throws TokenError over 4 MiB. */
  countText(text) {
    const t = toText('text', text);
    return countResult(this._invoke('tokens', 'countText', (c) => c.countText(t)));
  }

  /** Tokens of a whole request (messages with their overhead, tool schemas, reply priming). */
  countMessages(messages, tools = []) {
    const args = [toMessages(messages), toTools(tools)];
    return countResult(this._invoke('tokens', 'countMessages', (c) => c.countMessages(...args)));
  }
}

/** Per-model ratios (ppm) of a provider's token count to ours. `new Calibration(config?, { plugin? })`; throws ConfigError. */
export class Calibration extends Resource {
  constructor(config = {}, options = {}) {
    if (config === ADOPT) {
      super(...options);
      return;
    }
    const json = configJson('config', config);
    super(...create(pluginOf(options), 'tokens', 'calibration config', (i) => i.Calibration.create(json), 'calibration'));
  }

  /** A calibration from a snapshot. */
  static restore(snapshot, options = {}) {
    const json = snapshotJson(snapshot);
    return new Calibration(ADOPT, create(pluginOf(options), 'tokens', 'calibration snapshot', (i) => i.Calibration.restore(json), 'calibration'));
  }

  /** The ratio used for `model` (ppm): learned, or its family's seed. */
  ratio(model) {
    const m = toText('model', model);
    return this._invoke('tokens', 'ratio', (c) => c.ratio(m)).value;
  }

  /** Our count for `model` turned into the provider's expected count (rounded up). */
  adjust(model, ourCount) {
    const args = [toText('model', model), toU64('ourCount', ourCount)];
    return toNumber(this._invoke('tokens', 'adjust', (c) => c.adjust(...args)).value);
  }

  /** Folds in one call (our count, the provider's `usage.prompt_tokens`); the new ratio or null. */
  observe(model, ourCount, reported) {
    const args = [toText('model', model), toU64('ourCount', ourCount), toU64('reported', reported)];
    return this._invoke('tokens', 'observe', (c) => c.observe(...args)).value ?? null;
  }

  /** Forgets `model`; true if it was remembered. */
  forget(model) {
    const m = toText('model', model);
    return this._invoke('tokens', 'forget', (c) => c.forget(m)).value;
  }

  /** Models remembered. */
  get size() {
    return this._invoke('tokens', 'len', (c) => c.len()).value;
  }

  /** The whole state as JSON text. */
  snapshot() {
    return snapshotText(this._invoke('tokens', 'snapshot', (c) => c.snapshot()).value);
  }
}

const BUDGET_DEFAULTED = ['contextWindow', 'reservedOutputTokens', 'safetyMarginTokens', 'minDocumentChars'];
const BUDGET_CAPS = ['maxHistoryMessages', 'maxDocumentChars', 'maxMessageChars'];
/** Every budget field, in the WIT record's order (problems are listed in it). */
const BUDGET_KEYS = new Set(['contextWindow', 'reservedOutputTokens', 'safetyMarginTokens', 'maxHistoryMessages', 'maxDocumentChars', 'maxMessageChars', 'minDocumentChars']);
const BUDGET_TYPES = {
  contextWindow: 'u64',
  reservedOutputTokens: 'u64',
  safetyMarginTokens: 'u64',
  maxHistoryMessages: 'u32',
  maxDocumentChars: 'u32',
  maxMessageChars: 'u32',
  minDocumentChars: 'u32',
};
const camel = (k) => k.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const snake = (k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * A budget as the WIT record. Keys in camelCase or snake_case (the core's `ContextConfig`); a
 * missing window, reserve, margin or document floor takes the core's default (`defaults()`), a
 * missing cap is no cap.
 */
function toBudget(budget, defaults) {
  if (budget === null || budget === undefined) budget = {};
  if (typeof budget !== 'object' || Array.isArray(budget)) throw argumentError('budget', 'budget must be an object');
  const values = {};
  let unknown = 0;
  for (const [k, v] of Object.entries(budget)) {
    const key = camel(k);
    if (BUDGET_KEYS.has(key)) values[key] = v;
    else unknown += 1;
  }
  // The names are not echoed: a mistaken object can hold anything, a key included.
  if (unknown) throw new ConfigError('context budget', [`${unknown} unknown field(s); known: ${[...BUDGET_KEYS].join(', ')}`]);
  // A field of the wrong type or out of its range is refused here, as the core refuses it in
  // the `ContextConfig` JSON the C ABI takes: a ConfigError listing every problem by its
  // snake_case field name. Passed on, jco would wrap it (-1 becomes 2**64-1) or fail inside
  // the call.
  const problems = [];
  const out = {};
  let d = null;
  for (const key of BUDGET_KEYS) {
    const v = values[key];
    if (v === null || v === undefined) {
      if (BUDGET_DEFAULTED.includes(key)) {
        d ??= defaults();
        out[key] = d[key];
      } else out[key] = undefined;
      continue;
    }
    try {
      out[key] = toInteger(snake(key), BUDGET_TYPES[key], v);
    } catch (err) {
      if (!(err instanceof ArgumentError)) throw err;
      problems.push(`${snake(key)} must be an integer in ${err.limit} (got ${err.found})`);
    }
  }
  if (problems.length) throw new ConfigError('context budget', problems);
  return out;
}

function fromBudget(raw) {
  return {
    contextWindow: toNumber(raw.contextWindow),
    reservedOutputTokens: toNumber(raw.reservedOutputTokens),
    safetyMarginTokens: toNumber(raw.safetyMarginTokens),
    maxHistoryMessages: raw.maxHistoryMessages ?? null,
    maxDocumentChars: raw.maxDocumentChars ?? null,
    maxMessageChars: raw.maxMessageChars ?? null,
    minDocumentChars: raw.minDocumentChars,
  };
}

function toTrimInput(input) {
  if (input === null || typeof input !== 'object') throw argumentError('input', 'input must be an object { system, documents, history, latest, tools }');
  const documents = input.documents ?? [];
  if (!Array.isArray(documents)) throw argumentError('documents', 'documents must be an array of strings');
  return {
    system: toText('system', input.system),
    documents: documents.map((d) => toText('document', d)),
    history: toMessages(input.history ?? []),
    latest: toMessage(input.latest),
    tools: toTools(input.tools),
  };
}

function contextError(e, what) {
  switch (e?.tag) {
    case 'invalid-budget':
      return new ConfigError(what, e.val.map(String));
    case 'does-not-fit':
      return new DoesNotFitError(toNumber(e.val.requiredTokens), toNumber(e.val.limitTokens));
    case 'latest-not-user':
      return new LatestNotUserError(e.val);
    case 'tokens':
      return new ContextTokensError(String(e.val));
    case 'not-overflow':
      return new NotOverflowError(e.val);
    case 'cannot-shrink':
      return new CannotShrinkError();
    default:
      return new PluginError(`unexpected context error ${String(e?.tag ?? e)}`);
  }
}

function fate(raw) {
  switch (raw.tag) {
    case 'kept':
      return { fate: 'kept', sent: true };
    case 'truncated':
      return { fate: 'truncated', sent: true, charsBefore: toNumber(raw.val.charsBefore), charsAfter: toNumber(raw.val.charsAfter) };
    case 'dropped':
      if (!DROP_REASONS.has(raw.val)) throw new PluginError(`unknown drop reason ${String(raw.val)}`);
      return { fate: 'dropped', sent: false, reason: raw.val };
    default:
      throw new PluginError(`unknown fate ${String(raw.tag)}`);
  }
}

/** The core's default budget as the WIT record. */
function rawDefaultBudget(plugin) {
  return callFree(plugin, 'context', 'defaultBudget', (i) => i.defaultBudget()).value;
}

/** The core's default budget, every field filled in. */
export function defaultBudget(options = {}) {
  return fromBudget(rawDefaultBudget(pluginOf(options)));
}

/** Tokens the whole request may take under `budget`; throws ConfigError for an invalid budget. */
export function limitTokens(budget, options = {}) {
  const plugin = pluginOf(options);
  const b = toBudget(budget, () => rawDefaultBudget(plugin));
  const result = callFree(plugin, 'context', 'limitTokens', (i) => i.limitTokens(b));
  if (result.error !== undefined) throw new ConfigError('context budget', [...result.error].map(String));
  return toNumber(result.value);
}

/**
 * Trims `input` ({ system, documents, history, latest, tools }) into `budget`, counting with
 * `counter` (in the counter's plugin). Returns `{ messages, report }`; throws ConfigError,
 * DoesNotFitError, LatestNotUserError or ContextTokensError.
 */
export function trim(budget, input, counter) {
  if (!(counter instanceof TokenCounter)) throw argumentError('counter', 'counter must be a TokenCounter');
  const raw = counter._raw();
  const wit = toTrimInput(input);
  const b = toBudget(budget, () => rawDefaultBudget(counter.plugin));
  const result = counter.plugin[INVOKE](counter._epoch(), 'context', 'trim', (i) => i.trim(b, wit, raw));
  if (result.error !== undefined) throw contextError(result.error, 'context budget');
  const r = result.value.report;
  return {
    messages: result.value.messages.map(fromMessage),
    report: {
      tokensBefore: toNumber(r.tokensBefore ?? null),
      tokensAfter: toNumber(r.tokensAfter),
      limitTokens: toNumber(r.limitTokens),
      documents: r.documents.map(fate),
      history: r.history.map(fate),
    },
  };
}

/**
 * The next budget after a context overflow of a request of `requestTokens` tokens; its limit is
 * the `targetTokens` that `policy` decides for the same failure. Throws NotOverflowError,
 * CannotShrinkError or ConfigError.
 */
export function nextBudget(failure, current, requestTokens, policy) {
  if (!(policy instanceof RetryPolicy)) throw argumentError('policy', 'policy must be a RetryPolicy');
  const raw = policy._raw();
  const args = [toWitClassification(failure), toOptionalU64('requestTokens', requestTokens)];
  const b = toBudget(current, () => rawDefaultBudget(policy.plugin));
  const out = policy.plugin[INVOKE](policy._epoch(), 'context', 'nextBudget', (i) => i.nextBudget(args[0], b, args[1], raw));
  if (out.error !== undefined) throw contextError(out.error, 'current budget');
  return fromBudget(out.value);
}

// ---- credits ------------------------------------------------------------------------------

function creditsError(e) {
  const v = e?.val;
  switch (e?.tag) {
    case 'too-large':
      return new CreditsError('too-large', { bytes: toNumber(v) }, `response of ${v} bytes is larger than the 65536 bytes parsed`);
    case 'invalid-json':
      return new CreditsError('invalid-json', { line: toNumber(v.line), column: toNumber(v.column) }, `response is not valid JSON (line ${v.line}, column ${v.column})`);
    case 'api': {
      const code = v.code === undefined || v.code === null ? null : Number(v.code);
      return new CreditsError('api', { code, message: v.message }, `OpenRouter returned an error${code === null ? '' : ` ${code}`}: ${v.message}`);
    }
    case 'missing-field':
      return new CreditsError('missing-field', { field: v }, `response has no ${v}`);
    case 'invalid-field':
      return new CreditsError('invalid-field', { field: v.field, expected: v.expected, found: v.found }, `${v.field} must be ${v.expected}, got ${v.found}`);
    case 'out-of-range':
      return new CreditsError('out-of-range', { field: v }, `${v} is out of range`);
    default:
      return new PluginError(`unexpected credits error ${String(e?.tag ?? e)}`);
  }
}

const KEY_FIELDS = ['label', 'usage', 'usageDaily', 'usageWeekly', 'usageMonthly', 'byokUsage', 'limit', 'limitRemaining', 'limitReset', 'isFreeTier', 'includeByokInLimit', 'expiresAt'];
const STATUS_FIELDS = ['balanceUsd', 'accountBalanceUsd', 'keyRemainingUsd', 'accountBurnUsdPerHour', 'keyBurnUsdPerHour', 'runwayHours', 'dailySpendUsd'];

function fromKeyInfo(raw) {
  const out = {};
  for (const k of KEY_FIELDS) out[k] = raw[k] ?? null;
  if (out.limitReset !== null && !LIMIT_RESETS.has(out.limitReset)) throw new PluginError(`unknown limit reset ${String(out.limitReset)}`);
  return out;
}

function toOptionalFloat(what, v) {
  if (v === null || v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw argumentError(`${what}`, `${what} must be a finite number`);
  return v;
}

function toKeyInfo(key) {
  if (key === null || typeof key !== 'object') throw argumentError('snapshot.key', 'snapshot.key must be a key info object or the /key body');
  const out = {};
  for (const k of ['usage', 'usageDaily', 'usageWeekly', 'usageMonthly', 'byokUsage', 'limit', 'limitRemaining']) out[k] = toOptionalFloat(k, key[k]);
  for (const k of ['isFreeTier', 'includeByokInLimit']) {
    if (key[k] !== null && key[k] !== undefined && typeof key[k] !== 'boolean') throw argumentError(`${k}`, `${k} must be a boolean`);
    out[k] = key[k] ?? undefined;
  }
  out.label = toOptionalText('label', key.label);
  out.expiresAt = toOptionalText('expiresAt', key.expiresAt);
  if (key.limitReset !== null && key.limitReset !== undefined && !LIMIT_RESETS.has(key.limitReset)) throw argumentError('limitReset', 'unknown limitReset', ArgumentRangeError);
  out.limitReset = key.limitReset ?? undefined;
  return out;
}

function toCreditsInfo(c) {
  if (c === null || typeof c !== 'object') throw argumentError('snapshot.credits', 'snapshot.credits must be a credits info object or the /credits body');
  const totalCredits = toOptionalFloat('totalCredits', c.totalCredits);
  const totalUsage = toOptionalFloat('totalUsage', c.totalUsage);
  if (totalCredits === undefined || totalUsage === undefined) throw argumentError('snapshot.credits', 'totalCredits and totalUsage are required');
  return { totalCredits, totalUsage };
}

function fromStatus(raw) {
  const out = {};
  for (const k of STATUS_FIELDS) out[k] = raw[k] ?? null;
  out.runwayUnlimited = Boolean(raw.runwayUnlimited);
  out.active = raw.active.map((a) => {
    if (!ALERT_KINDS.has(a)) throw new PluginError(`unknown alert kind ${String(a)}`);
    return a;
  });
  return out;
}

function fromEvent(raw) {
  if (!ALERT_KINDS.has(raw.alert) || !ALERT_STATES.has(raw.state)) throw new PluginError('unknown alert');
  return { alert: raw.alert, state: raw.state, value: raw.value ?? null, threshold: raw.threshold, message: String(raw.message) };
}

/** Parses a `GET /api/v1/key` body; throws CreditsError. */
export function parseKey(body, options = {}) {
  const b = toText('body', body);
  const result = callFree(pluginOf(options), 'credits', 'parseKey', (i) => i.parseKey(b));
  if (result.error !== undefined) throw creditsError(result.error);
  return fromKeyInfo(result.value);
}

/** Parses a `GET /api/v1/credits` body (both totals required); throws CreditsError. */
export function parseCredits(body, options = {}) {
  const b = toText('body', body);
  const result = callFree(pluginOf(options), 'credits', 'parseCredits', (i) => i.parseCredits(b));
  if (result.error !== undefined) throw creditsError(result.error);
  return { totalCredits: result.value.totalCredits, totalUsage: result.value.totalUsage };
}

/** Reads a 402 "… can only afford M" and suggests a `max_tokens`; null when there is no such number. */
export function suggestMaxTokens(text, options = {}) {
  const t = toText('text', text);
  const raw = callFree(pluginOf(options), 'credits', 'suggestMaxTokens', (i) => i.suggestMaxTokens(t)).value;
  if (raw === undefined || raw === null) return null;
  return {
    requestedTokens: toNumber(raw.requestedTokens ?? null),
    affordableTokens: toNumber(raw.affordableTokens),
    suggestedMaxTokens: toNumber(raw.suggestedMaxTokens ?? null),
  };
}

/** Watches balance, daily spend and runway; alerts once per crossing. `new CreditMonitor(config?, { plugin? })`; throws ConfigError. */
export class CreditMonitor extends Resource {
  constructor(config = {}, options = {}) {
    if (config === ADOPT) {
      super(...options);
      return;
    }
    const json = configJson('config', config);
    super(...create(pluginOf(options), 'credits', 'credit config', (i) => i.CreditMonitor.create(json)));
  }

  /** A monitor from a snapshot. */
  static restore(snapshot, options = {}) {
    const json = snapshotJson(snapshot);
    return new CreditMonitor(ADOPT, create(pluginOf(options), 'credits', 'credit monitor snapshot', (i) => i.CreditMonitor.restore(json)));
  }

  /**
   * Feeds one poll `{ key?, credits? }` (parsed objects, or the response bodies as strings)
   * taken at `nowMs` (monotonic) and, when known, `wallClockMs` (Unix ms). Returns the alert
   * events it caused, usually none.
   */
  observe(snapshot, nowMs, wallClockMs = null) {
    if (snapshot === null || typeof snapshot !== 'object') throw argumentError('snapshot', 'snapshot must be an object { key?, credits? }');
    let { key, credits } = snapshot;
    if (typeof key === 'string') key = parseKey(key, { plugin: this.plugin });
    if (typeof credits === 'string') credits = parseCredits(credits, { plugin: this.plugin });
    const wit = {
      key: key === null || key === undefined ? undefined : toKeyInfo(key),
      credits: credits === null || credits === undefined ? undefined : toCreditsInfo(credits),
    };
    const args = [wit, toU64('nowMs', nowMs), toOptionalU64('wallClockMs', wallClockMs)];
    return this._invoke('credits', 'observe', (m) => m.observe(...args)).value.map(fromEvent);
  }

  /** What was known after the last snapshot. */
  status() {
    return fromStatus(this._invoke('credits', 'status', (m) => m.status()).value);
  }

  /** The whole state as JSON text. */
  snapshot() {
    return snapshotText(this._invoke('credits', 'snapshot', (m) => m.snapshot()).value);
  }
}

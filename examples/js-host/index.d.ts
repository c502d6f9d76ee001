// Types of the llm-resilience JavaScript host (index.js). They mirror the interfaces of
// wit/llm-resilience.wit (classify, breaker, ratelimit, retry), in camelCase, with `null` for
// absent values and numbers for u64 (saturating at Number.MAX_SAFE_INTEGER).

/** The error kinds, in the WIT's order: a closed set with one catch-all (`unknown`). */
export declare const ErrorKind: readonly [
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
];

/** What kind of failure a call met. */
export type ErrorKind = (typeof ErrorKind)[number];

/** The component reads only this many bytes of a body; only these are sent to it. */
export declare const MAX_BODY_BYTES: number;

/** Response headers: an object, a Map, a fetch `Headers`, `[name, value]` pairs or `{name, value}`s. */
export type HeadersInput =
  | Record<string, string | string[] | undefined>
  | Iterable<readonly [string, string] | { name: string; value: string }>;

/** One failed call: an HTTP response, or a transport failure. Every field is optional. */
export interface ClassifyInput {
  /** The HTTP status, when a response arrived (0..65535). */
  status?: number | null;
  /** The response headers; names match in any case. */
  headers?: HeadersInput | null;
  /** The response body: text (sent as UTF-8) or bytes. Only the first 256 KiB are read. */
  body?: string | Uint8Array | ArrayBufferView | ArrayBuffer | null;
  /** The transport error's message, when the call failed before a response. */
  transport?: string | null;
  /** Wall-clock time in Unix milliseconds, used only for HTTP-date and epoch hints. */
  wallClockMs?: number | bigint | null;
}

/** What a failure was, and what it says about retrying. */
export interface Classification {
  /** The kind of failure. */
  kind: ErrorKind;
  /** Whether retrying the same request (perhaps after a wait) can succeed. */
  retryable: boolean;
  /** How long the server asked us to wait, in milliseconds (saturates at Number.MAX_SAFE_INTEGER). */
  retryAfterMs: number | null;
  /** The context limit the error states, in tokens (saturates at Number.MAX_SAFE_INTEGER). */
  limitTokens: number | null;
  /** The request size the error states, in tokens (saturates at Number.MAX_SAFE_INTEGER). */
  requestedTokens: number | null;
  /** The provider that produced the error. */
  provider: string | null;
  /** The provider's own error code or type. */
  code: string | null;
  /** OpenRouter's `error.metadata.error_type`, when present. */
  errorType: string | null;
  /** A human-readable message with secrets redacted. */
  message: string;
}

/** A classification whose u64 fields are exact bigints. */
export interface ClassificationExact
  extends Omit<Classification, 'retryAfterMs' | 'limitTokens' | 'requestedTokens'> {
  retryAfterMs: bigint | null;
  limitTokens: bigint | null;
  requestedTokens: bigint | null;
}

/** Options of a `Plugin`. */
export interface PluginOptions {
  /** jco's hook to instantiate the core module, for embedders that wrap or compile it themselves. */
  instantiateCore?: (module: WebAssembly.Module, imports: Record<string, unknown>) => WebAssembly.Instance;
}

/** Base class of every error that comes from the component or its loading. */
export declare class PluginError extends Error {}
/** The transpiled component (gen/) is missing or cannot be instantiated. */
export declare class PluginLoadError extends PluginError {}
/** The component trapped; the next call runs in a fresh instance. */
export declare class PluginTrap extends PluginError {}
/** A handle belonged to an instance that trapped: it is gone; restore from a snapshot. */
export declare class ResourceLostError extends PluginError {}
/** The handle was closed and cannot be used. */
export declare class ResourceClosedError extends Error {}
/** The component refused a config or a snapshot. */
export declare class ConfigError extends RangeError {
  /** Every problem the component found. */
  readonly problems: string[];
}
/** A key was refused. */
export declare class InvalidKeyError extends RangeError {
  readonly code: 'empty-key' | 'key-too-long';
  readonly key: string;
}
/** A rate-limit check that cannot be answered. */
export declare class LimitError extends RangeError {
  readonly code: LimitErrorCode;
}
/** A limiter refused a key: an InvalidKeyError for which `instanceof LimitError` is true too. */
export declare class LimiterKeyError extends InvalidKeyError {}
/** Why a limiter check cannot be answered. */
export type LimitErrorCode = 'empty-key' | 'key-too-long' | 'zero-units' | 'exceeds-burst';

/** One instance of the component; a trap makes the next call start from a fresh instance. */
export declare class Plugin {
  /** @throws PluginLoadError when gen/ is missing (run `npm run build`) or instantiation fails. */
  constructor(options?: PluginOptions);
  /** Resource handles created in the current instance and not yet closed or collected. */
  readonly liveResources: number;
  /**
   * Classifies one failed call.
   * @throws TypeError / RangeError for bad input, PluginTrap when the component traps.
   */
  classify(input?: ClassifyInput): Classification;
  /** Like `classify`, with the u64 fields as exact bigints. */
  classifyExact(input?: ClassifyInput): ClassificationExact;
  /** The version of the library inside the component, `major.minor.patch`. */
  version(): string;
}

/** The shared plugin behind the module-level functions, created on first use. */
export declare function getDefaultPlugin(): Plugin;
/** Classifies one failed call with the shared plugin. */
export declare function classify(input?: ClassifyInput): Classification;
/** Like `classify`, with the u64 fields as exact bigints. */
export declare function classifyExact(input?: ClassifyInput): ClassificationExact;
/** The version of the library inside the shared plugin's component. */
export declare function version(): string;

// ---- breakers, rate limits, retries -------------------------------------------------------

/** A time on the caller's monotonic clock, or a duration, in ms: a safe integer or a bigint. */
export type Millis = number | bigint;
/** A config: the core's config type as a plain object of JSON values (`{}` for the defaults). */
export type Config = Record<string, unknown>;
/** A snapshot: the string `snapshot()` returned, or that string parsed. */
export type Snapshot = string | Record<string, unknown>;
/** Where a handle lives: `plugin` (default: the shared plugin). */
export interface ResourceOptions {
  plugin?: Plugin;
}

/** A breaker's states, in the WIT's order. */
export declare const State: readonly ['closed', 'open', 'half-open', 'forced-open', 'disabled'];
export type State = (typeof State)[number];
/** The answers of a rate-limit check. */
export declare const Verdict: readonly ['allowed', 'denied'];
export type Verdict = (typeof Verdict)[number];
/** Why a call gave up, in the WIT's order. */
export declare const GiveUpCode: readonly ['permanent', 'attempts-exhausted', 'budget-exhausted', 'wait-too-long', 'deadline', 'cannot-shrink'];
export type GiveUpCode = (typeof GiveUpCode)[number];

/** Permission to make one call; give it back to `record`. */
export interface Permit {
  readonly generation: number;
  readonly id: number;
  readonly admittedMs: number;
  readonly probe: boolean;
}
/** The answer to `acquire`. */
export type Admission =
  | { admitted: true; permit: Permit }
  | { admitted: false; state: State; retryInMs: number | null };
/** How an admitted call ended; a classification counts as a failure of its kind. */
export type Outcome =
  | 'success'
  | 'ignored'
  | { outcome: 'success' }
  | { outcome: 'ignored' }
  | { outcome: 'failure'; kind: ErrorKind; retryAfterMs?: Millis | null }
  | { kind: ErrorKind; retryAfterMs?: Millis | null; retryable: boolean };
/** A change of state. */
export interface Transition {
  from: State;
  to: State;
}
/** What recording an outcome did. */
export type Recorded =
  | { recorded: 'counted'; transition: Transition | null }
  | { recorded: 'stale'; transition: null };
/** Numbers for operators and metrics. */
export interface Counts {
  state: State;
  windowCalls: number;
  windowFailures: number;
  windowSlow: number;
  consecutiveFailures: number;
  probesInFlight: number;
  probeSuccesses: number;
  timesOpened: number;
  rejected: number;
  generation: number;
}

/** A handle on a resource inside a plugin's component instance. */
declare abstract class Resource {
  /** The plugin whose instance holds the resource. */
  readonly plugin: Plugin;
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /** Releases the resource now; idempotent. A dropped handle is released when collected. */
  close(): void;
  [Symbol.dispose](): void;
}

/** One circuit breaker. @throws ConfigError */
export declare class Breaker extends Resource {
  constructor(config?: Config, options?: ResourceOptions);
  /** @throws ConfigError for a corrupt snapshot. */
  static restore(snapshot: Snapshot, options?: ResourceOptions): Breaker;
  acquire(nowMs: Millis): Admission;
  record(permit: Permit, outcome: Outcome | ClassificationExact, nowMs: Millis): Recorded;
  state(nowMs: Millis): State;
  counts(nowMs: Millis): Counts;
  forceOpen(nowMs: Millis): Transition | null;
  disable(nowMs: Millis): Transition | null;
  reset(nowMs: Millis): Transition | null;
  snapshot(): string;
}

/** One breaker per key, at most `maxKeys` (default 1024). @throws ConfigError */
export declare class BreakerSet extends Resource {
  constructor(config?: Config, maxKeys?: number, options?: ResourceOptions);
  static restore(snapshot: Snapshot, options?: ResourceOptions): BreakerSet;
  /** @throws InvalidKeyError */
  acquire(key: string, nowMs: Millis): Admission;
  /** @throws InvalidKeyError */
  record(key: string, permit: Permit, outcome: Outcome | ClassificationExact, nowMs: Millis): Recorded;
  state(key: string, nowMs: Millis): State | null;
  keys(): string[];
  snapshot(): string;
}

/** The answer to a rate-limit check. */
export type CheckResult =
  | { verdict: 'allowed'; allowed: true; remaining: number }
  | { verdict: 'denied'; allowed: false; retryInMs: number };

/** A keyed GCRA rate limiter. @throws ConfigError */
export declare class RateLimiter extends Resource {
  constructor(config?: Config, options?: ResourceOptions);
  static restore(snapshot: Snapshot, options?: ResourceOptions): RateLimiter;
  /** @throws LimitError (LimiterKeyError for a bad key) */
  check(key: string, units: number, nowMs: Millis): CheckResult;
  settle(key: string, reserved: number, actual: number, nowMs: Millis): void;
  blockUntil(key: string, untilMs: Millis, nowMs: Millis): void;
  remaining(key: string, nowMs: Millis): number;
  len(): number;
  readonly size: number;
  snapshot(): string;
}

/** Why a call gave up. */
export type GiveUpReason =
  | { code: 'permanent'; kind: ErrorKind }
  | { code: 'attempts-exhausted'; kind: ErrorKind; retries: number }
  | { code: 'budget-exhausted' }
  | { code: 'wait-too-long'; waitMs: number; ceilingMs: number }
  | { code: 'deadline'; retryAtMs: number; deadlineAtMs: number }
  | { code: 'cannot-shrink' };
/** What to do about a failed attempt. */
export type Decision =
  | { decision: 'retry'; afterMs: number; attempt: number }
  | { decision: 'shrink-context'; targetTokens: number; afterMs: number; attempt: number }
  | { decision: 'give-up'; reason: GiveUpReason };

/** A service-wide retry budget. @throws ConfigError */
export declare class RetryBudget extends Resource {
  constructor(config?: Config, options?: ResourceOptions);
  deposit(nowMs: Millis): void;
  available(nowMs: Millis): number;
}

/** A validated retry policy. @throws ConfigError */
export declare class RetryPolicy extends Resource {
  constructor(config?: Config, options?: ResourceOptions);
  startCall(nowMs: Millis, seed: Millis, budget: RetryBudget): RetryCall;
  decide(
    call: RetryCall,
    failure: Classification | ClassificationExact,
    nowMs: Millis,
    requestTokens?: Millis | null,
    budget?: RetryBudget | null,
  ): Decision;
}

/** The state of one call across its attempts; from `RetryPolicy#startCall`. */
export declare class RetryCall extends Resource {
  private constructor();
  readonly policy: RetryPolicy;
  readonly budget: RetryBudget;
  readonly retries: number;
  decide(failure: Classification | ClassificationExact, nowMs: Millis, requestTokens?: Millis | null): Decision;
}

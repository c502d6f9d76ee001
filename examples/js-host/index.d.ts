// Types of the llm-resilience JavaScript host (index.js). They mirror the interfaces of
// wit/llm-resilience.wit (classify, breaker, ratelimit, retry, tokens, context, credits), in
// camelCase, with `null` for absent values and numbers for u64 (saturating at
// Number.MAX_SAFE_INTEGER).

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
/** The component trapped; only that call's instance is replaced, the next call runs in a fresh one. */
export declare class PluginTrap extends PluginError {}
/** A handle belonged to an instance that trapped: it is gone (handles of other instances are not); restore from a snapshot. */
export declare class ResourceLostError extends PluginError {}
/**
 * An argument that cannot be passed to the component, found before it was entered (the
 * instance and its handles are untouched): `ArgumentTypeError` (a TypeError) or
 * `ArgumentRangeError` (a RangeError); `instanceof ArgumentError` is true for both.
 */
export declare abstract class ArgumentError extends Error {
  /** `invalid-argument`, or `invalid-utf8` for a string with a lone surrogate. */
  readonly code: 'invalid-argument' | 'invalid-utf8';
  /** The argument, a dotted path into records and lists (`nowMs`, `budget.contextWindow`, `messages[0].content`). */
  readonly argument: string;
  /** What it must be (`a u64 (a safe integer or a bigint)`). */
  readonly expected: string;
  /** The range of an integer type (`0..18446744073709551615`), else null. */
  readonly limit: string | null;
  /** The exported function, when the WIT checks found it (`Limiter.check`). */
  readonly function?: string;
}
/** The wrong type for an argument (also a number that is not a safe integer). */
export declare class ArgumentTypeError extends TypeError {
  readonly code: 'invalid-argument';
  readonly argument: string;
  readonly expected: string;
  readonly limit: string | null;
}
/** A value out of its type's range, or a string with a lone surrogate (`code: 'invalid-utf8'`). */
export declare class ArgumentRangeError extends RangeError {
  readonly code: 'invalid-argument' | 'invalid-utf8';
  readonly argument: string;
  readonly expected: string;
  readonly limit: string | null;
}
/** The component instances of a plugin, one per kind of handle, plus `functions` for calls without one. */
export declare const CAPABILITIES: readonly ['functions', 'breaker', 'ratelimit', 'retry', 'tokens', 'calibration', 'credits'];
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

/**
 * The component, one instance per capability (`CAPABILITIES`); a trap replaces only the
 * instance it happened in.
 */
export declare class Plugin {
  /** @throws PluginLoadError when gen/ is missing (run `npm run build`) or instantiation fails. */
  constructor(options?: PluginOptions);
  /** Resource handles created in the live instances and not yet closed or collected. */
  readonly liveResources: number;
  /**
   * Classifies one failed call.
   * @throws ArgumentError (a TypeError / RangeError) for bad input, PluginTrap when the component traps.
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

// ---- tokens, context trimming, credits ---------------------------------------------------------

/** Who wrote a message. */
export declare const Role: readonly ['system', 'user', 'assistant', 'tool'];
export type Role = (typeof Role)[number];
/** OpenAI's byte-pair encodings the exact counter knows. */
export declare const Encoding: readonly ['o200k-base', 'cl100k-base'];
export type Encoding = (typeof Encoding)[number];
/** Why a document or history message was not sent. */
export declare const DropReason: readonly ['budget', 'max-messages', 'orphan-tool-result', 'unanswered-tool-call', 'before-first-user-turn'];
export type DropReason = (typeof DropReason)[number];
/** Which credit alert, in the order events are emitted. */
export declare const AlertKind: readonly ['balance-critical', 'balance-warning', 'runway', 'daily-spend'];
export type AlertKind = (typeof AlertKind)[number];
/** Whether an alert started or ended. */
export declare const AlertState: readonly ['fired', 'resolved'];
export type AlertState = (typeof AlertState)[number];
/** When a key's spending limit resets. */
export declare const LimitReset: readonly ['daily', 'weekly', 'monthly', 'other'];
export type LimitReset = (typeof LimitReset)[number];

/** A tool call made by the assistant. */
export interface ToolCall {
  /** The call's id; the tool result names it in `toolCallId`. */
  id: string;
  /** The function called. */
  name: string;
  /** The arguments, as the JSON text the model produced. */
  arguments: string;
}

/** One chat message, as returned (absent values are null). */
export interface Message {
  role: Role;
  content: string;
  name: string | null;
  toolCalls: ToolCall[];
  toolCallId: string | null;
}

/**
 * A message as taken: camelCase or snake_case (`tool_calls`, `tool_call_id`), tool calls as
 * `{ id, name, arguments }` or the chat API's `{ id, function: { name, arguments } }`; a string is
 * a user message.
 */
export type MessageInput =
  | string
  | {
      role: Role;
      content?: string | null;
      name?: string | null;
      toolCalls?: Array<ToolCall | { id: string; function: { name: string; arguments?: string } }>;
      tool_calls?: Array<ToolCall | { id: string; function: { name: string; arguments?: string } }>;
      toolCallId?: string | null;
      tool_call_id?: string | null;
    };

/** A tool the model may call; `parameters` as JSON text or an object (serialised). */
export interface ToolSchemaInput {
  name: string;
  description?: string;
  parameters?: string | Record<string, unknown>;
}

/** A count that cannot be made: the text is over the 4 MiB tokenized. */
export declare class TokenError extends RangeError {
  readonly code: 'too-large';
  /** The text's length in bytes. */
  readonly bytes: number;
}

/** The encoding an OpenAI model id uses. */
export declare function encodingForModel(model: string, options?: ResourceOptions): Encoding;

/** A token counter: exact (OpenAI's count) or a documented upper bound. */
export declare class TokenCounter extends Resource {
  private constructor();
  /** An exact counter (default `o200k-base`); decodes the tables (about 0.3 s): keep it. */
  static exact(encoding?: Encoding, options?: ResourceOptions): TokenCounter;
  /** Never fewer tokens than either encoding would count; cheap. */
  static upperBound(options?: ResourceOptions): TokenCounter;
  /** The encoding of an exact counter; null for the upper bound. */
  readonly encoding: Encoding | null;
  /** Tokens in `text`; throws TokenError. */
  countText(text: string): number;
  /** Tokens of a whole request with the chat overhead; throws TokenError. */
  countMessages(messages: MessageInput[], tools?: ToolSchemaInput[]): number;
}

/** Per-model ratios (ppm) of a provider's token count to ours. Throws ConfigError. */
export declare class Calibration extends Resource {
  constructor(config?: Config, options?: ResourceOptions);
  static restore(snapshot: Snapshot, options?: ResourceOptions): Calibration;
  ratio(model: string): number;
  adjust(model: string, ourCount: Millis): number;
  observe(model: string, ourCount: Millis, reported: Millis): number | null;
  forget(model: string): boolean;
  /** Models remembered. */
  readonly size: number;
  snapshot(): string;
}

/** A trimming budget as returned: every field filled in. */
export interface ContextBudget {
  contextWindow: number;
  reservedOutputTokens: number;
  safetyMarginTokens: number;
  maxHistoryMessages: number | null;
  maxDocumentChars: number | null;
  maxMessageChars: number | null;
  minDocumentChars: number;
}

/**
 * A budget as taken: camelCase or snake_case keys (the core's `ContextConfig`); a missing window,
 * reserve, margin or document floor takes the core's default, a missing cap is no cap.
 */
export type BudgetInput = Partial<Record<keyof ContextBudget, number | bigint | null>> | Record<string, number | bigint | null>;

/** What to trim. */
export interface TrimInput {
  system: string;
  documents?: string[];
  history?: MessageInput[];
  latest: MessageInput;
  tools?: ToolSchemaInput[];
}

/** What happened to one document or history message. */
export type Fate =
  | { fate: 'kept'; sent: true }
  | { fate: 'truncated'; sent: true; charsBefore: number; charsAfter: number }
  | { fate: 'dropped'; sent: false; reason: DropReason };

/** What `trim` did. */
export interface TrimReport {
  /** The untrimmed request, counted; null when larger than the counter accepts. */
  tokensBefore: number | null;
  /** The request returned, counted: always ≤ `limitTokens`. */
  tokensAfter: number;
  limitTokens: number;
  documents: Fate[];
  history: Fate[];
}

/** The request to send (`[system, document…, history…, latest]`) and the report. */
export interface Trimmed {
  messages: Message[];
  report: TrimReport;
}

/** Trimming or next-budget failure; `code` is the WIT's case name. */
export declare class ContextError extends RangeError {
  readonly code: 'does-not-fit' | 'latest-not-user' | 'tokens' | 'not-overflow' | 'cannot-shrink';
  /** As the core's JSON. */
  toJSON(): Record<string, unknown>;
}
export declare class DoesNotFitError extends ContextError {
  readonly requiredTokens: number;
  readonly limitTokens: number;
}
export declare class LatestNotUserError extends ContextError {
  readonly role: Role;
}
export declare class ContextTokensError extends ContextError {
  readonly detail: string;
}
export declare class NotOverflowError extends ContextError {
  readonly kind: ErrorKind;
}
export declare class CannotShrinkError extends ContextError {}

/** The core's default budget. */
export declare function defaultBudget(options?: ResourceOptions): ContextBudget;
/** Tokens the whole request may take under `budget`; throws ConfigError. */
export declare function limitTokens(budget: BudgetInput, options?: ResourceOptions): number;
/** Trims `input` into `budget` with `counter` (in its plugin). */
export declare function trim(budget: BudgetInput, input: TrimInput, counter: TokenCounter): Trimmed;
/** The next budget after a context overflow; its limit equals the retry policy's shrink target. */
export declare function nextBudget(failure: Classification, current: BudgetInput, requestTokens: Millis | null, policy: RetryPolicy): ContextBudget;

/** What `GET /api/v1/key` says (absent values are null). */
export interface KeyInfo {
  label: string | null;
  usage: number | null;
  usageDaily: number | null;
  usageWeekly: number | null;
  usageMonthly: number | null;
  byokUsage: number | null;
  limit: number | null;
  limitRemaining: number | null;
  limitReset: LimitReset | null;
  isFreeTier: boolean | null;
  includeByokInLimit: boolean | null;
  expiresAt: string | null;
}

/** What `GET /api/v1/credits` says. */
export interface CreditsInfo {
  totalCredits: number;
  totalUsage: number;
}

/** A 402's "can only afford M", and the `max_tokens` to retry with. */
export interface Affordable {
  requestedTokens: number | null;
  affordableTokens: number;
  suggestedMaxTokens: number | null;
}

/** One alert event (its message redacted). */
export interface AlertEvent {
  alert: AlertKind;
  state: AlertState;
  value: number | null;
  threshold: number;
  message: string;
}

/** What the monitor knew after the last snapshot. */
export interface CreditStatus {
  balanceUsd: number | null;
  accountBalanceUsd: number | null;
  keyRemainingUsd: number | null;
  accountBurnUsdPerHour: number | null;
  keyBurnUsdPerHour: number | null;
  runwayHours: number | null;
  runwayUnlimited: boolean;
  dailySpendUsd: number | null;
  active: AlertKind[];
}

/** A `/key` or `/credits` body that cannot be used. */
export declare class CreditsError extends RangeError {
  readonly code: 'too-large' | 'invalid-json' | 'api' | 'missing-field' | 'invalid-field' | 'out-of-range';
  /** The case's fields as the core's JSON names them. */
  readonly details: Record<string, unknown>;
  toJSON(): Record<string, unknown>;
}

/** Parses a `GET /api/v1/key` body; throws CreditsError. */
export declare function parseKey(body: string, options?: ResourceOptions): KeyInfo;
/** Parses a `GET /api/v1/credits` body; throws CreditsError. */
export declare function parseCredits(body: string, options?: ResourceOptions): CreditsInfo;
/** Reads a 402 "can only afford M"; null when absent. */
export declare function suggestMaxTokens(text: string, options?: ResourceOptions): Affordable | null;

/** Watches balance, daily spend and runway; alerts once per crossing. Throws ConfigError. */
export declare class CreditMonitor extends Resource {
  constructor(config?: Config, options?: ResourceOptions);
  static restore(snapshot: Snapshot, options?: ResourceOptions): CreditMonitor;
  /** One poll: parsed objects or the response bodies. */
  observe(
    snapshot: { key?: Partial<KeyInfo> | string | null; credits?: CreditsInfo | string | null },
    nowMs: Millis,
    wallClockMs?: Millis | null,
  ): AlertEvent[];
  status(): CreditStatus;
  snapshot(): string;
}

// Types of the llm-resilience JavaScript host (index.js). They mirror `interface classify` in
// wit/llm-resilience.wit, in camelCase, with `null` for absent values.

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

/** One instance of the component; a trap makes the next call start from a fresh instance. */
export declare class Plugin {
  /** @throws PluginLoadError when gen/ is missing (run `npm run build`) or instantiation fails. */
  constructor(options?: PluginOptions);
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

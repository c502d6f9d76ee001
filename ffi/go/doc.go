// Package llmresilience classifies failed LLM API calls — rate limits, exhausted quota,
// context overflow, outages, timeouts, network errors — into a closed set of kinds with retry
// hints, and decides what to do about them: circuit breakers per model (Breaker, BreakerSet,
// shaped like sony/gobreaker's two-step breaker), rate limits per chat session (Limiter, like
// golang.org/x/time/rate but keyed and weighted), and retry decisions under a service-wide
// budget (RetryPolicy, RetryBudget, RetryCall). It also counts tokens exactly (TokenCounter,
// o200k_base and cl100k_base), trims a conversation into a model's window without breaking it
// (Trim, NextBudget) and watches OpenRouter credits (CreditMonitor, ParseKey, ParseCredits,
// SuggestMaxTokens). It uses the llm-resilience Rust core through its C ABI (cgo). Every
// method that reads the clock has an …At twin that takes the time.
//
// The package makes no decisions of its own: it converts Go values to the C structs of
// ffi/include/llm_resilience.h and back. The same input gives the same Classification in Go,
// in Rust and in every WebAssembly host, because they all run the same core.
//
//	resp, err := client.Do(req)
//	if err != nil {
//		c := llmresilience.ClassifyTransport(err)
//		// c.Kind is KindTimeout or KindNetwork; c.Retryable says whether to try again
//	}
//	body, _ := io.ReadAll(resp.Body)
//	if resp.StatusCode >= 400 {
//		c := llmresilience.Classify(resp, body)
//		if c.Retryable && c.HasRetryAfter {
//			time.Sleep(c.RetryAfter)
//		}
//	}
//
// # Linking
//
// The package links the static library libllm_resilience_ffi.a, which must be built first:
//
//	cargo build --release -p llm-resilience-ffi    # from the repository root
//
// By default the cgo preamble names it by full path, relative to this directory
// (${SRCDIR}/../../target/release/libllm_resilience_ffi.a), so the package builds inside a
// checkout of the repository — or from another module that points at a checkout with a
// replace directive. With the build tag llmr_pkgconfig, the flags come from pkg-config
// instead (package llm-resilience; gen-pkgconfig.sh writes the .pc file for an install
// prefix). README.md shows both.
//
// The package references the symbol llmr_version_0_1_0, which only a library of version
// 0.1.0 exports: linking against a stale library of another version fails at build time
// instead of misbehaving at run time.
//
// # Errors and invalid input
//
// Classify, ClassifyAt and ClassifyTransport never fail: header names and values and the
// transport message are made valid UTF-8 (invalid bytes become U+FFFD), and input beyond the
// C ABI's limits (more than 4096 headers, a string over 1 MiB, a body over 1 GiB) is cut to
// them — the core reads far less (128 headers of at most 8 KiB, 256 KiB of body) anyway.
// ClassifyRaw passes its input unchanged and returns the C layer's errors (ErrInvalidUTF8,
// ErrInputTooLarge, …) instead.
//
// # Memory
//
// Go memory handed to C is pinned (runtime.Pinner) for the duration of the call and kept alive
// after it; the strings the library returns are copied into Go strings and the C struct is
// released with llmr_classification_free before the call returns. Nothing needs closing.
// The build tag llmr_debug runs the garbage collector before every C call (combine it with
// GOGC=1) to make any memory mistake show up in tests.
package llmresilience

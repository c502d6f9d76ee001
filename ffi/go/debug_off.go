//go:build !llmr_debug

package llmresilience

// debugGC is true with the llmr_debug build tag: then every call into the library runs the
// garbage collector first, so memory that is used by C but not kept alive by Go is freed early
// and shows up in tests (run them with GOGC=1 as well).
const debugGC = false

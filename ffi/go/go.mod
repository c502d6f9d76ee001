module github.com/llm-resilience/llm-resilience/ffi/go

// runtime.Pinner (1.21), range over int (1.22), runtime.AddCleanup and the cgo noescape /
// nocallback directives (1.24).
go 1.24

// Test-only: the benchmarks compare the breaker with gobreaker's two-step breaker.
require github.com/sony/gobreaker/v2 v2.4.0

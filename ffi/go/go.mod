module github.com/llm-resilience/llm-resilience/ffi/go

// runtime.Pinner (1.21), range over int (1.22), runtime.AddCleanup and the cgo noescape /
// nocallback directives (1.24).
go 1.24.0

// Test-only: the benchmarks compare the breaker with gobreaker's two-step breaker.
require github.com/sony/gobreaker/v2 v2.4.0

// Test-only: the limiter benchmarks compare with golang.org/x/time/rate. v0.14.0, not v0.16.0:
// its rate/rate.go is byte-identical, and v0.15+ would raise this module's go line to 1.25+.
require golang.org/x/time v0.14.0

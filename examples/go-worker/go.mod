module github.com/llm-resilience/llm-resilience/examples/go-worker

// The cgo package's own go line (runtime.AddCleanup, cgo noescape): 1.24.
go 1.24.0

require github.com/llm-resilience/llm-resilience/ffi/go v0.0.0

// The package lives in this repository; it links ../../target/release/libllm_resilience_ffi.a.
replace github.com/llm-resilience/llm-resilience/ffi/go => ../../ffi/go

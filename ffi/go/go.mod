module github.com/llm-resilience/llm-resilience/ffi/go

// runtime.Pinner (1.21) and range over int (1.22).
go 1.22

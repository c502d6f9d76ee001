//go:build llmr_debug

package llmresilience

// debugGC: see debug_off.go.
const debugGC = true

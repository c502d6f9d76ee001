//go:build llmr_pkgconfig

package llmresilience

// With the llmr_pkgconfig build tag, compiler and linker flags come from pkg-config's
// llm-resilience.pc (written by gen-pkgconfig.sh), which names the static library by full path.

// #cgo pkg-config: llm-resilience
import "C"

//go:build !llmr_pkgconfig

package llmresilience

// The static library is linked by full path: with -L/-l the linker would prefer
// libllm_resilience_ffi.so if both exist, and the binary would then need the .so at run time.
// Build it first: cargo build --release -p llm-resilience-ffi (from the repository root).

// #cgo CFLAGS: -I${SRCDIR}/../include
// #cgo LDFLAGS: ${SRCDIR}/../../target/release/libllm_resilience_ffi.a -ldl -lpthread -lm
import "C"

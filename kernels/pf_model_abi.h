// The C ABI every polyfuse model library exports (host and android-cpu targets).
//
// A model library holds the generated kernels and a driver; weights live in a separate
// weights.bin that pf_create reads once. Tensor metadata (names, shapes, dtypes) lives in the
// artifact's manifest.json: no string from the model is compiled into the library.
#pragma once
#include <stddef.h>

#define PF_ABI_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

// ABI version the library was built for (PF_ABI_VERSION).
int pf_abi_version(void);
// Number of graph inputs and outputs, in manifest order.
int pf_num_inputs(void);
int pf_num_outputs(void);
// Size in bytes of input/output i.
size_t pf_input_bytes(int i);
size_t pf_output_bytes(int i);

// Create an instance: reads weights from `weights_path`, allocates the arena.
// Returns NULL on failure and writes a message into err (err_len bytes).
void* pf_create(const char* weights_path, int nthreads, char* err, size_t err_len);
// Run one inference. inputs[i]/outputs[i] point to contiguous buffers of the sizes above.
// Returns 0 on success. Thread-safe: calls on one instance from several threads are serialised
// (each takes the instance's lock; they share its arena), calls on different instances run
// concurrently (they share the library's thread pool, see pf_pool.h).
int pf_run(void* model, const void* const* inputs, void* const* outputs);
// Frees the instance; no pf_run or pf_wake on it may be running or follow.
void pf_destroy(void* model);
// Optional (look it up before calling; libraries from before it lack it): wakes the instance's
// worker threads if they are asleep, so a pf_run that follows soon finds them running. Call it
// when an inference is about to start, before preparing its inputs: waking a thread takes
// ~0.1-0.2 ms after an idle period, which then overlaps that preparation. Never required.
void pf_wake(void* model);
// CPU targets only (weak in pf_run): packs the GEMM operands of `weights_path` for this library's
// micro-kernel into weights_path + ".packed", which pf_create then maps instead of packing.
// Returns 0, or -1 with a message in err.
int pf_write_packed(const char* weights_path, char* err, size_t err_len);

#ifdef __cplusplus
}
#endif

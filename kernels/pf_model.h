// polyfuse's C API: run a compiled model from C or C++, without Python or polyfuse installed.
//
// Link the artifact's libpfmodel.so (or build it with the artifact's CMakeLists.txt) and
// include this header from its runtime/ folder:
//
//   char err[512];
//   pf_model* m = pf_model_open("out/tiny_bert", 0, err, sizeof err);  // 0 threads: all cores
//   if (!m) { fprintf(stderr, "%s\n", err); return 1; }
//   const pf_tensor_info* in = pf_model_input(m, 0);   // name, dtype, shape, bytes
//   ... fill one buffer of in->bytes per input, allocate one of pf_model_output(m, j)->bytes per output
//   if (pf_model_run(m, inputs, outputs, err, sizeof err) != 0) { ... }
//   pf_model_close(m);
//
// Tensors are dense, row-major, in the dtype the manifest names; bool is one byte (0 or 1).
// Every function that can fail returns NULL or non-zero and writes one line into err.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pf_model pf_model;

typedef struct {
  const char* name;      // the ONNX graph's name for the tensor (UTF-8)
  const char* dtype;     // numpy's name: "float32", "int64", "bool", "float16", ...
  int rank;
  const int64_t* shape;  // rank dims
  size_t bytes;          // size of its buffer
} pf_tensor_info;

// Opens the artifact directory `dir` (manifest.json, weights.bin; the library is the one this
// code is linked into, and must be the one built for that artifact). nthreads <= 0: all cores.
pf_model* pf_model_open(const char* dir, int nthreads, char* err, size_t err_len);
int pf_model_num_inputs(const pf_model* m);
int pf_model_num_outputs(const pf_model* m);
// Input or output i in the manifest's order; NULL when i is out of range.
const pf_tensor_info* pf_model_input(const pf_model* m, int i);
const pf_tensor_info* pf_model_output(const pf_model* m, int i);
// One inference: inputs[i] holds pf_model_input(m, i)->bytes, outputs[j] receives
// pf_model_output(m, j)->bytes. Thread-safe (calls on one model are serialised). Returns 0.
int pf_model_run(pf_model* m, const void* const* inputs, void* const* outputs, char* err, size_t err_len);
// The target the library was built for ("host", "android-cpu", ...).
const char* pf_model_target(void);
void pf_model_close(pf_model* m);

#ifdef __cplusplus
}
#endif

// gcc 12.2 miscompile at -O3 -fno-trapping-math with AVX (-mavx, -mavx2, or -march=native on
// an AVX2/AVX-512 host): see README.md in this folder. Reduced from polyfuse's code for
// Where(c >= x, s, Cast(c >= x)) over float[7, 3] (c broadcast along rows), found by the
// differential fuzzer (seed 37006883). The select's values are computed before the select, as
// polyfuse's pf_select of 2026-12-04 and earlier did (`return c ? a : b;`); gcc sinks the load of
// s into the branch that uses it, then vectorises the three rows of a vector group with masked
// loads, all three under the first vector's mask. Built with -DUSE_PF_SELECT -I kernels, it uses
// polyfuse's pf_select from kernels/pf_runtime.h instead, which must come out right.
#include <cstdint>
#include <cstdio>
#ifdef USE_PF_SELECT
#include "pf_runtime.h"
#define select_of_values pf_select
#else
template <class C, class A, class B>
static inline A select_of_values(C c, A a, B b) { return c ? a : b; }
#endif
static void where(float* __restrict out, const float* __restrict s,
                  const float* __restrict c, const float* __restrict x) {
  for (int64_t r = 0; r < 7; ++r)
    for (int64_t k = 0; k < 3; ++k)
      out[k + 3 * r] = select_of_values(c[k] >= x[k + 3 * r], s[k + 3 * r], float(c[k] >= x[k + 3 * r]));
}
// The model's entry point: buffers by pointer table, as polyfuse's pf_run passes them.
__attribute__((noipa)) static void run(void** in, void** out) {
  where((float*)out[0], (const float*)in[2], (const float*)in[1], (const float*)in[0]);
}
int main(int argc, char**) {
  // The fuzzer's data, -inf as -4 (argc: not a compile-time constant).
  float x[21] = {-1.25f, 2, -3, 2.75f, 1, -1.75f, -4, -4, 2, -2.5f, 0.25f, 1.5f, 1, 3, 1.5f, 0.75f, -4, 2, -1.5f, 1.25f, 2.25f};
  float s[21], out[21], c[3] = {-4, -4, 3.5f + argc};
  for (int i = 0; i < 21; ++i) s[i] = 0.5f + i;
  void* in[3] = {x, c, s};
  void* outs[1] = {out};
  run(in, outs);
  int bad = 0;
  for (int i = 0; i < 21; ++i) {
    const float want = c[i % 3] >= x[i] ? s[i] : 0.0f;  // float(false) is 0
    if (out[i] != want && bad++ < 3) printf("out[%d] = %g, want %g\n", i, out[i], want);
  }
  printf("%d wrong\n", bad);
  return bad != 0;
}

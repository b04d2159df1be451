// gcc 12.2 miscompile at -O3 with AVX (-march=x86-64-v3 or -mavx2): see README.md in this folder.
#include <cstdint>
#include <cstdio>
static inline float f(float x) { const float c = x > 88.8f ? 88.8f : x; return x != x ? x : c; }
__attribute__((noinline)) static void concat(float* __restrict out, const float* __restrict a,
                                             const float* __restrict b, int64_t lo, int64_t hi) {
  for (int64_t r = lo; r < hi; ++r)
    for (int64_t k = 0; k < 3; ++k)
      out[k + 3 * r] = f(r < 33 ? a[k + 3 * r] : (r < 66 ? a[k + 3 * r - 99] : b[k + 3 * r - 198]));
}
int main() {
  float a[99], b[21], out[219];
  for (int i = 0; i < 99; ++i) a[i] = 1 + i;
  for (int i = 0; i < 21; ++i) b[i] = 1000 + i;
  concat(out, a, b, 0, 73);
  int bad = 0;
  for (int r = 0; r < 73; ++r)
    for (int k = 0; k < 3; ++k) {
      const float want = f(r < 33 ? a[3 * r + k] : r < 66 ? a[3 * (r - 33) + k] : b[3 * (r - 66) + k]);
      if (out[3 * r + k] != want) {
        if (bad++ < 3) printf("out[%d][%d] = %g, want %g\n", r, k, out[3 * r + k], want);
      }
    }
  printf("%d wrong\n", bad);
  return bad != 0;
}

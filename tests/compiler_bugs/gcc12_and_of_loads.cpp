// gcc 12.2 miscompile at -O3 with AVX-512BW (-mavx512f -mavx512bw, or -march=native on such a
// host): see README.md in this folder. Reduced from polyfuse's code for one ONNX And of two
// bool[65, 7, 1] inputs (bools are stored as uint8_t), found by the differential fuzzer.
#include <cstdint>
#include <cstdio>
__attribute__((noinline)) static void logical_and(uint8_t* __restrict out, const uint8_t* __restrict a,
                                                  const uint8_t* __restrict b, int64_t lo, int64_t hi) {
  for (int64_t r = lo; r < hi; ++r)
    for (int64_t k = 0; k < 7; ++k)
      out[k + 7 * r] = a[k + 7 * r] && b[k + 7 * r];
}
int main() {
  uint8_t a[455], b[455], out[455];
  for (int i = 0; i < 455; ++i) {
    a[i] = i % 5 == 2;
    b[i] = 1;
  }
  logical_and(out, a, b, 0, 65);
  int bad = 0;
  for (int i = 0; i < 455; ++i) {
    const uint8_t want = a[i] && b[i];
    if (out[i] != want && bad++ < 3) printf("out[%d] = %d, want %d\n", i, out[i], want);
  }
  printf("%d wrong\n", bad);
  return bad != 0;
}

// pack_a_test.cpp - the x86 A packing (in-register transposes) against a scalar loop, for the
// panel heights it serves: 4 rows (AVX2 build), 8 rows (AVX-512 build) and 14 (a group of 6 rows,
// the AVX-512 build's earlier panels). All need only AVX2, so this also checks the AVX-512
// build's packing on a CPU without AVX-512.
// Includes pf_gemm.cpp to reach its internal pack_rows_x86.
#include "../pf_gemm.cpp"

#include <cstdio>
#include <vector>

template <int R>
int check(int kc8, int lda) {
  std::vector<float> A((size_t)R * lda);
  for (size_t i = 0; i < A.size(); ++i) A[i] = (float)(i % 9973) * 0.5f - 100.0f;
  const float* rows[R];
  for (int i = 0; i < R; ++i) rows[i] = A.data() + (size_t)i * lda + 3;  // unaligned starts
  const int guard = 64;
  std::vector<float> dst((size_t)kc8 * R + guard, -7.0f);
  pack_rows_x86<R>(rows, kc8, dst.data());
  int bad = 0;
  for (int k = 0; k < kc8; ++k)
    for (int i = 0; i < R; ++i)
      if (dst[(size_t)k * R + i] != rows[i][k]) ++bad;
  for (int g = 0; g < guard; ++g)
    if (dst[(size_t)kc8 * R + g] != -7.0f) ++bad;  // nothing written past the panel
  std::printf("R=%d kc8=%d lda=%d: %d mismatches\n", R, kc8, lda, bad);
  return bad;
}

int main() {
  int bad = 0;
  for (int kc8 : {8, 16, 64, 256})
    for (int lda : {kc8 + 3, 1024 + 5}) bad += check<4>(kc8, lda) + check<8>(kc8, lda) + check<14>(kc8, lda);
  std::printf("%d failures\n", bad);
  return bad != 0;
}

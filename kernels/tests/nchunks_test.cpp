// nchunks_test.cpp - the N chunks of pf_gemm's tiles (NChunks): for every N, thread count, chunk
// cap and block split in a range, the chunks cover columns [0, N) exactly once, start on a panel,
// and none is wider than the widest chunk run() sizes the B packing buffer for. Includes
// pf_gemm.cpp to reach the internal struct.
#include "../pf_gemm.cpp"

#include <cstdio>
#include <vector>

int main() {
  long cases = 0;
  int failures = 0;
  for (int N = 1; N <= 1600; N += (N < 200 ? 1 : 37))
    for (int nt = 1; nt <= 4; ++nt)
      for (int cap = 1; cap <= 40; ++cap)
        for (int only_n = 0; only_n <= 1; ++only_n)
          for (int blocks : {nt, 1}) {  // columns split among the threads, or not (K groups)
          const NChunks ch(N, cap, nt, only_n != 0, blocks);
          const int widest = ch.widest_np() * NR;
          std::vector<int> seen(N, 0);
          bool ok = true;
          for (int c = 0; c < ch.count; ++c) {
            int n0, nc;
            ch.get(c, n0, nc);
            if (nc < 0 || nc > widest || (nc > 0 && (n0 < 0 || n0 + nc > N || n0 % NR != 0))) ok = false;
            for (int j = 0; ok && j < nc; ++j) ++seen[n0 + j];
          }
          for (int j = 0; j < N; ++j) ok = ok && seen[j] == 1;
          ++cases;
          if (!ok && failures++ < 10)
            std::printf("FAIL N=%d nt=%d cap=%d only_n=%d blocks=%d (count %d, widest %d)\n", N, nt, cap, only_n,
                        blocks, ch.count, widest);
        }
  std::printf("%ld cases\n%d failures\n", cases, failures);
  return failures != 0;
}

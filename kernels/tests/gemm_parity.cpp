// gemm_parity.cpp - checks pf_sgemm / pf_sgemm_prepacked against a naive
// double-accumulating reference.
//
//   usage: gemm_parity [--quick] [--max-big N]
//     --quick      small shapes only (for emulators)
//     --max-big N  run only the first N transformer-sized shapes (default 3)
//
// Tolerance (per element):
//   |got - want| <= 16 * 2^-24 * sqrt(K + 1) * (|alpha| * sum_k |a_ik * b_kj| + |beta * c_ij|)
// i.e. a few fp32 ulps times the sqrt(K) growth of rounding error in a length-K
// dot product, relative to the magnitude of the summed terms. A single wrong or
// missing k term is far above this bound.
//
// Each matrix is stored with its last element flush against a PROT_NONE guard
// page (Linux), at an arbitrary 4-byte alignment, so any read past the end of
// A, B or C crashes. Row padding of C (ldc > N) holds a sentinel that must
// survive, and beta == 0 cases pre-fill C with NaN to prove C is write-only.
#include "../pf_gemm.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#define PF_HAVE_GUARD 1
#endif

namespace {

// n floats ending right before an inaccessible page.
class GuardBuf {
 public:
  explicit GuardBuf(size_t n) : n_(n) {
#if PF_HAVE_GUARD
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = (n * sizeof(float) + page - 1) / page * page;
    len_ = bytes + page;
    void* m = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) { perror("mmap"); std::abort(); }
    base_ = static_cast<char*>(m);
    if (mprotect(base_ + bytes, page, PROT_NONE) != 0) { perror("mprotect"); std::abort(); }
    p_ = reinterpret_cast<float*>(base_ + bytes) - n;
#else
    store_.resize(n + 1);
    p_ = store_.data();
#endif
  }
  ~GuardBuf() {
#if PF_HAVE_GUARD
    munmap(base_, len_);
#endif
  }
  GuardBuf(const GuardBuf&) = delete;
  GuardBuf& operator=(const GuardBuf&) = delete;
  float* data() { return p_; }
  size_t size() const { return n_; }

 private:
  size_t n_;
  float* p_ = nullptr;
#if PF_HAVE_GUARD
  char* base_ = nullptr;
  size_t len_ = 0;
#else
  std::vector<float> store_;
#endif
};

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
float urand() {  // uniform in [-1, 1)
  g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
  return (float)((g_rng >> 40) * (1.0 / (1ull << 23)) - 1.0);
}

struct Shape { int M, N, K; };

int g_checks = 0, g_failures = 0;

// A stored matrix: logical rows x cols (of op(X)^T if transposed) with ld.
struct Stored {
  int rows, cols, ld;
  GuardBuf buf;
  Stored(int r, int c, int ld_) : rows(r), cols(c), ld(ld_), buf(r > 0 ? (size_t)(r - 1) * ld_ + c : 0) {}
};

// Store logical X (r x c, row-major dense) into `s`, transposed if `trans`.
void store(const std::vector<float>& X, int r, int c, int trans, Stored& s) {
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < c; ++j) {
      if (!trans) s.buf.data()[(size_t)i * s.ld + j] = X[(size_t)i * c + j];
      else        s.buf.data()[(size_t)j * s.ld + i] = X[(size_t)i * c + j];
    }
}

struct Case { float alpha, beta; bool nan_fill; };

void run_shape(const Shape& sh, int pad, bool big) {
  const int M = sh.M, N = sh.N, K = sh.K;
  std::vector<float> A((size_t)M * K), B((size_t)K * N), C0((size_t)M * N);
  for (auto& x : A) x = urand();
  for (auto& x : B) x = urand();
  for (auto& x : C0) x = urand();

  // Reference product and sum of |terms|, in double.
  std::vector<double> ref((size_t)M * N, 0.0), mag((size_t)M * N, 0.0);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) {
      const double a = A[(size_t)i * K + k];
      const float* b = &B[(size_t)k * N];
      double* r = &ref[(size_t)i * N];
      double* g = &mag[(size_t)i * N];
      for (int j = 0; j < N; ++j) { r[j] += a * b[j]; g[j] += std::fabs(a * b[j]); }
    }

  const Case cases[] = {{1.0f, 0.0f, true}, {0.5f, 1.0f, false}, {-1.25f, 0.75f, false}, {0.0f, 0.5f, false}};
  const float sentinel = 12345.0f;
  const double tol_scale = 16.0 * std::ldexp(1.0, -24) * std::sqrt((double)K + 1.0);

  const int ldc = N + pad;
  Stored Cs(M, N, ldc);

  auto check = [&](const char* what, int tA, int tB, const Case& cs, int nt) {
    ++g_checks;
    int bad = 0;
    double worst = 0;
    int wi = -1, wj = -1;
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < N; ++j) {
        const double c0 = C0[(size_t)i * N + j];
        const double want = cs.alpha * ref[(size_t)i * N + j] + (cs.beta == 0.0f ? 0.0 : cs.beta * c0);
        const double tol = tol_scale * (std::fabs(cs.alpha) * mag[(size_t)i * N + j] + std::fabs(cs.beta * c0)) + 1e-30;
        const double got = Cs.buf.data()[(size_t)i * ldc + j];
        const double err = std::fabs(got - want);
        if (!(err <= tol)) {
          ++bad;
          if (!(err / tol <= worst)) { worst = err / tol; wi = i; wj = j; }
        }
      }
      if (i + 1 < M)
        for (int j = N; j < ldc; ++j)
          if (Cs.buf.data()[(size_t)i * ldc + j] != sentinel) { ++bad; wi = i; wj = j; worst = INFINITY; }
    }
    if (bad) {
      ++g_failures;
      std::printf("FAIL %s M=%d N=%d K=%d transA=%d transB=%d alpha=%g beta=%g%s nthreads=%d pad=%d: "
                  "%d bad elements, worst err/tol=%g at (%d,%d)\n",
                  what, M, N, K, tA, tB, cs.alpha, cs.beta, cs.nan_fill ? " (C=NaN)" : "", nt, pad, bad,
                  worst, wi, wj);
    }
  };

  auto fill_c = [&](const Case& cs) {
    float* c = Cs.buf.data();
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < ldc && (size_t)i * ldc + j < Cs.buf.size(); ++j)
        c[(size_t)i * ldc + j] = j >= N ? sentinel : cs.nan_fill ? std::numeric_limits<float>::quiet_NaN()
                                                                 : C0[(size_t)i * N + j];
  };

  const int nthreads[] = {1, 2};
  // Big shapes are expensive under emulation / the portable kernel: run only
  // beta=0 (NaN-filled C) and the general alpha/beta case, threaded, plus one
  // single-threaded non-transposed run.
  auto skip = [&](int ci, int nt, int tA, int tB) {
    if (!big) return false;
    if (ci != 0 && ci != 2) return true;
    return nt == 1 && (tA || tB || ci != 0);
  };
  for (int tA = 0; tA < 2; ++tA) {
    Stored As(tA ? K : M, tA ? M : K, (tA ? M : K) + pad);
    store(A, M, K, tA, As);
    for (int tB = 0; tB < 2; ++tB) {
      Stored Bs(tB ? N : K, tB ? K : N, (tB ? K : N) + pad);
      store(B, K, N, tB, Bs);
      for (int ci = 0; ci < 4; ++ci) {
        const Case& cs = cases[ci];
        for (int nt : nthreads) {
          if (skip(ci, nt, tA, tB)) continue;
          fill_c(cs);
          pf_sgemm(M, N, K, cs.alpha, As.buf.data(), As.ld, tA, Bs.buf.data(), Bs.ld, tB, cs.beta,
                   Cs.buf.data(), ldc, nt);
          check("pf_sgemm", tA, tB, cs, nt);
        }
      }
      // Pre-packed B (packed from either layout of B).
      const size_t psz = pf_sgemm_packed_b_size(K, N);
      GuardBuf packed(psz);
      pf_sgemm_pack_b(K, N, Bs.buf.data(), Bs.ld, tB, packed.data());
      for (int ci = 0; ci < 4; ++ci) {
        const Case& cs = cases[ci];
        for (int nt : nthreads) {
          if (skip(ci, nt, tA, tB)) continue;
          fill_c(cs);
          pf_sgemm_prepacked(M, N, K, cs.alpha, As.buf.data(), As.ld, tA, packed.data(), cs.beta,
                             Cs.buf.data(), ldc, nt);
          check("pf_sgemm_prepacked", tA, tB, cs, nt);
          // With an epilogue that negates its block: every element once, after its last update.
          fill_c(cs);
          std::vector<std::atomic<int>> seen((size_t)M * N);
          std::atomic<int> outside{0};
          float* c = Cs.buf.data();
          auto negate = [&](int r0, int r1, int c0, int c1) {
            if (r0 < 0 || r1 > M || c0 < 0 || c1 > N || r0 >= r1 || c0 >= c1) outside.fetch_add(1);
            for (int i = std::max(r0, 0); i < std::min(r1, M); ++i)
              for (int j = std::max(c0, 0); j < std::min(c1, N); ++j) {
                seen[(size_t)i * N + j].fetch_add(1);
                c[(size_t)i * ldc + j] = -c[(size_t)i * ldc + j];
              }
          };
          const pf_epilogue ep = pf_epilogue_of(negate);
          pf_sgemm_prepacked(M, N, K, cs.alpha, As.buf.data(), As.ld, tA, packed.data(), cs.beta,
                             Cs.buf.data(), ldc, nt, &ep);
          int wrong = outside.load();
          for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
              wrong += seen[(size_t)i * N + j].load() != 1;
              c[(size_t)i * ldc + j] = -c[(size_t)i * ldc + j];
            }
          if (wrong) {
            ++g_failures;
            std::printf("FAIL epilogue M=%d N=%d K=%d nthreads=%d: %d elements not seen exactly once\n", M, N, K,
                        nt, wrong);
          }
          check("pf_sgemm_prepacked with epilogue", tA, tB, cs, nt);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int max_big = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--max-big" && i + 1 < argc) {
      max_big = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--max-big N]\n", argv[0]);
      return 2;
    }
  }
  if (quick) max_big = 0;
  std::printf("pf_gemm parity: kernel=%s mode=%s\n", pf_sgemm_kernel_name(), quick ? "quick" : "full");

  const int sizes[] = {1, 2, 13, 17, 31, 64, 65, 128, 129};
  const int nsizes = sizeof(sizes) / sizeof(sizes[0]);
  std::vector<Shape> shapes;
  for (int s : sizes)
    if (!quick || s != 128) shapes.push_back({s, s, s});  // quick: skip one big cube
  // Mixed shapes: every size appears in every position with varied partners.
  for (int i = 0; i < nsizes; ++i) {
    const int a = sizes[i], b = sizes[(i * 4 + 3) % nsizes], c = sizes[(i * 7 + 5) % nsizes];
    if (quick && (size_t)a * b * c > 40000) continue;
    shapes.push_back({a, b, c});
    shapes.push_back({b, c, a});
    shapes.push_back({c, a, b});
  }
  shapes.push_back({5, 7, 0});                       // K == 0: C = beta * C
  shapes.push_back({1, quick ? 100 : 777, 300});     // GEMV-like row, N tail, uneven K blocks
  shapes.push_back({quick ? 37 : 300, 41, quick ? 70 : 520});  // several MC / K blocks
  shapes.push_back({20, 130, 3100});  // 5+ K blocks; 2 threads: K groups where N gives 8+ chunks (NEON, portable)

  int idx = 0;
  for (const Shape& sh : shapes) run_shape(sh, (idx++ % 3 == 1) ? 3 : 0, false);
  // Deep K: several row super-blocks of shared packed A, many K blocks.
  if (!quick) run_shape({300, 20, 8192}, 3, true);
  // K groups (2 threads) over two row super-blocks.
  if (!quick) run_shape({350, 300, 4096}, 3, true);

  // Transformer shapes (seq 128, d_model 768, d_ff 3072).
  const Shape big[] = {{128, 768, 768}, {128, 3072, 768}, {128, 768, 3072}};
  for (int i = 0; i < 3 && i < max_big; ++i) run_shape(big[i], 0, true);

  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures ? 1 : 0;
}

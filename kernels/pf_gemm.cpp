// pf_gemm.cpp - Goto/BLIS-style SGEMM for polyfuse.
//
// Classic loop nest (see run() for how it is split across threads):
//
//   for jc in N step NC                      (B block: KC x NC, L2/L3)
//     for pc in K step KC                    (rank-KC update)
//       pack B[pc:pc+kc, jc:jc+nc] -> Bp     (NR-wide panels, zero padded)
//       for ic in M step MC                  (A block: MC x KC, lives in L2)
//         (A[ic:ic+mc, pc:pc+kc] packed)     (MR-tall panels, zero padded)
//         for jr in nc step NR               (B micro-panel: KC x NR, L1 or L2)
//           for ir in mc step MR
//             micro-kernel: C[MR x NR] (+)= Ap_panel @ Bp_panel
//
// Packed layouts (k is the slow index inside a panel):
//   A panel for rows i0..i0+MR: Ap[k*MR + i]  (rows past M are zeros)
//   B panel for cols j0..j0+NR: Bp[k*NR + j]  (cols past N are zeros)
// Zero padding lets the micro-kernel always compute a full MR x NR tile. At the
// bottom edge (mr < MR valid rows) the x86 kernels have shorter variants that
// write straight to C; other edge tiles are computed into a small stack buffer
// and only the valid part is copied, so nothing outside the logical matrices
// is ever read or written.
#include "pf_gemm.h"
#include "pf_memory.h"
#include "pf_pool.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstddef>
#include <unistd.h>
#include <new>
#include <string>
#include <utility>

#if defined(__AVX512F__)
#define PF_GEMM_AVX512 1
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__)
#define PF_GEMM_AVX2 1
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
// vfmaq_laneq_f32 is AArch64-only; 32-bit ARM uses the portable kernel.
#define PF_GEMM_NEON 1
#include <arm_neon.h>
#endif  // else: portable C++ kernel

// Loop-unrolling hints (full unrolling keeps accumulator arrays in registers).
#if defined(__clang__)
#define PF_UNROLL_FULL _Pragma("unroll")
#define PF_UNROLL_4 _Pragma("unroll 4")
#define PF_UNROLL_2 _Pragma("unroll 2")
#elif defined(__GNUC__)
#define PF_UNROLL_FULL _Pragma("GCC unroll 64")
#define PF_UNROLL_4 _Pragma("GCC unroll 4")
#define PF_UNROLL_2 _Pragma("GCC unroll 2")
#else
#define PF_UNROLL_FULL
#define PF_UNROLL_4
#define PF_UNROLL_2
#endif

namespace {

using idx = std::ptrdiff_t;

// Where a micro-kernel reads its A rows: element (i, k) of the tile at p[i * rs + k * cs].
// Packed panels: rs = 1, cs = MR. Read in place (x86 only, see run()): row-major A gives
// rs = lda, cs = 1; transposed A gives rs = 1, cs = lda.
struct APanel {
  const float* p;
  idx rs, cs;
};

// B lines a micro-kernel call prefetches for the calls after it (see macro_kernel): n_near lines
// from `near` into L1, n_far from `far` into L2. The x86 kernels issue them one or two per k step
// inside their loop; the others all at once before it.
struct Prefetch {
  const char* near;
  int n_near;
  const char* far;
  int n_far;
};

// All at once (the NEON and portable kernels).
inline void prefetch_all(const Prefetch& pf) {
  for (int q = 0; q < pf.n_near; ++q) __builtin_prefetch(pf.near + 64 * q, 0, 3);
  for (int q = 0; q < pf.n_far; ++q) __builtin_prefetch(pf.far + 64 * q, 0, 2);
}

// ---------------------------------------------------------------------------
// Blocking parameters.
//   MR x NR : register tile (accumulators fill most of the register file).
//   KC      : most depth of a rank-k update (kc_max(): chosen at run time, see there).
//   MC      : A block MC x KC stays in L2 (multiple of MR).
//   NC      : widest N chunk (multiple of NR). A is packed once per row
//             super-block (see run()), not per NC block, so NC is kept small
//             enough that a freshly packed KC x NC B chunk is still in L2
//             when the micro-kernels read it.
// ---------------------------------------------------------------------------
#if PF_GEMM_AVX512
// 24 zmm accumulators (8 rows x 3 vectors) + 3 B vectors + 1 broadcast = 28. Per k: 24 FMAs for
// 3 loads and 8 broadcasts (14x32: 28 FMAs for 2 loads, 14 broadcasts and, reading A in place, 6
// row offsets reloaded from the stack: 14 rows of strides do not fit in the integer registers).
// M = 128 is 16 panels of 8, not 9 of 14 and a 2-row edge. Against 14x32 (KC 192), medians of
// 5-6 alternating runs of pre-packed GEMMs on the Xeon (AVX-512) of issue 21: 2 threads +1 to
// +36% on the 8 BERT and MobileBERT shapes of benchmarks/bench_gemm.py's kind (128x768x768
// 177 -> 197, 128x3072x768 183 -> 205, 128x2304x768 141 -> 192 GFLOP/s), 1 thread -1 to +20%.
// KC: see kc_max().
constexpr int MR = 8, NR = 48, KC = 192, MC = 168, NC = 768;
constexpr const char* kKernelName = "avx512-8x48";
#elif PF_GEMM_AVX2
// 12 ymm accumulators (4 rows x 3 vectors) + 3 B vectors + 1 broadcast = 16.
// B micro-panel 256*24*4 = 24 KiB (L1d 32 KiB), A block <= 144*256*4 = 144 KiB,
// B chunk <= 256*384*4 = 384 KiB (znver3 L2: 512 KiB; tuned by measurement).
// 4x24 rather than 6x16: 4 broadcasts and 3 B loads per 12 FMAs instead of 6 and 2. In L1 on
// znver3 it ran at 92-94% of the FMA peak against 89-91%; whole GEMMs at 2 threads +1 to +5%
// (128x768x3072, 128x3072x768, 128x768x768; 1 thread +5%), the same at 128x512x512. Narrow N
// pays for 24-column panels: N = 32 (24 + an 8-column edge tile) ran 5-10% slower on 2 threads.
// bench_vs_ort with it: tiny BERT 1.93 ms, MobileBERT 46.8, DistilBERT 84.8, BERT-base 171.3,
// within the spread of this host's runs with 6x16 (1.96-2.11, 45-53, 84-87, 163-180 ms). The
// AVX2 figures quoted further down in this file were measured with the 6x16 kernel.
constexpr int MR = 4, NR = 24, KC = 256, MC = 144, NC = 384;
constexpr const char* kKernelName = "avx2-4x24";
#elif PF_GEMM_NEON
// 24 q accumulators (8 rows x 3 vectors) + 2 A vectors + 3 B vectors = 29.
constexpr int MR = 8, NR = 12, KC = 256, MC = 128, NC = 384;
constexpr const char* kKernelName = "neon-8x12";
#else
constexpr int MR = 4, NR = 16, KC = 256, MC = 128, NC = 512;
constexpr const char* kKernelName = "portable-4x16";
#endif
static_assert(MC % MR == 0 && NC % NR == 0, "blocking must be tile multiples");
constexpr int kFarPanels = 2;  // see macro_kernel

inline idx round_up(idx x, idx m) { return (x + m - 1) / m * m; }
inline idx ceil_div(idx x, idx m) { return (x + m - 1) / m; }

// The deepest K block: KC above, except for the AVX-512 kernel on a CPU whose L1d is under
// 48 KiB. On the Xeon of issue 21 (48 KiB L1d) the 192-deep B micro-panel (36 KiB) stays in L1
// while MR rows sweep it, and 256 against 192 gave -20 to +19% by shape, no steady winner. With
// 32 KiB (Zen 4) no depth that amortises the C tile's loads and stores fits, the panel streams
// from L2 whatever the depth, and deeper blocks mean fewer passes over C. On the EPYC (Zen 4) of
// issue 21, alternating pre-packed GEMMs, medians: 512 against 192, 2 threads +1.5 to +7.5% on
// BERT's and MobileBERT's shapes (128x3072x768 +2 to +6%, 128x128x512 +7%), 1 thread +1 to +3%;
// 768 against 512 (BERT's K = 768 in one block, C written once), 2 threads +1 to +1.5% at K = 768
// in three runs of 11-21 blocks, +0.5% at K = 3072, 1 thread +0.5 to +2%; 128 (a panel that
// fits) against 192: -1 to -4%. 768 against 192 in one run (a slow phase): +2 to +11% on BERT's
// shapes, +6 to +24% on MobileBERT's 128x128x512 and 128x512x384. PF_GEMM_KC=n (16..4096) forces n
// (tests, measurements).
// The packed-B layout depends on it, so the kernel name says it (packed weights are checked
// against the name before use).
int kc_max() {
  static const int kc = [] {
    const char* v = std::getenv("PF_GEMM_KC");
    const int forced = v ? std::atoi(v) : 0;
    if (forced >= 16 && forced <= 4096) return forced;
#if PF_GEMM_AVX512 && defined(_SC_LEVEL1_DCACHE_SIZE)
    const long l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    if (l1d > 0 && l1d < 48 * 1024) return 768;
#endif
    return KC;
  }();
  return kc;
}

// K is cut into equal-ish blocks of at most kc_max() so the last block is not tiny.
// Shared by the packed-B layout and the driver, so both must use this.
inline int k_block(int K) {
  const int nb = (int)ceil_div(K, kc_max());
  return (int)ceil_div(K, nb);
}

// ---------------------------------------------------------------------------
// Micro-kernels: C[MR x NR] = alpha * (Ap panel @ Bp panel) + beta * C.
// beta == 0 means C is not read. a: kc*MR floats, b: kc*NR floats.
// ---------------------------------------------------------------------------
#if PF_GEMM_AVX512 || PF_GEMM_AVX2

#if PF_GEMM_AVX512
using vec = __m512;
constexpr int VL = 16;
inline vec vzero() { return _mm512_setzero_ps(); }
inline vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, vec x) { _mm512_storeu_ps(p, x); }
inline vec vbcast(const float* p) { return _mm512_set1_ps(*p); }
inline vec vset1(float x) { return _mm512_set1_ps(x); }
inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec vmul(vec a, vec b) { return _mm512_mul_ps(a, b); }
inline vec vadd(vec a, vec b) { return _mm512_add_ps(a, b); }
#else
using vec = __m256;
constexpr int VL = 8;
inline vec vzero() { return _mm256_setzero_ps(); }
inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, vec x) { _mm256_storeu_ps(p, x); }
inline vec vbcast(const float* p) { return _mm256_broadcast_ss(p); }
inline vec vset1(float x) { return _mm256_set1_ps(x); }
inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec vmul(vec a, vec b) { return _mm256_mul_ps(a, b); }
inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
#endif
constexpr int NV = NR / VL;  // vectors per tile row

// ROWS <= MR rows and the first COLS <= NV vectors of each row of the tile are computed (the
// A panel stride stays MR, the B panel stride NR), so the last, partial row panel of M and
// column panel of N don't pay for their zero padding.
template <int ROWS, int COLS>
void ukernel_tile(int kc, const APanel& ap, const float* __restrict b, float* __restrict c, idx ldc, float alpha,
                  float beta, const Prefetch& pf) {
  const float* __restrict a = ap.p;
  const idx rs = ap.rs, cs = ap.cs;
  // Accumulator array; every loop over it is fully unrolled so it lives in
  // registers (checked in the generated assembly: no spills in the k loop).
  vec acc[ROWS][COLS];
  PF_UNROLL_FULL for (int i = 0; i < ROWS; ++i) PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) acc[i][v] = vzero();
  PF_UNROLL_FULL for (int i = 0; i < ROWS; ++i) {  // the row's first and last line of C
    _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + i * ldc + COLS * VL - 1), _MM_HINT_T0);
  }

  int k = 0;
  const char *near = pf.near, *far = pf.far;
  int n_near = pf.n_near, n_far = pf.n_far;
  if constexpr (ROWS * COLS <= 4) {
    prefetch_all(pf);  // edge tiles: rare
    n_near = n_far = 0;
    // 4 accumulators or fewer cannot cover FMA latency x FMA ports (4 cycles x 2 on current
    // x86 cores): even and odd k go to separate accumulators, summed after the loop. In L1 on
    // znver3 (AVX2, 6x16 kernel): 2 rows 50 -> 69-88 GFLOP/s, 1 row 27 -> 49-53. Not for 6
    // accumulators: 12 accumulators + 4 B vectors spilled on AVX2 (76 -> 42).
    vec odd[ROWS][COLS];
    PF_UNROLL_FULL for (int i = 0; i < ROWS; ++i) PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) odd[i][v] = vzero();
    PF_UNROLL_2
    for (; k + 1 < kc; k += 2) {
      vec be[COLS], bo[COLS];
      PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) {
        be[v] = vload(b + v * VL);
        bo[v] = vload(b + NR + v * VL);
      }
      PF_UNROLL_FULL for (int i = 0; i < ROWS; ++i) {
        const vec ai = vbcast(a + i * rs), aj = vbcast(a + cs + i * rs);
        PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) {
          acc[i][v] = vfma(ai, be[v], acc[i][v]);
          odd[i][v] = vfma(aj, bo[v], odd[i][v]);
        }
      }
      a += 2 * cs;
      b += 2 * NR;
    }
    PF_UNROLL_FULL for (int i = 0; i < ROWS; ++i) PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) acc[i][v] = vadd(acc[i][v], odd[i][v]);
  }
  // The B lines macro_kernel hands this call go out a line or two per k step, under the FMAs.
  // Issued all at once before the call (50-100 lines), they filled the L1 miss buffers: perf on
  // the Zen 4 of issue 21 put 2.6% (BERT-base) to 4.2% (MobileBERT) of all cycles on those loops.
  // Spread, with pre-packed weights streaming from memory (alternating in one process): 2 threads
  // +2 to +7% on BERT's four shapes (128x768x3072: 184 -> 202 GFLOP/s), 1 thread +16 to +19% on
  // MobileBERT's FFN pair's 64-row blocks (64x512x128, 64x128x512). Splitting the loop so the
  // steps past the last prefetch run without the two compares: -0.6 to -1.9% at 1 thread on
  // BERT's four shapes (medians of 9 alternating blocks, Zen 4); not kept.
  PF_UNROLL_4
  for (; k < kc; ++k) {
    if (k < n_near) _mm_prefetch(near + 64 * k, _MM_HINT_T0);
    if (k < n_far) _mm_prefetch(far + 64 * k, _MM_HINT_T1);
    vec bv[COLS];
    PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) bv[v] = vload(b + v * VL);
    PF_UNROLL_FULL for (int i = 0; i < ROWS; ++i) {
      const vec ai = vbcast(a + i * rs);
      PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) acc[i][v] = vfma(ai, bv[v], acc[i][v]);
    }
    a += cs;
    b += NR;
  }
  for (int q = kc; q < n_near; ++q) _mm_prefetch(near + 64 * q, _MM_HINT_T0);
  for (int q = kc; q < n_far; ++q) _mm_prefetch(far + 64 * q, _MM_HINT_T1);

  const vec va = vset1(alpha);
  if (beta == 0.0f) {
    PF_UNROLL_FULL for (int i = 0; i < ROWS; ++i) PF_UNROLL_FULL for (int v = 0; v < COLS; ++v)
      vstore(c + i * ldc + v * VL, vmul(va, acc[i][v]));
  } else {
    const vec vb = vset1(beta);
    PF_UNROLL_FULL for (int i = 0; i < ROWS; ++i) PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) {
      float* ci = c + i * ldc + v * VL;
      vstore(ci, vfma(va, acc[i][v], vmul(vb, vload(ci))));
    }
  }
}

using kernel_fn = void (*)(int, const APanel&, const float*, float*, idx, float, float, const Prefetch&);
template <int R, int... V>
constexpr std::array<kernel_fn, NV> row_kernels(std::integer_sequence<int, V...>) {
  return {{&ukernel_tile<R, V + 1>...}};
}
template <int... R>
constexpr std::array<std::array<kernel_fn, NV>, MR> make_kernels(std::integer_sequence<int, R...>) {
  return {{row_kernels<R + 1>(std::make_integer_sequence<int, NV>{})...}};
}
constexpr std::array<std::array<kernel_fn, NV>, MR> kKernels = make_kernels(std::make_integer_sequence<int, MR>{});

// The first mr rows and nv vectors of columns of a tile (the others are neither read nor written).
constexpr bool kPartialRows = true;
constexpr int kColStep = VL;
inline void ukernel_part(int mr, int nv, int kc, const APanel& a, const float* b, float* c, idx ldc, float alpha,
                         float beta, const Prefetch& pf) {
  kKernels[mr - 1][nv - 1](kc, a, b, c, ldc, alpha, beta, pf);
}

#elif PF_GEMM_NEON

// The first COLS vectors (4 columns each) of an MR x NR tile, A packed: an N edge of 8 columns
// (MobileBERT's 128 and 512 are 12k + 8) runs as an 8x8 tile instead of a padded 8x12 one
// computed into scratch and copied, as the x86 kernels' partial tiles do.
template <int COLS>
void ukernel_cols(int kc, const float* __restrict a, const float* __restrict b, float* __restrict c, idx ldc,
                  float alpha, float beta) {
  float32x4_t acc[MR][COLS];
  PF_UNROLL_FULL for (int i = 0; i < MR; ++i) PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) acc[i][v] = vdupq_n_f32(0.0f);

  for (int k = 0; k < kc; ++k) {
    const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);  // rows 0-3, 4-7
    float32x4_t bv[COLS];
    PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) bv[v] = vld1q_f32(b + 4 * v);
    // The lane index must be a literal, hence the explicit rows.
#define PF_NEON_ROW(i, av, lane) \
    PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) acc[i][v] = vfmaq_laneq_f32(acc[i][v], bv[v], av, lane);
    PF_NEON_ROW(0, a0, 0) PF_NEON_ROW(1, a0, 1) PF_NEON_ROW(2, a0, 2) PF_NEON_ROW(3, a0, 3)
    PF_NEON_ROW(4, a1, 0) PF_NEON_ROW(5, a1, 1) PF_NEON_ROW(6, a1, 2) PF_NEON_ROW(7, a1, 3)
#undef PF_NEON_ROW
    a += MR;
    b += NR;
  }

  const float32x4_t va = vdupq_n_f32(alpha);
  if (beta == 0.0f) {
    PF_UNROLL_FULL for (int i = 0; i < MR; ++i) {
      PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) vst1q_f32(c + i * ldc + 4 * v, vmulq_f32(va, acc[i][v]));
    }
  } else {
    const float32x4_t vb = vdupq_n_f32(beta);
    PF_UNROLL_FULL for (int i = 0; i < MR; ++i) {
      PF_UNROLL_FULL for (int v = 0; v < COLS; ++v) {
        float* p = c + i * ldc + 4 * v;
        vst1q_f32(p, vfmaq_f32(vmulq_f32(vb, vld1q_f32(p)), va, acc[i][v]));
      }
    }
  }
}
static_assert(NR == 12, "ukernel_part below dispatches 1-3 vectors of 4 columns");

// Whole rows (A is packed, zero padded to MR), the first nv vectors of columns.
constexpr bool kPartialRows = false;
constexpr int kColStep = 4;
inline void ukernel_part(int, int nv, int kc, const APanel& a, const float* b, float* c, idx ldc, float alpha,
                         float beta, const Prefetch& pf) {
  prefetch_all(pf);
  if (nv == 3) ukernel_cols<3>(kc, a.p, b, c, ldc, alpha, beta);
  else if (nv == 2) ukernel_cols<2>(kc, a.p, b, c, ldc, alpha, beta);
  else ukernel_cols<1>(kc, a.p, b, c, ldc, alpha, beta);
}

#else  // portable: plain loops over a small local tile; auto-vectorizable.

inline void ukernel(int kc, const float* __restrict a, const float* __restrict b,
                    float* __restrict c, idx ldc, float alpha, float beta) {
  float acc[MR][NR] = {};
  for (int k = 0; k < kc; ++k) {
    // Copying the B row into a local first lets GCC keep acc in vector
    // registers (measured ~2x faster at -O3 than reading b[] directly).
    float bv[NR];
    for (int j = 0; j < NR; ++j) bv[j] = b[j];
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * bv[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.0f) {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

#endif

#if !(PF_GEMM_AVX512 || PF_GEMM_AVX2 || PF_GEMM_NEON)
// The portable kernel reads A packed (zero-padded to MR rows) and computes the whole MR x NR tile:
// edge tiles go through the scratch-tile path.
constexpr bool kPartialRows = false;
constexpr int kColStep = NR;
inline void ukernel_part(int, int, int kc, const APanel& a, const float* b, float* c, idx ldc, float alpha,
                         float beta, const Prefetch& pf) {
  prefetch_all(pf);
  ukernel(kc, a.p, b, c, ldc, alpha, beta);
}
#endif

// ---------------------------------------------------------------------------
// Packing. Only elements inside the logical matrices are read.
// ---------------------------------------------------------------------------

#if PF_GEMM_AVX512 || PF_GEMM_AVX2
// In-register 8x8 transpose: t[j] becomes column j of the rows t[0..7].
inline void transpose8x8(__m256 t[8]) {
  const __m256 a0 = _mm256_unpacklo_ps(t[0], t[1]), a1 = _mm256_unpackhi_ps(t[0], t[1]);
  const __m256 a2 = _mm256_unpacklo_ps(t[2], t[3]), a3 = _mm256_unpackhi_ps(t[2], t[3]);
  const __m256 a4 = _mm256_unpacklo_ps(t[4], t[5]), a5 = _mm256_unpackhi_ps(t[4], t[5]);
  const __m256 a6 = _mm256_unpacklo_ps(t[6], t[7]), a7 = _mm256_unpackhi_ps(t[6], t[7]);
  const __m256 b0 = _mm256_shuffle_ps(a0, a2, 0x44), b1 = _mm256_shuffle_ps(a0, a2, 0xEE);
  const __m256 b2 = _mm256_shuffle_ps(a1, a3, 0x44), b3 = _mm256_shuffle_ps(a1, a3, 0xEE);
  const __m256 b4 = _mm256_shuffle_ps(a4, a6, 0x44), b5 = _mm256_shuffle_ps(a4, a6, 0xEE);
  const __m256 b6 = _mm256_shuffle_ps(a5, a7, 0x44), b7 = _mm256_shuffle_ps(a5, a7, 0xEE);
  t[0] = _mm256_permute2f128_ps(b0, b4, 0x20); t[4] = _mm256_permute2f128_ps(b0, b4, 0x31);
  t[1] = _mm256_permute2f128_ps(b1, b5, 0x20); t[5] = _mm256_permute2f128_ps(b1, b5, 0x31);
  t[2] = _mm256_permute2f128_ps(b2, b6, 0x20); t[6] = _mm256_permute2f128_ps(b2, b6, 0x31);
  t[3] = _mm256_permute2f128_ps(b3, b7, 0x20); t[7] = _mm256_permute2f128_ps(b3, b7, 0x31);
}

// dst[k * R + i] = rows[i][k] for k < kc8 (a multiple of 8), R full rows: 8 k at a time as
// 8x8 transposes of row groups, a last group of 6 rows padded with repeats of its last row.
template <int R>
void pack_rows_x86(const float* const* rows, int kc8, float* dst) {
  static_assert(R % 8 == 6 || R % 8 == 0, "row groups of 8 and at most one of 6");
  constexpr int G = (R + 7) / 8;
  for (int k = 0; k < kc8; k += 8, dst += 8 * R) {
    __m256 t[G][8];
    PF_UNROLL_FULL for (int g = 0; g < G; ++g) {
      PF_UNROLL_FULL for (int i = 0; i < 8; ++i) t[g][i] = _mm256_loadu_ps(rows[std::min(8 * g + i, R - 1)] + k);
      transpose8x8(t[g]);
    }
    // Column j of group g goes to dst[j * R + 8 g]. The 6-row group's 8-wide store spills two
    // floats into column j + 1's group 0, which is stored next; its last column is stored as 4 + 2.
    PF_UNROLL_FULL for (int j = 0; j < 8; ++j) {
      PF_UNROLL_FULL for (int g = 0; g < G; ++g) {
        float* d = dst + j * R + 8 * g;
        if (R % 8 == 0 || g + 1 < G || j + 1 < 8) {
          _mm256_storeu_ps(d, t[g][j]);
        } else {
          _mm_storeu_ps(d, _mm256_castps256_ps128(t[g][j]));
          _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(t[g][j], 1));
        }
      }
    }
  }
}

// The same for 4 rows: one 4x4 transpose per 128-bit lane (k to k + 3, k + 4 to k + 7).
template <>
inline void pack_rows_x86<4>(const float* const* rows, int kc8, float* dst) {
  for (int k = 0; k < kc8; k += 8, dst += 32) {
    const __m256 r0 = _mm256_loadu_ps(rows[0] + k), r1 = _mm256_loadu_ps(rows[1] + k);
    const __m256 r2 = _mm256_loadu_ps(rows[2] + k), r3 = _mm256_loadu_ps(rows[3] + k);
    const __m256 a0 = _mm256_unpacklo_ps(r0, r1), a1 = _mm256_unpackhi_ps(r0, r1);
    const __m256 a2 = _mm256_unpacklo_ps(r2, r3), a3 = _mm256_unpackhi_ps(r2, r3);
    const __m256 c0 = _mm256_shuffle_ps(a0, a2, 0x44), c1 = _mm256_shuffle_ps(a0, a2, 0xEE);  // k, k+1 | k+4, k+5
    const __m256 c2 = _mm256_shuffle_ps(a1, a3, 0x44), c3 = _mm256_shuffle_ps(a1, a3, 0xEE);  // k+2, k+3 | k+6, k+7
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(c0, c1, 0x20));
    _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(c2, c3, 0x20));
    _mm256_storeu_ps(dst + 16, _mm256_permute2f128_ps(c0, c1, 0x31));
    _mm256_storeu_ps(dst + 24, _mm256_permute2f128_ps(c2, c3, 0x31));
  }
}

// dst[k * NR + j] = cols[j][k] for k < kc8 (a multiple of 8) and the first 8 * groups columns of a
// transposed B's panel, 8 columns x 8 k at a time as 8x8 transposes. Attention's scores read K
// transposed, packed per call: K of a BERT head (128 x 64) took 10 us with the scalar loop, as
// long as the product after it; 4.5 us with full panels done so, 3.4 with the edge panel too.
inline void pack_cols_x86(const float* const* cols, int groups, int kc8, float* dst) {
  static_assert(NR % 8 == 0, "column groups of 8");
  for (int k = 0; k < kc8; k += 8, dst += 8 * NR) {
    for (int g = 0; g < groups; ++g) {
      __m256 t[8];
      PF_UNROLL_FULL for (int j = 0; j < 8; ++j) t[j] = _mm256_loadu_ps(cols[8 * g + j] + k);
      transpose8x8(t);  // t[kk]: columns 8g..8g+7 at k + kk
      PF_UNROLL_FULL for (int kk = 0; kk < 8; ++kk) _mm256_storeu_ps(dst + kk * NR + 8 * g, t[kk]);
    }
  }
}
#endif

// Ap <- op(A)[i0:i0+mc, k0:k0+kc] as ceil(mc/MR) panels of kc*MR floats.
void pack_a(const float* A, idx lda, int transA, int i0, int mc, int k0, int kc, float* dst) {
  for (int ip = 0; ip < mc; ip += MR, dst += (idx)MR * kc) {
    const int mr = std::min(MR, mc - ip);
    if (!transA) {  // op(A)(i,k) = A[i*lda + k]: MR row streams, each contiguous in k
      const float* rows[MR];
      for (int i = 0; i < MR; ++i) rows[i] = A + (idx)(i0 + ip + std::min(i, mr - 1)) * lda + k0;
      if (mr == MR) {
        int k = 0;
#if PF_GEMM_AVX512 || PF_GEMM_AVX2
        k = kc / 8 * 8;
        pack_rows_x86<MR>(rows, k, dst);
#endif
        for (; k < kc; ++k)
          for (int i = 0; i < MR; ++i) dst[(idx)k * MR + i] = rows[i][k];
      } else {
        for (int k = 0; k < kc; ++k)
          for (int i = 0; i < MR; ++i) dst[(idx)k * MR + i] = i < mr ? rows[i][k] : 0.0f;
      }
    } else {  // op(A)(i,k) = A[k*lda + i]: each k gives MR contiguous floats
      for (int k = 0; k < kc; ++k) {
        const float* src = A + (idx)(k0 + k) * lda + i0 + ip;
        float* d = dst + (idx)k * MR;
        if (mr == MR) {
          for (int i = 0; i < MR; ++i) d[i] = src[i];  // fixed size: inlined vector copy
        } else {
          for (int i = 0; i < MR; ++i) d[i] = i < mr ? src[i] : 0.0f;
        }
      }
    }
  }
}

// Bp <- op(B)[k0:k0+kc, j0:j0+nc] as ceil(nc/NR) panels of kc*NR floats.
void pack_b(const float* B, idx ldb, int transB, int k0, int kc, int j0, int nc, float* dst) {
  for (int jp = 0; jp < nc; jp += NR, dst += (idx)NR * kc) {
    const int nr = std::min(NR, nc - jp);
    if (!transB) {  // op(B)(k,j) = B[k*ldb + j]: each k gives NR contiguous floats
      const float* src = B + (idx)k0 * ldb + j0 + jp;
      if (nr == NR) {
        for (int k = 0; k < kc; ++k, src += ldb)
          for (int j = 0; j < NR; ++j) dst[(idx)k * NR + j] = src[j];  // inlined vector copy
      } else {
        for (int k = 0; k < kc; ++k, src += ldb)
          for (int j = 0; j < NR; ++j) dst[(idx)k * NR + j] = j < nr ? src[j] : 0.0f;
      }
    } else {  // op(B)(k,j) = B[j*ldb + k]: NR column streams, each contiguous in k
      const float* cols[NR];
      for (int j = 0; j < NR; ++j) cols[j] = B + (idx)(j0 + jp + std::min(j, nr - 1)) * ldb + k0;
      int k = 0, j8 = 0;  // [0, k) x [0, j8) packed by transposes
#if PF_GEMM_AVX512 || PF_GEMM_AVX2
      k = kc / 8 * 8;
      j8 = nr / 8 * 8;
      pack_cols_x86(cols, j8 / 8, k, dst);
#endif
      for (int kk = 0; kk < k; ++kk)
        for (int j = j8; j < NR; ++j) dst[(idx)kk * NR + j] = j < nr ? cols[j][kk] : 0.0f;
      for (; k < kc; ++k)
        for (int j = 0; j < NR; ++j) dst[(idx)k * NR + j] = j < nr ? cols[j][k] : 0.0f;
    }
  }
}

// ---------------------------------------------------------------------------
// Thread-local scratch that only grows (pf_memory.h): from 1 MiB up in transparent huge
// pages. The packed A of a K = 3072 GEMM is 1.5 MiB, and 128x768x3072 at 2 threads ran 1-6%
// faster with it (AVX2, znver3).
// ---------------------------------------------------------------------------
struct Scratch {
  float* p = nullptr;
  size_t cap = 0;  // floats
  ~Scratch() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = static_cast<float*>(pf_alloc_large(n * sizeof(float), size_t(1) << 20));
      if (!p) throw std::bad_alloc();
      cap = n;
    }
    return p;
  }
};
thread_local Scratch tl_pack_a, tl_pack_b, tl_part;

struct Problem {
  int M, N, K;
  float alpha, beta;
  const float* A;
  idx lda;
  int transA;
  const float* B;  // used when packedB == nullptr
  idx ldb;
  int transB;
  const float* packedB;  // full pre-packed B (pf_sgemm_pack_b layout) or null
  float* C;
  idx ldc;
  const pf_epilogue* ep;  // or null
};

// Where a finished block's epilogue goes: ep over C's rows r0 + i and columns c0 + j for the
// block at (i, j) of this macro-kernel call; none when ep is null.
struct TileEpilogue {
  const pf_epilogue* ep;
  int r0, c0;
};

// C[0:mc, 0:nc] (+)= A @ Bp, one MR x NR tile at a time. Row r of A starts at A.p + r * a_row
// (see APanel); Bp holds nc columns, panel-packed with depth kc. With te.ep (the last K block),
// the epilogue runs on each NR-wide column of C as soon as its tiles are stored, from L2; run
// once over the whole mc x nc block, it found the first columns evicted by the B panels
// streamed since. BERT-base, 2 threads, alternating PF_PROFILE runs (5 each): 104.1-104.7 ->
// 103.2-104.1 ms, its GEMMs 0.5-1.5% faster (also the FFN down-projection, which reads the
// up-projection's output from a warmer cache). Per MR x NR tile instead (in L1): the same on
// BERT-base but ~1% slower on MobileBERT, whose small GEMMs pay for the calls (128x512x128:
// +3.5%).
void macro_kernel(int mc, int nc, int kc, APanel A, idx a_row, const float* Bp, const float* Bend, float* C,
                  idx ldc, float alpha, float beta, TileEpilogue te) {
  for (int jr = 0; jr < nc; jr += NR) {
    const int nr = std::min(NR, nc - jr);
    const float* b = Bp + (idx)jr * kc;
    // The next B micro-panel is prefetched into L1 a slice per micro-kernel call, so its first
    // call does not wait for it (+3-4% at 2 threads on 128x3072x768 and 128x768x3072,
    // where B streams from L3 or memory; neutral when B stays in L2).
    const char* next_b = reinterpret_cast<const char*>(b + (idx)NR * kc);
    const int n_ir = (mc + MR - 1) / MR;
    const int lines = jr + NR < nc ? (int)(NR * kc * sizeof(float) / 64) : 0, per_ir = (lines + n_ir - 1) / n_ir;
    // And the panel kFarPanels after the next one into L2, up to Bend (the end of the packed B
    // buffer: in a pre-packed B, the next panels and then the next K block's follow in memory).
    // Weights too large for the L3 share come from memory, and the hardware prefetchers stop
    // at 4 KiB pages. MobileBERT's FFN pair (128x512x128, 128x128x512 in 64-row blocks, one per
    // thread) with 96 sets of weights (48 MiB) on the EPYC (Zen 4) of issue 21: 195 -> 182-187 us
    // (2 threads; 158-164 us with one set, in cache).
    const char* far_b = next_b + (idx)kFarPanels * NR * kc * sizeof(float);
    const int far_lines = (int)std::max<idx>(0, std::min<idx>(NR * kc * sizeof(float), reinterpret_cast<const char*>(Bend) - far_b) / 64);
    const int far_per_ir = (far_lines + n_ir - 1) / n_ir;
    for (int ir = 0, step = 0; ir < mc; ir += MR, ++step) {
      const int q0 = std::min(lines, step * per_ir), f0 = std::min(far_lines, step * far_per_ir);
      const Prefetch pf{next_b + 64 * q0, std::min(lines, q0 + per_ir) - q0, far_b + 64 * f0,
                        std::min(far_lines, f0 + far_per_ir) - f0};
      const int mr = std::min(MR, mc - ir);
      const APanel a{A.p + ir * a_row, A.rs, A.cs};
      float* c = C + ir * ldc + jr;
      const int nv = (nr + kColStep - 1) / kColStep;  // column vectors computed
      if (nr == nv * kColStep && (mr == MR || kPartialRows)) {
        ukernel_part(mr, nv, kc, a, b, c, ldc, alpha, beta, pf);
      } else {  // edge tile: compute into a scratch tile, write the valid part
        alignas(64) float t[MR * NR];
        ukernel_part(kPartialRows ? mr : MR, nv, kc, a, b, t, NR, alpha, 0.0f, pf);
        for (int i = 0; i < mr; ++i)
          for (int j = 0; j < nr; ++j) {
            float& dst = c[i * ldc + j];
            dst = beta == 0.0f ? t[i * NR + j] : t[i * NR + j] + beta * dst;
          }
      }
    }
    if (te.ep) te.ep->fn(te.ep->ctx, te.r0, te.r0 + mc, te.c0 + jr, te.c0 + jr + nr);
  }
}

// ---------------------------------------------------------------------------
// Driver.
//
// M is processed in "super-blocks" of up to msb rows. For each super-block:
//   1. op(A)[rows, 0:K] is packed once into a buffer shared by all threads
//      (K blocks of kcb rows; block k0 starts at k0 * msb_pad, panel p of it
//      at p * MR * kc, mirroring the packed-B layout). Work-shared, barrier.
//   2. The super-block x N is cut into tiles (N chunks of whole NR panels,
//      and M sub-ranges only when N alone gives too few tiles). Threads grab
//      tiles dynamically, so a core slowed by other load simply takes fewer.
//      A tile runs the Goto loops: for each K block, pack its B chunk into
//      thread-local scratch (or point into the pre-packed B), then sweep its
//      rows in MC blocks with the macro-kernel.
//   With K groups (Plan::kgroups > 1) every tile also has a K range: group g's
//   tiles add A[:, Kg] @ B[Kg, :] into C (g = 0) or into partial sum g, and
//   3. the partial sums are added into C, rows split among the threads, which
//      then run the epilogue on their rows.
// ---------------------------------------------------------------------------
struct Plan {
  int kcb;        // K block depth
  int n_kb;       // K blocks: ceil(K / kcb)
  int msb;        // super-block rows (multiple of MR unless == M)
  int chunk_np;   // N chunk width in NR panels
  int tile_mp;    // M tile height in MR panels
  int kgroups;    // K ranges computed apart and summed (1: none)
};

Plan make_plan(const Problem& p, int nt) {
  Plan pl;
  pl.kcb = k_block(p.K);
  pl.n_kb = (int)ceil_div(p.K, pl.kcb);
  // Shared packed A of one super-block: at most ~1M floats (4 MiB), >= MC rows.
  const idx cap_rows = std::max<idx>(MC, round_up((idx(1) << 20) / p.K, MR));
  pl.msb = (int)std::min<idx>(p.M, cap_rows);
  const idx np = ceil_div(p.N, NR), mp = ceil_div(pl.msb, MR);
  // Aim for ~4 tiles per thread (dynamic load balance) but at least 1 per NC.
  const idx want = nt == 1 ? 1 : 4 * (idx)nt;
  const idx nchunks = std::min(np, std::max(ceil_div(np, NC / NR), want));
  pl.chunk_np = (int)ceil_div(np, nchunks);
  const idx mtiles = nchunks >= want ? 1 : std::min(mp, ceil_div(want, ceil_div(np, pl.chunk_np)));
  pl.tile_mp = (int)ceil_div(mp, mtiles);
  // K groups, one per thread, when N alone is tiled, each group has 2+ K blocks and the partial
  // sums take at most 1M floats. Thread b's tiles are then the whole of N over K group b instead
  // of its share of N over all of K: each pass over N reads only its part of A (from L3 when A
  // is larger than L2), which it packed itself (step 1). 128x768x3072 on 2 threads (A 1.5 MiB):
  // +2 to +8%; 128x3072x3072 +4 to +5%; 128x512x2048 +2 to +4%; 128x1024x4096 and 128x768x1024
  // within noise (A/B in one process, AVX2, znver3). The width of the head chunks (8 to 48
  // panels) and of the tail (cap 2 or 6) made no difference here, nor did packing each K block
  // of A just before the tile that first uses it instead of in step 1.
  const bool kgroups = nt > 1 && mtiles == 1 && pl.n_kb >= 2 * nt && (nt - 1) * pl.msb * round_up(p.N, NR) <= (idx(1) << 20);
  pl.kgroups = kgroups ? nt : 1;
  return pl;
}

// The N chunks of the tiles, in the order the pool hands them out: thread b's block of ranges
// (pf_pool.cpp) is its share of the columns. When only N is tiled and 2+ threads share it, a
// block is cut into a head of near-equal chunks of up to NC / NR panels and a tail of its last
// `cap` panels cut in halves (6 -> 3, 2, 1): a thread that finishes first steals small chunks
// from the back of the other's block instead of waiting for a whole one. 128x768x3072 on 2
// threads: the threads finished 274-375 us apart (of ~4 ms), 115-223 us with halves; +0-5%
// GFLOP/s on BERT's shapes. Each chunk reads all of A's K blocks once, from L3 when A is larger
// than L2, so a wide head chunk (18 panels instead of 3 x 6 there) reads A fewer times: +1-3%
// on 128x768x3072, +0-2% on 128x2304x768, 128x512x512 and 128x128x512, within noise (-3 to
// +0.3%) on 128x768x768 and 128x3072x768 (2 threads, A/B in one process).
// With K groups the columns are not split among threads (each has its own K group): `blocks`
// is 1 and the one block is cut the same way.
struct NChunks {
  int N, np, cap, hcap, per, len, count;  // np: panels; hcap: widest head chunk; per: panels per
                                          // block; len: chunks per block
  bool guided;

  NChunks(int N_, int cap_, int nt, bool only_n, int blocks) : N(N_), np((int)ceil_div(N_, NR)), cap(cap_) {
    guided = nt > 1 && only_n && cap >= 2;
    hcap = std::max(cap, NC / NR);
    per = guided ? (int)ceil_div(np, blocks) : cap;
    len = guided ? chunks_in(per) : 1;
    count = (int)ceil_div(np, per) * len;  // a short last block leaves some chunks empty
  }
  // Panels in the widest chunk (run() sizes the B packing buffer for it).
  int widest_np() const { return guided ? hcap : cap; }
  // Chunks in a block of s panels: the head's, then the halved tail's.
  int chunks_in(int s) const {
    const int tail = std::min(s, cap);
    int n = (s - tail + hcap - 1) / hcap;
    for (int t = tail; t > 0; t -= (t + 1) / 2) ++n;
    return n;
  }
  // Columns [n0, n0 + nc) of chunk c; nc == 0 for the unused slots of a short last block.
  void get(int c, int& n0, int& nc) const {
    int p0 = c * cap, pn = cap;
    if (guided) {
      const int b = c / len, i = c % len, lo = b * per;
      const int s = std::max(0, std::min(np, lo + per) - lo);
      const int tail = std::min(s, cap), head = s - tail, whole = (head + hcap - 1) / hcap;
      if (i < whole) {  // head chunk i of `whole` near-equal ones
        const int q = head / whole, r = head % whole;
        p0 = lo + i * q + std::min(i, r);
        pn = q + (i < r);
      } else {
        p0 = lo + head;
        int rest = tail;
        for (int j = whole; j < i && rest > 0; ++j) {
          p0 += (rest + 1) / 2;
          rest -= (rest + 1) / 2;
        }
        pn = (rest + 1) / 2;
      }
    }
    n0 = p0 * NR;
    nc = std::max(0, std::min(pn * NR, N - n0));
  }
};

void scale_c(int M, int N, float beta, float* C, idx ldc) {
  for (int i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f)
      std::fill(c, c + N, 0.0f);
    else if (beta != 1.0f)
      for (int j = 0; j < N; ++j) c[j] *= beta;
  }
}

bool pack_a_forced() {
  static const bool forced = [] {
    const char* v = std::getenv("PF_GEMM_PACK_A");
    return v && *v && *v != '0';
  }();
  return forced;
}

void run(const Problem& p, int nthreads) {
  if (p.M <= 0 || p.N <= 0) return;
  if (p.K <= 0 || p.alpha == 0.0f) {  // A and B are not referenced
    scale_c(p.M, p.N, p.beta, p.C, p.ldc);
    if (p.ep) p.ep->fn(p.ep->ctx, 0, p.M, 0, p.N);
    return;
  }
  // Don't fork for tiny problems: require ~64K multiply-adds per thread.
  const double macs = (double)p.M * p.N * p.K;
  const int nt = std::max(1, std::min(nthreads, (int)std::min(macs / 65536.0, 1024.0)));
  const Plan pl = make_plan(p, nt);
  const int K = p.K, kcb = pl.kcb, n_kb = pl.n_kb;
  const idx npad = round_up(p.N, NR);
  const idx msb_pad = round_up(pl.msb, MR);
  // x86 kernels can read A in place (APanel strides) and compute partial row panels, so A is
  // packed only where that pays (M = 128; K < KC never: packing costs about as much as the
  // product, -10% at K = 128):
  //  - wide N, where each A block is swept once per B micro-panel: +3-8% at 2 threads for
  //    N = 2304 and 3072, K = 768; neutral for N 512-1024;
  //  - rows of A a multiple of 4 KiB apart: the MR rows read in place then share one L1 set
  //    (8 ways) with the B micro-panel's lines, which get evicted. 128x768x3072 (BERT's FFN
  //    down-projection, lda = 3072): +4% on 1 thread, +1-5% on 2.
  // PF_GEMM_PACK_A forces it (tests, measurements). Measured and dropped for the aliased case:
  // packing inside the first B micro-panel sweep of each tile (reading A in place and storing
  // it packed for the later sweeps), -5 to -12% at 2 threads; reading in place with two half-KC
  // passes (a KC x NR micro-panel of 8 KiB leaves the L1 set room for the 6 rows), -3 to -5%.
  const bool aliased_rows = p.lda % 1024 == 0;
  const bool direct_a = kPartialRows && !pack_a_forced() && !(p.K >= kc_max() && (p.N >= 2048 || aliased_rows));
  float* Ashared = direct_a ? nullptr : tl_pack_a.get((size_t)(msb_pad * K));  // owned by the caller
  const int tile_rows = pl.tile_mp * MR;
  const int kg = pl.kgroups;
  const NChunks chunks(p.N, pl.chunk_np, nt, tile_rows >= pl.msb, kg > 1 ? 1 : nt);
  float* part = kg > 1 ? tl_part.get((size_t)(kg - 1) * pl.msb * npad) : nullptr;  // sum g at (g-1)*msb*npad
  const int chunk_cols = chunks.widest_np() * NR;
  // MC blocks inside a tile, balanced and MR-aligned.
  const int mcb = (int)round_up(ceil_div(tile_rows, ceil_div(tile_rows, MC)), MR);

  for (int m0 = 0; m0 < p.M; m0 += pl.msb) {
    const int rows = std::min(pl.msb, p.M - m0);
    const int n_apan = (int)ceil_div(rows, MR);
    // 1. Pack A super-block: one task per panel and group of K blocks, the K blocks cut into nt
    //    groups, so thread b (the pool's block split) packs group b: the columns of A that the
    //    same thread computed when A is the previous GEMM's output split over N. A task reads
    //    its MR rows over a whole group, streams the prefetchers follow better than 1 KiB ones
    //    (pack 128x3072 on 1 thread 8-12% faster; +0.5-1% on 128x768x3072, 2 threads).
    const int n_kgrp = std::min(n_kb, nt);
    pf_parallel_for(direct_a ? 0 : n_kgrp * n_apan, 1, nt, [&](int64_t t0, int64_t t1) {
      for (int t = (int)t0; t < (int)t1; ++t) {
        const int g = t / n_apan, r0 = (t % n_apan) * MR, r1 = std::min(rows, r0 + MR);
        for (int kb = g * n_kb / n_kgrp; kb < (g + 1) * n_kb / n_kgrp; ++kb) {
          const int k0 = kb * kcb, kc = std::min(kcb, K - k0);
          pack_a(p.A, p.lda, p.transA, m0 + r0, r1 - r0, k0, kc, Ashared + (idx)k0 * msb_pad + (idx)r0 * kc);
        }
      }
    });
    // 2. Tiles of C (A is packed: pf_parallel_for returns when all ranges have run). With K
    //    groups, thread b's block of tiles is K group b's (the pool's block split).
    const int m_tiles = (int)ceil_div(rows, tile_rows), per_group = chunks.count * m_tiles;
    pf_parallel_for(kg * per_group, 1, nt, [&](int64_t t0, int64_t t1) {
      float* Bbuf = p.packedB ? nullptr : tl_pack_b.get((size_t)chunk_cols * kcb);
      for (int t = (int)t0; t < (int)t1; ++t) {
        const int g = t / per_group, tg = t % per_group;
        int n0, nc;
        chunks.get(tg / m_tiles, n0, nc);
        if (nc == 0) continue;
        const int r0 = (tg % m_tiles) * tile_rows, r1 = std::min(rows, r0 + tile_rows);
        float* C = g == 0 ? p.C + m0 * p.ldc : part + (idx)(g - 1) * pl.msb * npad;
        const idx ldc = g == 0 ? p.ldc : npad;
        const int kb0 = g * n_kb / kg, kb1 = (g + 1) * n_kb / kg;
        for (int kb = kb0; kb < kb1; ++kb) {
          const int k0 = kb * kcb, kc = std::min(kcb, K - k0);
          // beta applies once per C element; partial sums start from zero
          const float beta = kb > kb0 ? 1.0f : g == 0 ? p.beta : 0.0f;
          const float *Bp, *Bend;
          if (p.packedB) {
            Bp = p.packedB + (idx)k0 * npad + (idx)n0 * kc;  // see pf_sgemm_pack_b
            Bend = p.packedB + (idx)K * npad;
          } else {
            pack_b(p.B, p.ldb, p.transB, k0, kc, n0, nc, Bbuf);
            Bp = Bbuf;
            Bend = Bbuf + (idx)kc * round_up(nc, NR);
          }
          APanel Ak{Ashared + (idx)k0 * msb_pad, 1, MR};  // packed: row r at r * kc
          idx a_row = kc;
          if (direct_a) {
            const idx i0 = m0, lda = p.lda;
            Ak = p.transA ? APanel{p.A + k0 * lda + i0, 1, lda} : APanel{p.A + i0 * lda + k0, lda, 1};
            a_row = p.transA ? 1 : lda;
          }
          for (int ic = r0; ic < r1; ic += mcb) {
            const int mc = std::min(mcb, r1 - ic);
            const APanel a{Ak.p + ic * a_row, Ak.rs, Ak.cs};
            const bool final = p.ep && kg == 1 && k0 + kc == K;
            macro_kernel(mc, nc, kc, a, a_row, Bp, Bend, C + ic * ldc + n0, ldc, p.alpha, beta,
                         TileEpilogue{final ? p.ep : nullptr, m0 + ic, n0});
          }
        }
      }
    });  // all tiles done
    // 3. C += the partial sums, then the epilogue, in row ranges.
    pf_parallel_for(kg > 1 ? rows : 0, ceil_div(rows, 4 * nt), nt, [&](int64_t r0, int64_t r1) {
      for (int i = (int)r0; i < (int)r1; ++i) {
        float* __restrict c = p.C + (m0 + i) * p.ldc;
        for (int g = 1; g < kg; ++g) {
          const float* __restrict q = part + (idx)(g - 1) * pl.msb * npad + (idx)i * npad;
          for (int j = 0; j < p.N; ++j) c[j] += q[j];
        }
      }
      if (p.ep) p.ep->fn(p.ep->ctx, m0 + (int)r0, m0 + (int)r1, 0, p.N);
    });
    // Ashared and the partial sums may now be overwritten by the next super-block.
  }
}

}  // namespace

void pf_sgemm(int M, int N, int K, float alpha, const float* A, int lda, int transA, const float* B,
              int ldb, int transB, float beta, float* C, int ldc, int nthreads, const pf_epilogue* ep) {
  const Problem p{M, N, K, alpha, beta, A, lda, transA, B, ldb, transB, nullptr, C, ldc, ep};
  run(p, nthreads);
}

// Packed-B layout: K is cut into blocks of k_block(K) rows; block starting at
// row k0 (kc rows) occupies packed[k0*Npad, (k0+kc)*Npad), Npad = N rounded
// up to NR, and holds Npad/NR panels of kc*NR floats (panel j at j*NR*kc).
size_t pf_sgemm_packed_b_size(int K, int N) {
  if (K <= 0 || N <= 0) return 0;
  return (size_t)K * (size_t)round_up(N, NR);
}

void pf_sgemm_pack_b(int K, int N, const float* B, int ldb, int transB, float* packed) {
  if (K <= 0 || N <= 0) return;
  const int kcb = k_block(K);
  const idx npad = round_up(N, NR);
  for (int k0 = 0; k0 < K; k0 += kcb)
    pack_b(B, ldb, transB, k0, std::min(kcb, K - k0), 0, N, packed + (idx)k0 * npad);
}

void pf_sgemm_prepacked(int M, int N, int K, float alpha, const float* A, int lda, int transA,
                        const float* packedB, float beta, float* C, int ldc, int nthreads,
                        const pf_epilogue* ep) {
  const Problem p{M, N, K, alpha, beta, A, lda, transA, nullptr, 0, 0, packedB, C, ldc, ep};
  run(p, nthreads);
}

const char* pf_sgemm_kernel_name() {
  static const std::string name = std::string(kKernelName) + "-kc" + std::to_string(kc_max());
  return name.c_str();
}

// pf_gemm.h - packed, register-blocked, multi-threaded (pf_pool) single-precision GEMM.
//
// All matrices are row-major. op(X) is X (trans == 0) or X^T (trans != 0).
//
//   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C
//
// A is M x K (lda >= K) when transA == 0, else K x M (lda >= M).
// B is K x N (ldb >= N) when transB == 0, else N x K (ldb >= K).
// When beta == 0, C is write-only (it may hold NaN garbage beforehand).
// When alpha == 0 (or K == 0), A and B are not read.
// nthreads >= 1 is an upper bound; tiny problems may use fewer threads.
//
// The micro-kernel is chosen at compile time from the predefined ISA macros
// (__AVX512F__, __AVX2__ && __FMA__, __ARM_NEON / __aarch64__, else portable
// C++), so the library must be compiled with the same flags (-march=...) as
// the code that consumes a pre-packed B buffer.
//
// Epilogue: when `ep` is given, ep->fn(ep->ctx, r0, r1, c0, c1) is called on blocks
// C[r0:r1, c0:c1] that cover C exactly once, each as soon as its values are final, by the
// thread that computed it or, where threads split K, summed the partial results (so the block
// is still in its cache). Blocks are called concurrently
// from several threads; an epilogue may only read and write its own block of C (and read
// other buffers). All calls have returned when the GEMM returns.
#pragma once

#include <cstddef>

typedef void (*pf_tile_fn)(void* ctx, int r0, int r1, int c0, int c1);
struct pf_epilogue {
  pf_tile_fn fn;
  void* ctx;
};

// An epilogue that calls f(r0, r1, c0, c1); f must outlive the GEMM call.
template <class F>
inline pf_epilogue pf_epilogue_of(const F& f) {
  return {[](void* c, int r0, int r1, int c0, int c1) { (*static_cast<const F*>(c))(r0, r1, c0, c1); },
          const_cast<void*>(static_cast<const void*>(&f))};
}

void pf_sgemm(int M, int N, int K, float alpha,
              const float* A, int lda, int transA,
              const float* B, int ldb, int transB,
              float beta, float* C, int ldc, int nthreads, const pf_epilogue* ep = nullptr);

// Pre-packing of a constant B operand (weights), done once at model load.
// The packed layout depends on the compiled micro-kernel (see pf_gemm.cpp);
// it is only valid for the same K, N and the same build of the library.
// For best speed the packed buffer should be 64-byte aligned (not required).
size_t pf_sgemm_packed_b_size(int K, int N);  // number of floats needed
void   pf_sgemm_pack_b(int K, int N, const float* B, int ldb, int transB, float* packed);
void   pf_sgemm_prepacked(int M, int N, int K, float alpha, const float* A, int lda, int transA,
                          const float* packedB, float beta, float* C, int ldc, int nthreads,
                          const pf_epilogue* ep = nullptr);

// Name of the compiled micro-kernel, e.g. "avx2-4x24" (for tests/logging).
const char* pf_sgemm_kernel_name();

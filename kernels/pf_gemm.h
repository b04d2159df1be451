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
#pragma once

#include <cstddef>

void pf_sgemm(int M, int N, int K, float alpha,
              const float* A, int lda, int transA,
              const float* B, int ldb, int transB,
              float beta, float* C, int ldc, int nthreads);

// Pre-packing of a constant B operand (weights), done once at model load.
// The packed layout depends on the compiled micro-kernel (see pf_gemm.cpp);
// it is only valid for the same K, N and the same build of the library.
// For best speed the packed buffer should be 64-byte aligned (not required).
size_t pf_sgemm_packed_b_size(int K, int N);  // number of floats needed
void   pf_sgemm_pack_b(int K, int N, const float* B, int ldb, int transB, float* packed);
void   pf_sgemm_prepacked(int M, int N, int K, float alpha, const float* A, int lda, int transA,
                          const float* packedB, float beta, float* C, int ldc, int nthreads);

// Name of the compiled micro-kernel, e.g. "avx2-6x16" (for tests/logging).
const char* pf_sgemm_kernel_name();

// pf_memory.h - allocation of the runtime's large buffers (packed weights, the arena, the
// GEMM's packed A), which are written in full and then streamed: from `huge_from` bytes up,
// whole 2 MiB pages, 2 MiB aligned and marked for transparent huge pages (Linux, where THP is
// "madvise" or "always"), so that megabytes of packed B stay within the L2 TLB's reach; else
// 64-byte aligned. PF_HUGEPAGES=0 in the environment turns huge pages off. Free with std::free;
// null when out of memory.
#pragma once
#include <cstddef>
#include <cstdlib>
#if defined(__linux__)
#include <sys/mman.h>
#endif

inline void* pf_alloc_large(size_t bytes, size_t huge_from) {
  size_t align = 64;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const char* env = std::getenv("PF_HUGEPAGES");
  if (bytes >= huge_from && !(env && env[0] == '0')) align = size_t(2) << 20;
#endif
  const size_t n = ((bytes ? bytes : 1) + align - 1) / align * align;
  void* p = nullptr;  // posix_memalign, not std::aligned_alloc: Android has that only from API 28
  if (posix_memalign(&p, align, n) != 0) p = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p && align > 64) madvise(p, n, MADV_HUGEPAGE);  // advice only: failure leaves 4 KiB pages
#endif
  return p;
}

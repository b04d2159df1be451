// pf_pool.h - the runtime's thread pool: parallel loops whose caller never waits for a
// thread that is still waking up.
//
// pf_parallel_for(n, grain, nthreads, body) calls body(begin, end) on disjoint ranges that
// cover [0, n), each at most `grain` long (or one range [0, n) when it runs serially), and
// returns when all have run, their writes visible to the caller. The calling thread
// takes part; up to nthreads - 1 persistent workers join as soon as they are awake. The ranges
// are split into one contiguous block per thread: each thread runs its own block first (so
// with the same thread count a thread gets the same part of every loop, and its data stays in
// its caches from one loop to the next), then takes the remaining ranges of the others from
// their ends. A worker that sleeps (after an idle period) therefore costs nothing: the caller
// simply runs more of the ranges itself. Workers spin for a short while after each loop
// (PF_SPIN_US, default 300 microseconds) so back-to-back kernels of one inference find them
// awake, then block. Before each loop the workers' CPU affinity is set to exclude the CPU the
// caller is on (Linux), so a woken worker cannot end up sharing the caller's core.
//
// Serial, with no synchronisation at all, when n <= grain, nthreads <= 1, inside another
// pf_parallel_for body (nested loops run inline), or when another thread is using the pool.
// Each library that links pf_pool.cpp has its own pool.
#pragma once

#include <cstdint>

typedef void (*pf_range_fn)(void* ctx, int64_t begin, int64_t end);

void pf_parallel_run(int64_t n, int64_t grain, int nthreads, pf_range_fn fn, void* ctx);

// Starts the workers a loop over nthreads would use and wakes those that are asleep; they spin
// (PF_SPIN_US) waiting for a loop, then block again. Runs nothing; returns at once if another
// thread is using the pool.
void pf_pool_wake(int nthreads);

template <class F>
inline void pf_parallel_for(int64_t n, int64_t grain, int nthreads, const F& body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (nthreads <= 1 || n <= grain) {
    body(int64_t(0), n);
    return;
  }
  pf_parallel_run(n, grain, nthreads,
                  [](void* ctx, int64_t b, int64_t e) { (*static_cast<const F*>(ctx))(b, e); },
                  const_cast<void*>(static_cast<const void*>(&body)));
}

// Range length for n items of `work` elements each: ranges of at least PF_MIN_RANGE_WORK
// elements (so small loops stay serial), and about four per thread for load balance.
#define PF_MIN_RANGE_WORK 16384
inline int64_t pf_grain(int64_t n, int64_t work, int nthreads) {
  const int64_t w = work > 0 ? work : 1;
  const int64_t min_items = (PF_MIN_RANGE_WORK + w - 1) / w;
  const int64_t parts = 4 * (int64_t)(nthreads > 0 ? nthreads : 1);
  const int64_t balanced = (n + parts - 1) / parts;
  return min_items > balanced ? min_items : balanced;
}

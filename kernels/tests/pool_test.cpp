// Stress test for kernels/pf_pool.cpp: every index of every loop runs exactly once, ranges
// respect the grain, results are visible to the caller when pf_parallel_for returns, nested
// loops run inline, and two threads may call the pool at once. Workers are made to fall
// asleep between loops (PF_SPIN_US=0 in the test), so late wake-ups are exercised too, and
// pf_pool_wake is called between loops and from a second thread.
// On Linux with two or more CPUs, workers never run on the CPU the caller runs on. Each thread
// starts on its own block of ranges: a worker's first range in a loop is the front of a block.
//   usage: pool_test [--iterations N]
// Prints "pool: N loops, 0 failures" and exits 0 on success.
#include "pf_pool.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#if defined(__linux__) && !defined(__ANDROID__)
#include <sched.h>
#endif

static std::atomic<long> failures{0};

static void check(bool ok, const char* what, long a, long b) {
  if (!ok && failures.fetch_add(1) < 20) std::printf("FAIL %s (%ld, %ld)\n", what, a, b);
}

// One loop over n items: each item is written by exactly one range, plain (non-atomic)
// stores, read back by the caller after the loop returns.
static long one_loop(int64_t n, int64_t grain, int nt, unsigned seed, bool nested) {
  std::vector<int> hits((size_t)n, 0);
  std::atomic<int64_t> max_range{0};
  pf_parallel_for(n, grain, nt, [&](int64_t b, int64_t e) {
    int64_t len = e - b, m = max_range.load();
    while (len > m && !max_range.compare_exchange_weak(m, len)) {}
    for (int64_t i = b; i < e; ++i) hits[(size_t)i] += (int)(seed % 7) + 1;
    if (nested && e - b < n) {  // inside a split loop, a nested loop runs inline on this thread
      const auto self = std::this_thread::get_id();
      std::atomic<int> inner{0};
      pf_parallel_for(100, 1, nt, [&](int64_t ib, int64_t ie) {
        check(std::this_thread::get_id() == self, "nested loop left its thread", (long)ib, (long)ie);
        inner.fetch_add((int)(ie - ib));
      });
      check(inner.load() == 100, "nested loop coverage", inner.load(), 100);
    }
  });
  for (int64_t i = 0; i < n; ++i)
    check(hits[(size_t)i] == (int)(seed % 7) + 1, "index not run exactly once", (long)i, hits[(size_t)i]);
  // A range is at most `grain` long, unless the loop ran serially as one range.
  check(max_range.load() <= grain || max_range.load() == n, "range longer than grain",
        (long)max_range.load(), (long)grain);
  return 1;
}

// Loops over nt threads whose caller stays on one CPU throughout: no range may run on that CPU
// in a worker. Returns the number of ranges workers ran (0 when the check does not apply).
static long workers_avoid_caller_cpu(int nt) {
#if defined(__linux__) && !defined(__ANDROID__)
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2) return 0;
  long worker_ranges = 0;
  for (int loop = 0; loop < 200; ++loop) {
    const auto self = std::this_thread::get_id();
    const int before = sched_getcpu();
    std::atomic<int> clashes{0}, in_workers{0};
    pf_parallel_for(64, 1, nt, [&](int64_t, int64_t) {
      volatile double x = 0;
      for (int i = 0; i < 20000; ++i) x = x + i;  // long enough for a woken worker to join
      if (std::this_thread::get_id() != self) {
        in_workers.fetch_add(1);
        if (sched_getcpu() == before) clashes.fetch_add(1);
      }
    });
    if (sched_getcpu() != before) continue;  // the caller moved: nothing to check
    check(clashes.load() == 0, "worker ran on the caller's CPU", (long)before, (long)clashes.load());
    worker_ranges += in_workers.load();
    if (loop % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // workers sleep
  }
  return worker_ranges;
#else
  return 0;
#endif
}

// Loops of n ranges over nt threads in which the caller (in its first range) and each worker
// (in its first range) wait until every worker has started: every worker's first range must
// then be the front of a block (ranges are split into nt blocks of ceil(n / nt)), never the
// caller's next range nor one stolen from a block whose owner was late. Returns the workers
// checked.
static long workers_start_at_their_block(int nt) {
  const int64_t n = 4 * nt + 3, size = (n + nt - 1) / nt;
  long checked = 0;
  for (int loop = 0; loop < 50; ++loop) {
    const auto self = std::this_thread::get_id();
    std::atomic<int> started{0};
    std::atomic<bool> gave_up{false};
    std::mutex mu;
    std::vector<std::pair<std::thread::id, int64_t>> first;  // each worker's first range
    auto wait_all = [&] {
      const auto t0 = std::chrono::steady_clock::now();
      while (started.load() < nt - 1)
        if (std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(200)) {
          gave_up.store(true);  // a worker did not wake in time (loaded machine, TSan)
          return;
        } else {
          std::this_thread::yield();
        }
    };
    pf_parallel_for(n, 1, nt, [&](int64_t b, int64_t) {
      if (std::this_thread::get_id() == self) {
        if (b == 0) wait_all();
        return;
      }
      bool seen = false;
      {
        std::lock_guard<std::mutex> lk(mu);
        for (auto& f : first) seen |= f.first == std::this_thread::get_id();
        if (!seen) first.emplace_back(std::this_thread::get_id(), b);
      }
      if (!seen) {
        started.fetch_add(1);
        wait_all();
      }
    });
    if (gave_up.load()) continue;  // a late worker may rightly have started with a stolen range
    for (auto& f : first) {
      check(f.second % size == 0 && f.second > 0, "worker did not start at the front of a block", (long)f.second,
            (long)size);
      ++checked;
    }
  }
  return checked;
}

int main(int argc, char** argv) {
  int iterations = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--iterations" && i + 1 < argc) {
      iterations = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--iterations N]\n", argv[0]);
      return 2;
    }
  }
  // Steering with one worker first, and again at the end with workers created after it.
  long steered = workers_avoid_caller_cpu(2);
  long blocks = workers_start_at_their_block(2) + workers_start_at_their_block(3);
  long loops = 0;
  unsigned seed = 12345;
  auto rnd = [&seed] { return seed = seed * 1103515245u + 12345u, (seed >> 8); };
  for (int it = 0; it < iterations; ++it) {
    const int64_t n = 1 + rnd() % 3000;
    const int64_t grain = 1 + rnd() % 64;
    const int nt = 1 + (int)(rnd() % 4);
    loops += one_loop(n, grain, nt, seed, it % 5 == 0);
    if (it % 97 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));  // let workers sleep
    if (it % 7 == 0) pf_pool_wake(1 + (int)(rnd() % 4));  // wakes workers, runs nothing
  }
  // Two callers at once: one gets the pool, the other runs serially; both must be complete.
  std::thread other([&] {
    for (int it = 0; it < iterations / 4; ++it) {
      one_loop(777, 5, 3, (unsigned)it, false);
      pf_pool_wake(3);  // while the main thread may hold the pool: must return at once
    }
  });
  for (int it = 0; it < iterations / 4; ++it) loops += one_loop(1000, 3, 3, (unsigned)it * 3u, false);
  other.join();
  loops += iterations / 4;
  steered += workers_avoid_caller_cpu(4);
  std::printf("pool: CPU steering checked on %ld worker ranges\n", steered);
  std::printf("pool: block starts checked on %ld workers\n", blocks);
  std::printf("pool: %ld loops, %ld failures\n", loops, failures.load());
  return failures.load() == 0 ? 0 : 1;
}

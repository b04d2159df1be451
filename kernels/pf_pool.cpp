// pf_pool.cpp - see pf_pool.h.
//
// One loop ("job") at a time. Its ranges are split into one contiguous block per thread (the
// caller is thread 0). A thread claims ranges from the front of its own block, then from the
// back of the others' blocks, so with all threads awake each runs the same part of every loop
// it shares with the same thread count (its rows of C, its columns of a weight stay in its
// caches from one call to the next) and a thread that is late or slowed still leaves no range
// waiting for it. Each block is one 64-bit word (job id << 32 | front << 16 | back), claimed
// with a compare-and-swap that also checks the job id, so a worker that wakes up late can never
// run a range of a finished job or of a job that is not published yet: the caller writes a
// job's fields, then its blocks, and publishes its id last; a job ends only when every range of
// it has been claimed and run.
#include "pf_pool.h"

#include <pthread.h>
#if defined(__linux__) && !defined(__ANDROID__)  // bionic has no pthread_setaffinity_np
#include <sched.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax() { asm volatile("yield" ::: "memory"); }
#else
static inline void cpu_relax() {}
#endif

namespace {

constexpr int MAX_WORKERS = 255;
constexpr int64_t MAX_BLOCK = 0xffff;  // ranges per thread block (16 bits each for front and back)
thread_local bool tl_in_pool = false;

inline uint64_t word(uint32_t job, uint32_t front, uint32_t back) {
  return (uint64_t)job << 32 | (uint64_t)front << 16 | back;
}
inline uint32_t job_of(uint64_t w) { return (uint32_t)(w >> 32); }
inline uint32_t front_of(uint64_t w) { return (uint32_t)(w >> 16) & 0xffff; }
inline uint32_t back_of(uint64_t w) { return (uint32_t)w & 0xffff; }

struct alignas(64) Block {  // one cache line each: threads claim from their own without sharing
  std::atomic<uint64_t> w{0};
};

int64_t spin_ns() {
  const char* s = std::getenv("PF_SPIN_US");
  const long us = s ? std::strtol(s, nullptr, 10) : 300;
  return (int64_t)std::max(0L, us) * 1000;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Pool {
  std::atomic<uint32_t> posted{0};  // id of the current job; workers wait for it to change
  Block blocks[MAX_WORKERS + 1];     // thread t's ranges: [t * per + front, t * per + back)
  std::atomic<pf_range_fn> fn{nullptr};
  std::atomic<void*> ctx{nullptr};
  std::atomic<int64_t> n{0}, grain{1};
  std::atomic<uint32_t> per{1};  // ranges per block
  std::atomic<int> nthreads{1};
  std::atomic<uint32_t> done{0};
  std::atomic<int> sleepers{0};
  std::atomic<uint32_t> wakes{0};  // bumped by wake(): sleeping workers get up and spin
  std::atomic<bool> stop{false};
  uint32_t job = 0;  // caller side only (under caller)
  std::mutex caller, mu;
  std::condition_variable cv;
  pthread_t threads[MAX_WORKERS];
  int nworkers = 0;  // under caller
  int avoid = -1;    // the CPU the workers are kept off, -1 for none (under caller)
  const int64_t spin = spin_ns();

  // Claims and runs ranges of `j` (as thread `self`) until none is left; returns at once if `j`
  // is not current.
  void work(uint32_t j, int self) {
    const pf_range_fn f = fn.load();
    void* const c = ctx.load();
    const int64_t total = n.load(), g = grain.load(), size = per.load();
    const int nb = nthreads.load();
    for (int d = 0; d < nb; ++d) {  // own block from the front, then the others from the back
      const int t = (self + d) % nb;
      std::atomic<uint64_t>& b = blocks[t].w;
      for (;;) {
        uint64_t w = b.load();
        const uint32_t lo = front_of(w), hi = back_of(w);
        if (job_of(w) != j) return;
        if (lo >= hi) break;
        const uint64_t next = d == 0 ? word(j, lo + 1, hi) : word(j, lo, hi - 1);
        if (!b.compare_exchange_weak(w, next)) continue;
        const int64_t r0 = (t * size + (d == 0 ? lo : hi - 1)) * g;
        f(c, r0, std::min(total, r0 + g));
        done.fetch_add(1, std::memory_order_release);
      }
    }
  }

  void worker_loop(int index) {
    tl_in_pool = true;
    uint32_t seen = posted.load();
    while (!stop.load()) {
      uint32_t j = posted.load();
      int64_t t0 = now_ns();
      for (int spins = 0; j == seen && !stop.load(); j = posted.load()) {
        cpu_relax();
        if (++spins % 256 == 0 && now_ns() - t0 > spin) {
          std::unique_lock<std::mutex> lk(mu);
          sleepers.fetch_add(1);
          const uint32_t w = wakes.load();
          cv.wait(lk, [&] { return stop.load() || posted.load() != seen || wakes.load() != w; });
          sleepers.fetch_sub(1);
          t0 = now_ns();  // woken by wake() (no loop yet): spin again
        }
      }
      seen = j;
      if (index + 1 < nthreads.load()) work(seen, index + 1);
    }
  }

  static void* entry(void* arg);

  void grow(int want) {  // caller holds `caller`
    want = std::min(want, MAX_WORKERS);
    while (nworkers < want) {
      auto* a = new std::pair<Pool*, int>(this, nworkers);
      if (pthread_create(&threads[nworkers], nullptr, entry, a) != 0) {
        delete a;
        break;  // run with the workers we have
      }
      ++nworkers;
      avoid = -1;  // the new worker has the caller's affinity: steer() must set it
    }
  }

  // Keeps the workers off the CPU the caller runs on, before waking them. A KVM guest's
  // scheduler counts a halted vCPU as busy, so a worker woken after an idle period otherwise
  // lands on the caller's own CPU and the two share it while the other core stays idle until
  // the load balancer moves one (measured: a 2-layer BERT with 2 threads, run after a 50 ms
  // pause, took 3.9 ms instead of 1.5 ms). One affinity call per worker, and only when the
  // caller's CPU changed since the last one.
  void steer() {
#if defined(__linux__) && !defined(__ANDROID__)  // bionic has no pthread_setaffinity_np
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu == avoid || cpu >= CPU_SETSIZE) return;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || !CPU_ISSET(cpu, &set) || CPU_COUNT(&set) < 2)
      return;
    CPU_CLR(cpu, &set);
    for (int i = 0; i < nworkers; ++i) pthread_setaffinity_np(threads[i], sizeof set, &set);
    avoid = cpu;
#endif
  }

  void run(int64_t total, int64_t g, int nt, pf_range_fn f, void* c) {
    std::unique_lock<std::mutex> own(caller, std::try_to_lock);
    if (!own) {  // another thread is running a loop on this pool: run this one alone
      f(c, 0, total);
      return;
    }
    nt = std::min(nt, MAX_WORKERS + 1);
    grow(nt - 1);
    int64_t count = (total + g - 1) / g;
    if (count > nt * MAX_BLOCK) {  // range numbers fit the block words
      g = (total + nt * MAX_BLOCK - 1) / (nt * MAX_BLOCK);
      count = (total + g - 1) / g;
    }
    const int64_t size = (count + nt - 1) / nt;
    fn.store(f);
    ctx.store(c);
    n.store(total);
    grain.store(g);
    per.store((uint32_t)size);
    nthreads.store(nt);
    done.store(0);
    const uint32_t j = ++job == 0 ? ++job : job;  // 0 is the id before any job
    for (int t = 0; t < nt; ++t) {
      const int64_t lo = std::min(count, t * size), hi = std::min(count, lo + size);
      blocks[t].w.store(word(j, 0, (uint32_t)(hi - lo)));
    }
    posted.store(j);
    steer();
    rouse();
    tl_in_pool = true;
    work(j, 0);
    tl_in_pool = false;
    for (int spins = 0; done.load(std::memory_order_acquire) < (uint32_t)count;)
      if (++spins < 4096) cpu_relax(); else std::this_thread::yield();  // a claimed range is running
  }

  // Gets sleeping workers up (they then see a new job, or spin waiting for one).
  void rouse() {
    if (sleepers.load() > 0) {
      std::lock_guard<std::mutex> lk(mu);
      wakes.fetch_add(1);
      cv.notify_all();
    }
  }

  void wake(int nt) {
    std::unique_lock<std::mutex> own(caller, std::try_to_lock);
    if (!own) return;
    grow(nt - 1);
    steer();
    rouse();
  }

  void shutdown() {
    stop.store(true);
    {
      std::lock_guard<std::mutex> lk(mu);
      cv.notify_all();
    }
    for (int i = 0; i < nworkers; ++i) pthread_join(threads[i], nullptr);
    nworkers = 0;
  }

  ~Pool() { shutdown(); }
};

void* Pool::entry(void* arg) {
  auto* a = static_cast<std::pair<Pool*, int>*>(arg);
  Pool* p = a->first;
  const int index = a->second;
  delete a;
  p->worker_loop(index);
  return nullptr;
}

Pool& pool() {
  static Pool p;
  return p;
}

// A forked child has none of the parent's workers; it starts with an empty pool.
void forget_workers_in_child() {
  pool().nworkers = 0;
  pool().avoid = -1;
}
struct AtFork {
  AtFork() { pthread_atfork(nullptr, nullptr, forget_workers_in_child); }
} at_fork;

}  // namespace

void pf_pool_wake(int nthreads) {
  if (nthreads > 1 && !tl_in_pool) pool().wake(nthreads);
}

void pf_parallel_run(int64_t n, int64_t grain, int nthreads, pf_range_fn fn, void* ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (tl_in_pool || nthreads <= 1 || n <= grain) {
    fn(ctx, 0, n);
    return;
  }
  pool().run(n, grain, nthreads, fn, ctx);
}

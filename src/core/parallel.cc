#include "core/parallel.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace flashneox {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

void futex_wait(std::atomic<uint32_t>& word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// How long an idle worker watches for the next job before it sleeps: long
// enough to stay awake between the kernels of one forward, short enough not
// to keep a core from another process between steps.
std::chrono::microseconds spin_time() {
  static const std::chrono::microseconds t = [] {
    const char* env = std::getenv("FLASHNEOX_SPIN_US");
    const long us = env ? std::strtol(env, nullptr, 10) : 100;
    return std::chrono::microseconds(us >= 0 ? us : 0);
  }();
  return t;
}

// A job's chunks are claimed through one 64-bit ticket: the job's generation
// (32 bits), its chunk count and the next unclaimed chunk (16 bits each). A
// worker that claims a chunk with a compare-and-swap holds the job open, so
// the job's other fields, read after the claim, are that job's.
uint64_t make_ticket(uint32_t generation, int64_t chunks, int64_t next) {
  return uint64_t{generation} << 32 | static_cast<uint64_t>(chunks) << 16 | static_cast<uint64_t>(next);
}

class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this, i] {
        pthread_setname_np(pthread_self(), ("flashneox-w" + std::to_string(i)).substr(0, 15).c_str());
        work();
      });
  }

  ~Pool() {
    stop_.store(true);
    generation_.fetch_add(1);
    futex_wake_all(generation_);
    for (auto& t : workers_) t.join();
  }

  void run(int64_t count, int64_t chunks, detail::ChunkFn fn, void* body) {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point start = Clock::now();
    if (start < solo_until_) {  // the workers have been slowing jobs down: the caller alone for now
      fn(body, 0, count);
      return;
    }
    fn_.store(fn, std::memory_order_relaxed);
    body_.store(body, std::memory_order_relaxed);
    count_.store(count, std::memory_order_relaxed);
    finished_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
    ticket_.store(make_ticket(gen, chunks, 0), std::memory_order_release);
    generation_.store(gen);  // seq_cst: pairs with a sleeper's check (no lost wake-up)
    if (sleepers_.load() > 0) futex_wake_all(generation_);
    const int64_t mine = help(gen);
    const Clock::time_point own_done = Clock::now();
    wait_for_workers(static_cast<uint32_t>(chunks));
    judge(start, own_done, Clock::now(), mine, chunks);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // Waits for the chunks workers have claimed (one that never woke up has
  // none): briefly spinning, then asleep, so a worker woken on this core
  // gets it at once.
  void wait_for_workers(uint32_t chunks) {
    for (int spins = 0; spins < 2048; ++spins) {
      if (finished_.load(std::memory_order_acquire) >= chunks) return;
      cpu_relax();
    }
    caller_waiting_.store(true);  // seq_cst: pairs with a worker's count-then-check
    for (uint32_t done; (done = finished_.load()) < chunks;) futex_wait(finished_, done);
    caller_waiting_.store(false, std::memory_order_relaxed);
  }

  // Whether the workers help. The caller's own pace gives what a job would
  // have taken alone (its time per chunk times the chunks); when jobs over a
  // window (>= 10 ms) took longer than that together, a worker whose core
  // another process holds keeps being descheduled mid-chunk, and the caller
  // works alone for a while (20 ms, doubling while it keeps happening, up to
  // 1 s) before it tries the workers again.
  void judge(std::chrono::steady_clock::time_point start, std::chrono::steady_clock::time_point own_done,
             std::chrono::steady_clock::time_point end, int64_t mine, int64_t chunks) {
    if (mine == 0) return;  // nothing to go by
    window_alone_ += (own_done - start) / mine * chunks;
    window_actual_ += end - start;
    if (window_actual_ < std::chrono::milliseconds(10)) return;
    if (window_actual_ > window_alone_) {
      solo_for_ = std::min(solo_for_ * 2, std::chrono::steady_clock::duration(std::chrono::seconds(1)));
      solo_until_ = end + solo_for_;
    } else {
      solo_for_ = std::chrono::milliseconds(10);
    }
    window_alone_ = window_actual_ = {};
  }

  void work() {
    uint32_t seen = generation_.load();
    while (true) {
      if (stop_.load()) return;  // set before the generation moves: a worker that starts late sees it
      uint32_t gen = generation_.load(std::memory_order_acquire);
      if (gen == seen) {
        const auto until = std::chrono::steady_clock::now() + spin_time();
        for (int spins = 0; (gen = generation_.load(std::memory_order_acquire)) == seen; ++spins) {
          cpu_relax();
          if (spins % 64 == 63 && std::chrono::steady_clock::now() >= until) break;
        }
      }
      if (gen == seen) {  // nothing came: sleep until the next job
        sleepers_.fetch_add(1);
        if (generation_.load() == seen) futex_wait(generation_, seen);
        sleepers_.fetch_sub(1);
        continue;
      }
      seen = gen;
      help(gen);
    }
  }

  // Claims and runs chunks of job `gen` until none is left; returns how many it ran.
  int64_t help(uint32_t gen) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    for (int64_t ran = 0;; ++ran) {
      const int64_t chunks = static_cast<int64_t>((t >> 16) & 0xffff), next = static_cast<int64_t>(t & 0xffff);
      if (static_cast<uint32_t>(t >> 32) != gen || next >= chunks) return ran;
      if (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        --ran;
        continue;
      }
      const int64_t count = count_.load(std::memory_order_relaxed);
      try {
        fn_.load(std::memory_order_relaxed)(body_.load(std::memory_order_relaxed), count * next / chunks,
                                            count * (next + 1) / chunks);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
      finished_.fetch_add(1);  // seq_cst: pairs with the caller's going to sleep
      if (caller_waiting_.load()) futex_wake_all(finished_);
      t = ticket_.load(std::memory_order_acquire);
    }
  }

  std::atomic<uint32_t> generation_{0};  // bumped per job; the futex sleepers wait on
  std::atomic<uint64_t> ticket_{0};
  std::atomic<detail::ChunkFn> fn_{nullptr};
  std::atomic<void*> body_{nullptr};
  std::atomic<int64_t> count_{0};
  std::atomic<uint32_t> finished_{0};  // chunks done; the futex a waiting caller sleeps on
  std::atomic<bool> caller_waiting_{false};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;  // the job's first exception
  std::vector<std::thread> workers_;
  // judge(): over the current window, what the jobs would have taken alone and what they took.
  std::chrono::steady_clock::duration window_alone_{}, window_actual_{};
  std::chrono::steady_clock::duration solo_for_{std::chrono::milliseconds(10)};
  std::chrono::steady_clock::time_point solo_until_{};
};

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const long n = std::strtol(env, nullptr, 10);
    if (n > 0) return static_cast<int>(std::min(n, 1024L));
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex g_pool_mutex;  // one job at a time; held while a job runs
Pool* g_pool = nullptr;   // never destroyed at exit: a worker may still sleep in it
std::atomic<int> g_threads{0};
thread_local bool t_in_job = false;

}  // namespace

void set_num_threads(int threads) {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  const int n = threads > 0 ? std::min(threads, 1024) : default_threads();
  if (n == g_threads.load()) return;
  delete g_pool;
  g_pool = nullptr;
  g_threads.store(n);
}

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n <= 0) {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    if (g_threads.load() <= 0) g_threads.store(default_threads());
    n = g_threads.load();
  }
  return n;
}

namespace detail {

void run_chunks(int64_t count, int64_t chunks, ChunkFn fn, void* body) {
  // Nested calls, and callers while another job runs, do their work alone.
  std::unique_lock<std::mutex> lock(g_pool_mutex, std::try_to_lock);
  if (t_in_job || !lock.owns_lock() || g_threads.load() <= 1) {
    fn(body, 0, count);
    return;
  }
  if (!g_pool) {
    static const bool fork_handler = [] {
      // A forked child has none of the workers: it builds a pool of its own.
      pthread_atfork(nullptr, nullptr, [] { g_pool = nullptr; });
      return true;
    }();
    (void)fork_handler;
    g_pool = new Pool(g_threads.load());
  }
  t_in_job = true;
  struct Reset {
    ~Reset() { t_in_job = false; }
  } reset;
  g_pool->run(count, std::min(chunks, kMaxChunks), fn, body);
}

}  // namespace detail

}  // namespace flashneox

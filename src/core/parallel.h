// The one thread pool. Kernels split work with parallel_for, so the pool (and
// its thread count, --threads / OMP_NUM_THREADS) is set in one place.
//
// Made for a machine the server shares with its own HTTP threads and with
// other processes: the calling thread works too, work is claimed in small
// chunks (a thread whose core is taken does less of it, and nobody waits for
// a thread that has not started), and idle workers spin only briefly before
// sleeping, so they do not burn a core someone else needs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>

namespace flashneox {

void set_num_threads(int threads);  // <= 0: every core this process may use (or OMP_NUM_THREADS)
int num_threads();

namespace detail {
using ChunkFn = void (*)(void* body, int64_t begin, int64_t end);
// Runs fn(body, begin, end) over `chunks` contiguous chunks of [0, count),
// on the calling thread and the pool's workers; returns when all are done
// and rethrows the first exception a chunk threw.
void run_chunks(int64_t count, int64_t chunks, ChunkFn fn, void* body);
constexpr int64_t kChunksPerThread = 4;
constexpr int64_t kMaxChunks = 4096;
}  // namespace detail

// Calls body(begin, end) on disjoint chunks of [0, count) across the pool.
// `grain` is the smallest chunk worth a thread. Chunk boundaries change with
// the thread count: items must not depend on which chunk they fall in.
template <typename Body>
void parallel_for(int64_t count, int64_t grain, Body&& body) {
  if (count <= 0) return;
  const int64_t max_chunks = grain > 0 ? (count + grain - 1) / grain : count;
  const int64_t threads = num_threads();
  const int64_t chunks = std::min({max_chunks, threads * detail::kChunksPerThread, detail::kMaxChunks});
  if (threads <= 1 || chunks <= 1) {
    body(int64_t{0}, count);
    return;
  }
  using B = std::remove_reference_t<Body>;
  detail::run_chunks(
      count, chunks, [](void* b, int64_t begin, int64_t end) { (*static_cast<B*>(b))(begin, end); },
      const_cast<void*>(static_cast<const void*>(std::addressof(body))));
}

// parallel_for with the grain derived from the cost of one item (in
// multiply-adds or similar): below ~64k units a chunk is not worth handing out.
template <typename Body>
void parallel_for_cost(int64_t count, int64_t cost_per_item, Body&& body) {
  constexpr int64_t kMinWorkPerChunk = 1 << 16;
  const int64_t cost = cost_per_item > 0 ? cost_per_item : 1;
  parallel_for(count, (kMinWorkPerChunk + cost - 1) / cost, static_cast<Body&&>(body));
}

}  // namespace flashneox

// The one thread pool: OpenMP's. Kernels split work with parallel_for so the
// pool (and its thread count, --threads / OMP_NUM_THREADS) is set in one place.
#pragma once

#include <cstdint>

namespace flashneox {

void set_num_threads(int threads);  // <= 0: all hardware threads
int num_threads();

// Calls body(begin, end) on disjoint chunks of [0, count) across the pool.
// `grain` is the smallest chunk worth a thread.
template <typename Body>
void parallel_for(int64_t count, int64_t grain, Body&& body) {
  if (count <= 0) return;
  const int64_t max_chunks = grain > 0 ? (count + grain - 1) / grain : count;
  int64_t chunks = num_threads();
  if (chunks > max_chunks) chunks = max_chunks;
  if (chunks <= 1) {
    body(int64_t{0}, count);
    return;
  }
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = count * chunk / chunks;
    const int64_t end = count * (chunk + 1) / chunks;
    body(begin, end);
  }
}

// parallel_for with the grain derived from the cost of one item (in
// multiply-adds or similar): below ~64k units a thread is not worth waking,
// and on a busy machine every needless barrier costs a scheduler slice.
template <typename Body>
void parallel_for_cost(int64_t count, int64_t cost_per_item, Body&& body) {
  constexpr int64_t kMinWorkPerThread = 1 << 16;
  const int64_t cost = cost_per_item > 0 ? cost_per_item : 1;
  parallel_for(count, (kMinWorkPerThread + cost - 1) / cost, static_cast<Body&&>(body));
}

}  // namespace flashneox

#include "core/parallel.h"

#include <omp.h>

#include <cstdlib>

namespace flashneox {

namespace {
int g_threads = 0;
}

void set_num_threads(int threads) {
  // 0: every core, unless OMP_NUM_THREADS says otherwise.
  g_threads = threads > 0 ? threads : std::getenv("OMP_NUM_THREADS") ? omp_get_max_threads() : omp_get_num_procs();
  omp_set_num_threads(g_threads);
}

int num_threads() {
  if (g_threads <= 0) g_threads = omp_get_max_threads();
  return g_threads;
}

}  // namespace flashneox

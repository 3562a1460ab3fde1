#include "core/parallel.h"

#include <omp.h>

namespace flashneox {

namespace {
int g_threads = 0;
}

void set_num_threads(int threads) {
  g_threads = threads > 0 ? threads : omp_get_num_procs();
  omp_set_num_threads(g_threads);
}

int num_threads() {
  if (g_threads <= 0) g_threads = omp_get_max_threads();
  return g_threads;
}

}  // namespace flashneox

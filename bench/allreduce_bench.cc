// What one tensor-parallel all-reduce costs on this job's ranks and network:
// `mpirun -np N build/bench/allreduce_bench [host options]`. For each message
// size (a decode step's [hidden] floats per token up to a prefill's), the
// median over repetitions of MPI_Allreduce (sum, in place) as the forward
// calls it, through the same Communicator. Rank 0 prints the table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "distributed/mpi_launch.h"

int main(int argc, char** argv) {
  std::unique_ptr<flashneox::Communicator> world = flashneox::start_mpi_if_launched(&argc, &argv);
  if (!world) {
    std::fprintf(stderr, "run it under mpirun with at least two ranks: mpirun -np 2 %s\n", argv[0]);
    return 2;
  }
  if (world->rank() == 0)
    std::printf("%d ranks\n%12s %14s %12s\n", world->size(), "floats", "median us", "GB/s");
  for (int64_t n : {1024, 2048, 6144, 6144 * 8, 6144 * 32, 6144 * 128, 6144 * 512}) {
    std::vector<float> data(static_cast<size_t>(n), 1.0f);
    std::vector<double> us;
    const int reps = n > 100000 ? 20 : 200;
    for (int i = 0; i < reps + 5; ++i) {
      const auto start = std::chrono::steady_clock::now();
      world->all_reduce_sum(data.data(), n);
      const double t = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
      if (i >= 5) us.push_back(t);  // after warm-up
    }
    std::sort(us.begin(), us.end());
    const double median = us[us.size() / 2];
    if (world->rank() == 0) std::printf("%12lld %14.1f %12.2f\n", static_cast<long long>(n), median, n * 4 / median / 1e3);
  }
  return 0;
}

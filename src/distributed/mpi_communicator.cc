// Communicator over MPI (Open MPI from Debian). All collectives run on
// MPI_COMM_WORLD from one thread at a time (the engine's loop on rank 0, the
// worker loop elsewhere): MPI_THREAD_SERIALIZED.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "core/error.h"
#include "distributed/mpi_launch.h"

namespace flashneox {
namespace {

int checked_count(int64_t n) {
  if (n < 0 || n > std::numeric_limits<int>::max())
    throw Error(concat("a tensor-parallel message of ", n, " elements is larger than MPI can send at once"));
  return static_cast<int>(n);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiCommunicator() override { MPI_Finalize(); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce_sum(float* data, int64_t count) override {
    // Large sums go in pieces under MPI's int count.
    const int64_t piece = std::numeric_limits<int>::max() / 2;
    for (int64_t at = 0; at < count; at += piece)
      MPI_Allreduce(MPI_IN_PLACE, data + at, checked_count(std::min(piece, count - at)), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
  }

  void broadcast(std::vector<char>& bytes) override {
    int64_t n = static_cast<int64_t>(bytes.size());
    MPI_Bcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    bytes.resize(static_cast<size_t>(n));
    if (n) MPI_Bcast(bytes.data(), checked_count(n), MPI_CHAR, 0, MPI_COMM_WORLD);
  }

  std::vector<char> gather(const std::vector<char>& bytes, std::vector<int64_t>* sizes) override {
    int n = checked_count(static_cast<int64_t>(bytes.size()));
    std::vector<int> counts(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_));
    MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    std::vector<char> out;
    if (rank_ == 0) {
      int64_t total = 0;
      for (int r = 0; r < size_; ++r) {
        offsets[r] = checked_count(total);
        total += counts[r];
      }
      out.resize(static_cast<size_t>(checked_count(total)));
      if (sizes) sizes->assign(counts.begin(), counts.end());
    }
    MPI_Gatherv(bytes.data(), n, MPI_CHAR, out.data(), counts.data(), offsets.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
    return out;
  }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "flashneox (rank %d of %d): %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

 private:
  int rank_ = 0, size_ = 1;
};

int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}

}  // namespace

std::unique_ptr<Communicator> start_mpi_if_launched(int* argc, char*** argv) {
  if (launched_ranks() <= 1) return nullptr;
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
  if (provided < MPI_THREAD_SERIALIZED) {
    std::fprintf(stderr, "flashneox: this MPI library cannot be called from the engine's thread "
                         "(MPI_THREAD_SERIALIZED)\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return std::make_unique<MpiCommunicator>();
}

}  // namespace flashneox

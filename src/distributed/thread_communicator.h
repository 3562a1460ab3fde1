// Ranks as threads of one process: the Communicator over shared memory and
// barriers. The tests run the tensor-parallel forward with it (under the
// sanitizers and on every architecture, where MPI is not there); every rank
// adds in rank order, so all ranks hold the same bits after an all-reduce.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace flashneox {

class ThreadCommunicator final : public Communicator {
 public:
  // One communicator per rank, sharing their meeting place; give each to its thread.
  static std::vector<std::unique_ptr<ThreadCommunicator>> make_world(int size);

  int rank() const override { return rank_; }
  int size() const override { return shared_->size; }
  void all_reduce_sum(float* data, int64_t count) override;
  void broadcast(std::vector<char>& bytes) override;
  std::vector<char> gather(const std::vector<char>& bytes, std::vector<int64_t>* sizes) override;
  [[noreturn]] void abort(const std::string& message) override;

 private:
  struct Shared {
    explicit Shared(int n) : size(n), posted(static_cast<size_t>(n)) {}
    // Every rank waits here for the others. It yields rather than sleeps: the
    // ranks meet several times per layer, and a sleeping thread's wake-up
    // cost more than the layer on the tests' small models.
    void meet();
    int size;
    std::atomic<int> arrived{0};
    std::atomic<uint64_t> generation{0};
    std::vector<const void*> posted;  // what each rank offers at this meeting
  };
  ThreadCommunicator(std::shared_ptr<Shared> shared, int rank) : shared_(std::move(shared)), rank_(rank) {}
  std::shared_ptr<Shared> shared_;
  int rank_;
};

}  // namespace flashneox

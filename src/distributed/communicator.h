// The processes one model is split across (tensor parallelism, DESIGN §6):
// what the forward needs from them, written against no particular runtime.
// The MPI implementation (mpi_communicator.cc) is linked into the program
// only; the library never calls MPI itself.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flashneox {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank's `data` becomes the element-wise sum over the ranks.
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  // Rank 0's `bytes` are copied into every other rank's (resized to fit).
  virtual void broadcast(std::vector<char>& bytes) = 0;
  // Every rank's `bytes`, concatenated in rank order, on rank 0 (empty elsewhere);
  // `sizes` (rank 0) gets how many bytes each rank sent.
  virtual std::vector<char> gather(const std::vector<char>& bytes, std::vector<int64_t>* sizes = nullptr) = 0;
  // Ends every process of the job after printing `message`; never returns.
  [[noreturn]] virtual void abort(const std::string& message) = 0;
};

// The job's processes while `flashneox` runs under mpirun with more than one
// rank; null otherwise. Set once by the program's entry point.
Communicator* tensor_parallel_world();
void set_tensor_parallel_world(Communicator* world);

}  // namespace flashneox

#include "distributed/thread_communicator.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace flashneox {

void ThreadCommunicator::Shared::meet() {
  const uint64_t gen = generation.load(std::memory_order_acquire);
  if (arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == size) {
    arrived.store(0, std::memory_order_relaxed);
    generation.fetch_add(1, std::memory_order_release);
    return;
  }
  while (generation.load(std::memory_order_acquire) == gen) std::this_thread::yield();
}

std::vector<std::unique_ptr<ThreadCommunicator>> ThreadCommunicator::make_world(int size) {
  auto shared = std::make_shared<Shared>(size);
  std::vector<std::unique_ptr<ThreadCommunicator>> world;
  for (int r = 0; r < size; ++r) world.emplace_back(new ThreadCommunicator(shared, r));
  return world;
}

void ThreadCommunicator::all_reduce_sum(float* data, int64_t count) {
  Shared& s = *shared_;
  s.posted[static_cast<size_t>(rank_)] = data;
  s.meet();
  std::vector<float> sum(static_cast<size_t>(count), 0.0f);
  for (int r = 0; r < s.size; ++r) {
    const float* x = static_cast<const float*>(s.posted[static_cast<size_t>(r)]);
    for (int64_t i = 0; i < count; ++i) sum[static_cast<size_t>(i)] += x[i];
  }
  s.meet();  // everyone has read every rank's data
  std::memcpy(data, sum.data(), sum.size() * sizeof(float));
}

void ThreadCommunicator::broadcast(std::vector<char>& bytes) {
  Shared& s = *shared_;
  s.posted[static_cast<size_t>(rank_)] = &bytes;
  s.meet();
  if (rank_ != 0) bytes = *static_cast<const std::vector<char>*>(s.posted[0]);
  s.meet();
}

std::vector<char> ThreadCommunicator::gather(const std::vector<char>& bytes, std::vector<int64_t>* sizes) {
  Shared& s = *shared_;
  s.posted[static_cast<size_t>(rank_)] = &bytes;
  s.meet();
  std::vector<char> out;
  if (rank_ == 0) {
    if (sizes) sizes->clear();
    for (int r = 0; r < s.size; ++r) {
      const auto& piece = *static_cast<const std::vector<char>*>(s.posted[static_cast<size_t>(r)]);
      out.insert(out.end(), piece.begin(), piece.end());
      if (sizes) sizes->push_back(static_cast<int64_t>(piece.size()));
    }
  }
  s.meet();
  return out;
}

void ThreadCommunicator::abort(const std::string& message) {
  std::fprintf(stderr, "flashneox (thread rank %d of %d): %s\n", rank_, shared_->size, message.c_str());
  std::abort();
}

}  // namespace flashneox

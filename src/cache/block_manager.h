// Owns the KV blocks for the engine: sequences grow their block tables on
// demand and give every block back when they finish, are cancelled or are
// preempted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cache/kv_cache.h"

namespace flashneox {

class BlockManager {
 public:
  BlockManager(int num_blocks, int block_size) : allocator_(num_blocks), block_size_(block_size) {}

  int block_size() const { return block_size_; }
  int num_blocks() const { return allocator_.num_blocks(); }
  int free_blocks() const { return allocator_.free_count(); }
  // The free count as of the last reserve/release, safe to read from any thread.
  int free_blocks_snapshot() const { return free_snapshot_.load(std::memory_order_relaxed); }
  int used_blocks() const { return num_blocks() - free_blocks(); }

  // Blocks `table` still lacks to hold `tokens` tokens.
  int missing(const std::vector<int32_t>& table, int tokens) const;
  // Grows `table` to hold `tokens` tokens; false (table unchanged) when too few are free.
  bool reserve(std::vector<int32_t>& table, int tokens);
  void release(std::vector<int32_t>& table);  // frees every block and clears the table

 private:
  BlockAllocator allocator_;
  int block_size_;
  std::atomic<int> free_snapshot_{allocator_.free_count()};
};


}  // namespace flashneox

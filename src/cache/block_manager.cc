#include "cache/block_manager.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace flashneox {

int BlockManager::missing(const std::vector<int32_t>& table, int tokens) const {
  const int needed = (tokens + block_size_ - 1) / block_size_;
  return needed > static_cast<int>(table.size()) ? needed - static_cast<int>(table.size()) : 0;
}

bool BlockManager::reserve(std::vector<int32_t>& table, int tokens) {
  const int n = missing(table, tokens);
  if (n == 0) return true;
  const bool ok = allocator_.allocate(n, table);
  free_snapshot_.store(allocator_.free_count(), std::memory_order_relaxed);
  return ok;
}

void BlockManager::release(std::vector<int32_t>& table) {
  allocator_.release(table);
  table.clear();
  free_snapshot_.store(allocator_.free_count(), std::memory_order_relaxed);
}

}  // namespace flashneox

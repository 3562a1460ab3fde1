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

size_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  size_t value;
  std::string unit;
  while (in >> key >> value >> unit)
    if (key == "MemAvailable:") return value * 1024;
  return size_t{4} << 30;  // unknown: assume 4 GiB
}

size_t parse_memory_budget(const std::string& text) {
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  const std::string unit = end ? std::string(end) : "";
  if (text.empty() || end == text.c_str() || !(number > 0))
    throw Error(concat("memory budget '", text, "' is not a positive size"));
  double bytes;
  if (unit.empty() && number <= 1.0) {
    bytes = number * static_cast<double>(available_memory_bytes());
  } else if (unit.empty() || unit == "B") {
    bytes = number;
  } else if (unit == "KiB" || unit == "K") {
    bytes = number * 1024;
  } else if (unit == "MiB" || unit == "M") {
    bytes = number * 1024 * 1024;
  } else if (unit == "GiB" || unit == "G") {
    bytes = number * 1024 * 1024 * 1024;
  } else if (unit == "KB") {
    bytes = number * 1e3;
  } else if (unit == "MB") {
    bytes = number * 1e6;
  } else if (unit == "GB") {
    bytes = number * 1e9;
  } else {
    throw Error(concat("memory budget '", text, "': unknown unit '", unit,
                       "' (use B, KiB, MiB, GiB, KB, MB, GB or a fraction like 0.2)"));
  }
  return static_cast<size_t>(bytes);
}

}  // namespace flashneox

#include "cache/kv_cache.h"

#include <atomic>
#include <string>

#include "core/error.h"

namespace flashneox {

KvCache::KvCache(int layers, int num_blocks, int block_size, int heads, int head_size, DType dtype)
    : num_blocks_(num_blocks), block_size_(block_size), heads_(heads), head_size_(head_size), dtype_(dtype) {
  static std::atomic<uint64_t> next_serial{1};
  serial_ = next_serial.fetch_add(1);
  if (dtype != DType::F32 && dtype != DType::F16) throw Error("the KV cache holds f32 or f16");
  if (layers <= 0 || num_blocks <= 0 || block_size <= 0 || heads <= 0 || head_size <= 0)
    throw Error(concat("invalid KV cache shape: layers ", layers, ", blocks ", num_blocks,
                       ", block size ", block_size));

  const size_t per_layer = static_cast<size_t>(num_blocks) * block_size * heads * head_size;
  const std::string purpose = concat("the KV cache (", block_bytes(layers, block_size, heads, head_size, dtype) * num_blocks,
                                     " bytes in all)");
  for (int l = 0; l < layers; ++l) {
    keys_.emplace_back(per_layer * dtype_size(dtype), purpose.c_str());
    values_.emplace_back(per_layer * dtype_size(dtype), purpose.c_str());
  }
}

size_t KvCache::bytes() const {
  return block_bytes(layers(), block_size_, heads_, head_size_, dtype_) * static_cast<size_t>(num_blocks_);
}

size_t KvCache::block_bytes(int layers, int block_size, int heads, int head_size, DType dtype) {
  return 2ull * layers * block_size * heads * head_size * dtype_size(dtype);
}

BlockAllocator::BlockAllocator(int num_blocks)
    : num_blocks_(num_blocks), in_use_(static_cast<size_t>(num_blocks), false) {
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out 0, 1, 2, ... first
}

bool BlockAllocator::allocate(int n, std::vector<int32_t>& out) {
  if (n < 0 || n > free_count()) return false;
  for (int i = 0; i < n; ++i) {
    const int32_t block = free_.back();
    free_.pop_back();
    in_use_[block] = true;
    out.push_back(block);
  }
  return true;
}

void BlockAllocator::release(const std::vector<int32_t>& blocks) {
  for (int32_t block : blocks) {
    if (block < 0 || block >= num_blocks_ || !in_use_[block])
      throw Error(concat("internal error: KV block ", block, " released but not in use"));
    in_use_[block] = false;
    free_.push_back(block);
  }
}

}  // namespace flashneox

// The paged KV cache: per layer, K and V stored in fixed-size blocks, as f32
// or f16 (half the memory and the bytes a decode step reads).
// A token's slot is block * block_size + offset. A block of keys(l) is
// [heads][head_size][block_size] (a head's keys side by side, as the
// attention kernel reads them), a block of values(l) [block_size][heads][head_size].
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/large_buffer.h"

namespace flashneox {

class KvCache {
 public:
  KvCache(int layers, int num_blocks, int block_size, int heads, int head_size,
          DType dtype = DType::F32);

  void* keys(int layer) { return keys_[layer].data(); }      // [num_blocks, heads, head_size, block_size]
  void* values(int layer) { return values_[layer].data(); }  // [num_blocks, block_size, heads, head_size]
  DType dtype() const { return dtype_; }
  int layers() const { return static_cast<int>(keys_.size()); }
  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  int heads() const { return heads_; }
  int head_size() const { return head_size_; }
  int64_t num_slots() const { return static_cast<int64_t>(num_blocks_) * block_size_; }
  // Unique within the process: names this cache to the other ranks of a
  // tensor-parallel job, which keep a cache of the same shape beside it.
  uint64_t serial() const { return serial_; }
  size_t bytes() const;
  // Bytes one block takes over all layers (K and V): the unit a budget buys.
  static size_t block_bytes(int layers, int block_size, int heads, int head_size,
                            DType dtype = DType::F32);

 private:
  int num_blocks_, block_size_, heads_, head_size_;
  DType dtype_;
  uint64_t serial_;
  // Zeroed lazily by the kernel, so a large budget costs memory only as
  // blocks are first used.
  std::vector<LargeBuffer> keys_, values_;
};

// Hands out cache blocks; O(1) allocate and free, never a block twice.
class BlockAllocator {
 public:
  explicit BlockAllocator(int num_blocks);
  int num_blocks() const { return num_blocks_; }
  int free_count() const { return static_cast<int>(free_.size()); }
  // Appends n blocks to `out`; returns false (and takes none) if fewer are free.
  bool allocate(int n, std::vector<int32_t>& out);
  void release(const std::vector<int32_t>& blocks);  // throws on a double free

 private:
  int num_blocks_;
  std::vector<int32_t> free_;
  std::vector<bool> in_use_;
};

}  // namespace flashneox

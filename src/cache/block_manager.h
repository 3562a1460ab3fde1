// Owns the KV blocks for the engine: sequences grow their block tables on
// demand and give every block back when they finish, are cancelled or are
// preempted.
//
// With prefix caching, a full block whose K/V are computed is published under
// a chain hash of every token up to its end (and the adapter: K/V depend on
// it). A later sequence whose prompt starts with the same tokens shares the
// block instead of recomputing it: blocks are reference-counted, and a
// published block that no sequence holds stays cached until a new block is
// needed and no free one is left (least recently released first). A partly
// filled block is never published, and sequences only write past their
// shared blocks, so a shared block is never written.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "cache/kv_cache.h"

namespace flashneox {

// A sequence's keys into the prefix cache.
struct PrefixKeys {
  uint64_t salt = 0;             // what besides the tokens shapes K/V (the adapter)
  std::vector<uint64_t> hashes;  // chain hash of each full block of the tokens so far
  int published = 0;             // leading blocks of the table already shared or offered
};

class BlockManager {
 public:
  BlockManager(int num_blocks, int block_size, bool prefix_caching = false);

  int block_size() const { return block_size_; }
  int num_blocks() const { return allocator_.num_blocks(); }
  bool prefix_caching() const { return prefix_caching_; }
  // Blocks a sequence can get: never used, or cached and held by nobody.
  int free_blocks() const { return allocator_.free_count() + static_cast<int>(evictable_.size()); }
  // Of those, the ones holding a published prefix.
  int cached_blocks() const { return static_cast<int>(evictable_.size()); }
  // Snapshots as of the last change, safe to read from any thread.
  int free_blocks_snapshot() const { return free_snapshot_.load(std::memory_order_relaxed); }
  int cached_blocks_snapshot() const { return cached_snapshot_.load(std::memory_order_relaxed); }
  int used_blocks() const { return num_blocks() - free_blocks(); }

  // Blocks `table` still lacks to hold `tokens` tokens.
  int missing(const std::vector<int32_t>& table, int tokens) const;
  // Grows `table` to hold `tokens` tokens; false (table unchanged) when too few are free.
  bool reserve(std::vector<int32_t>& table, int tokens);
  // Gives back every block and clears the table; published blocks stay cached.
  void release(std::vector<int32_t>& table);

  // Fills the empty `table` with the cached blocks that hold the longest
  // whole-block prefix of tokens[0, limit); returns the tokens they hold
  // (0 with prefix caching off). Sets keys.published to the blocks shared.
  int share_prefix(std::vector<int32_t>& table, std::span<const int32_t> tokens, int limit, PrefixKeys& keys);
  // Publishes the full blocks of `table` among the first `computed` tokens
  // (their K/V written) that are not yet published.
  void publish(const std::vector<int32_t>& table, std::span<const int32_t> tokens, int computed,
               PrefixKeys& keys);
  // keys.hashes extended to cover `blocks` whole blocks of tokens.
  void hash_blocks(std::span<const int32_t> tokens, int blocks, PrefixKeys& keys) const;

 private:
  struct Entry {  // a published block, and what its hash stands for
    int32_t block;
    uint64_t parent;  // the previous block's hash (0 for the first)
    uint64_t salt;
    std::vector<int32_t> tokens;
  };
  void update_snapshots();

  BlockAllocator allocator_;
  int block_size_;
  bool prefix_caching_;
  std::vector<int32_t> refs_;      // sequences holding each block
  std::vector<uint64_t> hash_of_;  // a published block's hash; 0: not published
  std::unordered_map<uint64_t, Entry> published_;
  std::list<int32_t> evictable_;   // published and held by nobody, oldest first
  std::vector<std::list<int32_t>::iterator> evictable_at_;
  std::atomic<int> free_snapshot_{0}, cached_snapshot_{0};
};

}  // namespace flashneox

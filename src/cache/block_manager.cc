#include "cache/block_manager.h"

#include <algorithm>

#include "core/error.h"

namespace flashneox {

namespace {
uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

BlockManager::BlockManager(int num_blocks, int block_size, bool prefix_caching)
    : allocator_(num_blocks), block_size_(block_size), prefix_caching_(prefix_caching) {
  if (prefix_caching_) {
    refs_.assign(static_cast<size_t>(num_blocks), 0);
    hash_of_.assign(static_cast<size_t>(num_blocks), 0);
    evictable_at_.resize(static_cast<size_t>(num_blocks));
  }
  update_snapshots();
}

void BlockManager::update_snapshots() {
  free_snapshot_.store(free_blocks(), std::memory_order_relaxed);
  cached_snapshot_.store(cached_blocks(), std::memory_order_relaxed);
}

int BlockManager::missing(const std::vector<int32_t>& table, int tokens) const {
  const int needed = (tokens + block_size_ - 1) / block_size_;
  return needed > static_cast<int>(table.size()) ? needed - static_cast<int>(table.size()) : 0;
}

bool BlockManager::reserve(std::vector<int32_t>& table, int tokens) {
  const int n = missing(table, tokens);
  if (n == 0) return true;
  if (n > free_blocks()) return false;
  const size_t first = table.size();
  const int fresh = std::min(n, allocator_.free_count());
  allocator_.allocate(fresh, table);
  for (int i = fresh; i < n; ++i) {  // then the least recently released cached blocks: their prefixes are forgotten
    const int32_t b = evictable_.front();
    evictable_.pop_front();
    published_.erase(hash_of_[b]);
    hash_of_[b] = 0;
    table.push_back(b);
  }
  if (prefix_caching_)
    for (size_t i = first; i < table.size(); ++i) refs_[table[i]] = 1;
  update_snapshots();
  return true;
}

void BlockManager::release(std::vector<int32_t>& table) {
  if (!prefix_caching_) {
    allocator_.release(table);
  } else {
    // Last block first: a sequence's tail is the least likely to be shared,
    // so it is evicted first.
    std::vector<int32_t> unpublished;
    for (auto it = table.rbegin(); it != table.rend(); ++it) {
      const int32_t b = *it;
      if (b < 0 || b >= num_blocks() || refs_[b] <= 0)
        throw Error(concat("internal error: KV block ", b, " released but not in use"));
      if (--refs_[b] > 0) continue;
      if (hash_of_[b] != 0) evictable_at_[b] = evictable_.insert(evictable_.end(), b);
      else unpublished.push_back(b);
    }
    allocator_.release(unpublished);
  }
  table.clear();
  update_snapshots();
}

void BlockManager::hash_blocks(std::span<const int32_t> tokens, int blocks, PrefixKeys& keys) const {
  for (size_t i = keys.hashes.size(); i < static_cast<size_t>(blocks); ++i) {
    uint64_t h = mix((i == 0 ? 0x5bd1e995ull : keys.hashes[i - 1]) ^ mix(keys.salt));
    for (int j = 0; j < block_size_; ++j)
      h = mix(h ^ static_cast<uint32_t>(tokens[i * static_cast<size_t>(block_size_) + static_cast<size_t>(j)]));
    keys.hashes.push_back(h | 1);  // never 0, which marks an unpublished block
  }
}

int BlockManager::share_prefix(std::vector<int32_t>& table, std::span<const int32_t> tokens, int limit,
                               PrefixKeys& keys) {
  keys.published = 0;
  if (!prefix_caching_ || !table.empty()) return 0;
  const int whole = std::min<int>(limit, static_cast<int>(tokens.size())) / block_size_;
  hash_blocks(tokens, whole, keys);
  for (int i = 0; i < whole; ++i) {
    const uint64_t h = keys.hashes[static_cast<size_t>(i)];
    const auto found = published_.find(h);
    if (found == published_.end()) break;
    const Entry& e = found->second;
    const auto block_tokens = tokens.subspan(static_cast<size_t>(i) * static_cast<size_t>(block_size_),
                                             static_cast<size_t>(block_size_));
    // The hash stands for these exact tokens after this exact prefix, or nothing is shared.
    if (e.salt != keys.salt || e.parent != (i == 0 ? 0 : keys.hashes[static_cast<size_t>(i) - 1]) ||
        !std::equal(block_tokens.begin(), block_tokens.end(), e.tokens.begin(), e.tokens.end()))
      break;
    if (refs_[e.block]++ == 0) evictable_.erase(evictable_at_[e.block]);
    table.push_back(e.block);
  }
  keys.published = static_cast<int>(table.size());
  update_snapshots();
  return keys.published * block_size_;
}

void BlockManager::publish(const std::vector<int32_t>& table, std::span<const int32_t> tokens, int computed,
                           PrefixKeys& keys) {
  if (!prefix_caching_) return;
  const int whole = std::min<int>(std::min<int>(computed, static_cast<int>(tokens.size())) / block_size_,
                                  static_cast<int>(table.size()));
  if (keys.published >= whole) return;
  hash_blocks(tokens, whole, keys);
  for (int i = keys.published; i < whole; ++i) {
    const int32_t b = table[static_cast<size_t>(i)];
    const uint64_t h = keys.hashes[static_cast<size_t>(i)];
    // Another sequence may have published the same tokens first: this copy
    // stays private and is freed with its sequence.
    if (hash_of_[b] != 0 || published_.count(h)) continue;
    const auto first = tokens.begin() + static_cast<ptrdiff_t>(i) * block_size_;
    published_.emplace(h, Entry{b, i == 0 ? 0 : keys.hashes[static_cast<size_t>(i) - 1], keys.salt,
                                std::vector<int32_t>(first, first + block_size_)});
    hash_of_[b] = h;
  }
  keys.published = whole;
}

}  // namespace flashneox

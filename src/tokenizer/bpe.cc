#include "tokenizer/bpe.h"

#include <queue>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

namespace flashneox {

namespace {
constexpr size_t kMaxCachedWordBytes = 64;
constexpr size_t kMaxCacheEntries = 1 << 18;
}  // namespace

Bpe::Bpe(std::unordered_map<std::string, int32_t> vocab,
         const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges)
    : vocab_(std::move(vocab)), ignore_merges_(ignore_merges) {
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(symbol, byte_to_char()[b]);
    auto it = vocab_.find(symbol);
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto l = vocab_.find(left);
    const auto r = vocab_.find(right);
    const auto merged = vocab_.find(left + right);
    if (l == vocab_.end() || r == vocab_.end() || merged == vocab_.end())
      throw Error(concat("tokenizer merge ", rank, " ('", left, " ", right,
                         "') uses a token missing from the vocabulary"));
    const uint64_t key = (static_cast<uint64_t>(l->second) << 32) | static_cast<uint32_t>(r->second);
    merges_.emplace(key, Merge{static_cast<int32_t>(rank), merged->second});  // first rank wins
  }
}

void Bpe::merge_word(std::string_view word, std::vector<Piece>& out) const {
  // A doubly linked list of symbols and a min-heap of candidate merges by
  // (rank, position), re-validated on pop: O(n log n) for any word length.
  struct Symbol {
    int32_t id;
    uint32_t bytes;
    int prev, next;
  };
  std::vector<Symbol> sym(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(word[i])];
    if (id < 0) throw Error(concat("tokenizer has no token for byte ", static_cast<int>(static_cast<unsigned char>(word[i]))));
    sym[i] = {id, 1, static_cast<int>(i) - 1, i + 1 < word.size() ? static_cast<int>(i) + 1 : -1};
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int pos) {
    if (pos < 0 || sym[pos].next < 0) return;
    const Symbol& a = sym[pos];
    const Symbol& b = sym[a.next];
    auto it = merges_.find((static_cast<uint64_t>(a.id) << 32) | static_cast<uint32_t>(b.id));
    if (it != merges_.end()) heap.push({it->second.rank, pos, a.id, b.id});
  };
  for (size_t i = 0; i + 1 < word.size(); ++i) consider(static_cast<int>(i));
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& a = sym[c.pos];
    if (a.bytes == 0 || a.id != c.left || a.next < 0 || sym[a.next].id != c.right) continue;  // stale
    Symbol& b = sym[a.next];
    a.id = merges_.at((static_cast<uint64_t>(c.left) << 32) | static_cast<uint32_t>(c.right)).result;
    a.bytes += b.bytes;
    b.bytes = 0;
    a.next = b.next;
    if (b.next >= 0) sym[b.next].prev = c.pos;
    consider(a.prev);
    consider(c.pos);
  }
  for (int i = 0; i >= 0 && i < static_cast<int>(sym.size()); i = sym[i].next)
    out.push_back({sym[i].id, sym[i].bytes});
}

void Bpe::encode_word(std::string_view word, std::vector<int32_t>& ids,
                      std::vector<uint32_t>* byte_lengths) {
  if (word.empty()) return;
  if (ignore_merges_) {
    std::string symbols;
    for (char c : word) append_utf8(symbols, byte_to_char()[static_cast<unsigned char>(c)]);
    if (auto it = vocab_.find(symbols); it != vocab_.end()) {
      ids.push_back(it->second);
      if (byte_lengths) byte_lengths->push_back(static_cast<uint32_t>(word.size()));
      return;
    }
  }
  std::vector<Piece> local;
  if (word.size() <= kMaxCachedWordBytes) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(std::string(word));
    if (it == cache_.end()) {
      if (cache_.size() >= kMaxCacheEntries) cache_.clear();
      std::vector<Piece> fresh;
      merge_word(word, fresh);
      it = cache_.emplace(std::string(word), std::move(fresh)).first;
    }
    local = it->second;
  } else {
    merge_word(word, local);
  }
  for (const Piece& p : local) {
    ids.push_back(p.id);
    if (byte_lengths) byte_lengths->push_back(p.bytes);
  }
}

}  // namespace flashneox

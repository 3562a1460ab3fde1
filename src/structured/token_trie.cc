#include "structured/token_trie.h"

#include <algorithm>
#include <string>

#include "tokenizer/tokenizer.h"

namespace flashneox {

TokenTrie::TokenTrie(const Tokenizer& tokenizer, int32_t vocab) : vocab_(vocab) {
  // Sorting the byte strings makes every node's subtree one contiguous run,
  // so the trie is built in one pass with children in byte order.
  std::vector<std::pair<std::string, int32_t>> entries;
  const int32_t n = std::min(vocab, tokenizer.vocab_size());
  entries.reserve(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    if (tokenizer.is_special(id)) continue;
    const std::string& bytes = tokenizer.token_bytes(id);  // empty for a hole in the vocabulary
    if (!bytes.empty()) entries.emplace_back(bytes, id);
  }
  std::sort(entries.begin(), entries.end());

  // Recursive build over [begin, end) sharing the prefix of length `depth`.
  struct Builder {
    TokenTrie& trie;
    const std::vector<std::pair<std::string, int32_t>>& entries;
    int32_t build(size_t begin, size_t end, size_t depth) {
      const auto id = static_cast<int32_t>(trie.nodes_.size());
      trie.nodes_.emplace_back();
      Node node;
      node.first_token = static_cast<int32_t>(trie.tokens_.size());
      while (begin < end && entries[begin].first.size() == depth) trie.tokens_.push_back(entries[begin++].second);
      node.token_count = static_cast<int32_t>(trie.tokens_.size()) - node.first_token;
      std::vector<std::pair<uint8_t, std::pair<size_t, size_t>>> groups;
      for (size_t i = begin; i < end;) {
        const auto b = static_cast<uint8_t>(entries[i].first[depth]);
        size_t j = i;
        while (j < end && static_cast<uint8_t>(entries[j].first[depth]) == b) ++j;
        groups.push_back({b, {i, j}});
        i = j;
      }
      std::vector<Child> kids;
      for (const auto& [b, range] : groups) kids.push_back({b, build(range.first, range.second, depth + 1)});
      node.first_child = static_cast<int32_t>(trie.children_.size());
      node.child_count = static_cast<int32_t>(kids.size());
      trie.children_.insert(trie.children_.end(), kids.begin(), kids.end());
      trie.nodes_[static_cast<size_t>(id)] = node;
      return id;
    }
  };
  Builder{*this, entries}.build(0, entries.size(), 0);
}

}  // namespace flashneox

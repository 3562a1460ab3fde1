#include "structured/token_trie.h"

#include <algorithm>
#include <string>

#include "tokenizer/tokenizer.h"

namespace flashneox {

TokenTrie::TokenTrie(const Tokenizer& tokenizer, int32_t vocab) : vocab_(vocab) {
  // Sorted byte strings: every node's subtree is one contiguous run of them.
  std::vector<std::pair<std::string, int32_t>> entries;
  const int32_t n = std::min(vocab, tokenizer.vocab_size());
  entries.reserve(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    if (tokenizer.is_special(id)) continue;
    const std::string& bytes = tokenizer.token_bytes(id);  // empty for a hole in the vocabulary
    if (!bytes.empty()) entries.emplace_back(bytes, id);
  }
  std::sort(entries.begin(), entries.end());

  // Each node's children are allocated together, then filled in the order a
  // walk's stack pops them (last child first), so a walk reads the array
  // nearly front to back instead of jumping across a megabyte.
  struct Builder {
    TokenTrie& trie;
    const std::vector<std::pair<std::string, int32_t>>& entries;
    void fill(int32_t node_id, size_t begin, size_t end, size_t depth) {
      while (begin < end && entries[begin].first.size() == depth) {  // tokens that end here
        Node& node = trie.nodes_[static_cast<size_t>(node_id)];
        if (node.token < 0) {
          node.token = entries[begin].second;
        } else {
          node.more_tokens = true;
          trie.more_[node_id].push_back(entries[begin].second);
        }
        ++begin;
      }
      std::vector<std::pair<size_t, size_t>> runs;  // entries below each child
      const auto first_child = static_cast<int32_t>(trie.nodes_.size());
      for (size_t i = begin; i < end;) {
        const auto b = static_cast<uint8_t>(entries[i].first[depth]);
        size_t j = i;
        while (j < end && static_cast<uint8_t>(entries[j].first[depth]) == b) ++j;
        Node child;
        child.byte = b;
        trie.nodes_.push_back(child);
        runs.emplace_back(i, j);
        i = j;
      }
      trie.nodes_[static_cast<size_t>(node_id)].first_child = first_child;
      trie.nodes_[static_cast<size_t>(node_id)].child_count = static_cast<uint16_t>(runs.size());
      for (size_t k = runs.size(); k-- > 0;)
        fill(first_child + static_cast<int32_t>(k), runs[k].first, runs[k].second, depth + 1);
    }
  };
  nodes_.emplace_back();
  Builder{*this, entries}.fill(0, 0, entries.size(), 0);
  index_subtrees();
}

void TokenTrie::index_subtrees() {
  // Preorder: a node's own tokens, then its children's subtrees in turn.
  subtrees_.assign(nodes_.size(), Subtree{});
  struct Frame {
    int32_t node;
    int32_t next_child;  // -1: not entered yet
  };
  std::vector<Frame> stack = {{0, -1}};
  while (!stack.empty()) {
    Frame& f = stack.back();
    const Node& node = nodes_[static_cast<size_t>(f.node)];
    Subtree& sub = subtrees_[static_cast<size_t>(f.node)];
    if (f.next_child < 0) {
      sub.begin = static_cast<int32_t>(subtree_tokens_.size());
      if (node.token >= 0) subtree_tokens_.push_back(node.token);
      if (node.more_tokens)
        for (const int32_t t : more_.at(f.node)) subtree_tokens_.push_back(t);
      f.next_child = node.first_child;
    }
    if (f.next_child < node.first_child + node.child_count) {
      const int32_t child = f.next_child++;
      stack.push_back({child, -1});  // invalidates f
      continue;
    }
    sub.end = static_cast<int32_t>(subtree_tokens_.size());
    uint16_t deepest = 0;
    for (int32_t c = node.first_child; c < node.first_child + node.child_count; ++c)
      deepest = std::max(deepest, subtrees_[static_cast<size_t>(c)].depth);
    sub.depth = static_cast<uint16_t>(std::min(deepest + 1, 65535));
    stack.pop_back();
  }
  constexpr int32_t kDense = 512;  // tokens; about 60 nodes of GPT-NeoX's vocabulary
  dense_index_.assign(nodes_.size(), -1);
  for (size_t n = 1; n < nodes_.size(); ++n) {
    const Subtree& sub = subtrees_[n];
    if (sub.end - sub.begin < kDense) continue;
    dense_index_[n] = static_cast<int32_t>(dense_.size() / words());
    dense_.resize(dense_.size() + words(), 0);
    uint64_t* bits = dense_.data() + dense_.size() - words();
    for (int32_t t = sub.begin; t < sub.end; ++t) {
      const auto id = static_cast<size_t>(subtree_tokens_[static_cast<size_t>(t)]);
      bits[id / 64] |= uint64_t{1} << (id % 64);
    }
  }
}

std::shared_ptr<const TokenTrie::ByteSetIndex> TokenTrie::index(const std::bitset<256>& bytes) const {
  auto it = indexes_.find(bytes);
  if (it != indexes_.end()) return it->second;
  if (indexes_.size() >= 32) indexes_.clear();  // a bound (holders keep theirs); grammars use a handful
  auto made = std::make_shared<ByteSetIndex>();
  std::vector<uint8_t>& in = made->within;
  in.assign(nodes_.size(), 0);
  // Children come after their parent in nodes_: one backward pass is bottom-up.
  for (size_t n = nodes_.size(); n-- > 1;) {
    const Node& node = nodes_[n];
    uint8_t ok = bytes[node.byte] ? 1 : 0;
    for (int32_t c = node.first_child; ok && c < node.first_child + node.child_count; ++c)
      ok = in[static_cast<size_t>(c)];
    in[n] = ok;
  }
  // Whole tokens within the set, by length: every node reached from the
  // root through the set's bytes only.
  std::vector<std::pair<int32_t, int>> pure;  // (token, length)
  std::vector<std::pair<int32_t, int>> stack = {{0, 0}};
  while (!stack.empty()) {
    const auto [n, depth] = stack.back();
    stack.pop_back();
    const Node& node = nodes_[static_cast<size_t>(n)];
    if (n != 0 && node.token >= 0) pure.emplace_back(node.token, depth);
    if (n != 0 && node.more_tokens)
      for (const int32_t t : more_.at(n)) pure.emplace_back(t, depth);
    for (int32_t c = node.first_child; c < node.first_child + node.child_count; ++c)
      if (bytes[nodes_[static_cast<size_t>(c)].byte]) stack.emplace_back(c, depth + 1);
  }
  for (const auto& [t, len] : pure) made->max_length = std::max(made->max_length, len);
  const size_t w = words();
  made->by_length.assign(static_cast<size_t>(made->max_length + 1) * w, 0);
  for (const auto& [t, len] : pure)
    made->by_length[static_cast<size_t>(len) * w + static_cast<size_t>(t) / 64] |= uint64_t{1} << (t % 64);
  for (int len = 1; len <= made->max_length; ++len)  // cumulative: at most L bytes
    for (size_t i = 0; i < w; ++i)
      made->by_length[static_cast<size_t>(len) * w + i] |= made->by_length[static_cast<size_t>(len - 1) * w + i];
  indexes_.emplace(bytes, made);
  return made;
}

}  // namespace flashneox
